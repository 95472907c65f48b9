import pytest
import torch
from torch import nn

from bnlab.batchnorm import BatchNorm
from bnlab.models import NORMS, blocks_of, make_mlp


def test_default_mlp_is_the_papers_3x100_sigmoid_net():
    model = make_mlp()
    names = [name for name, _ in model.named_children()]
    assert names == ["linear1", "act1", "linear2", "act2", "linear3", "act3", "output"]
    assert isinstance(model.act1, nn.Sigmoid)
    assert model(torch.zeros(5, 64)).shape == (5, 10)


@pytest.mark.parametrize("norm, kind", [("torch_bn", nn.BatchNorm1d), ("bnlab_bn", BatchNorm),
                                        ("bnlab_bn_detached", BatchNorm)])
def test_norm_choice_puts_a_norm_layer_before_each_activation(norm, kind):
    model = make_mlp(hidden=(8, 8), norm=norm, activation="relu")
    names = [name for name, _ in model.named_children()]
    assert names == ["linear1", "norm1", "act1", "linear2", "norm2", "act2", "output"]
    assert all(isinstance(block.norm, kind) for block in model.blocks)
    assert [block.number for block in model.blocks] == [1, 2]
    assert model(torch.randn(4, 64)).shape == (4, 10)


def test_detached_variant_detaches_the_statistics():
    assert make_mlp(norm="bnlab_bn_detached").norm1.stats_in_graph is False
    assert make_mlp(norm="bnlab_bn").norm1.stats_in_graph is True


def test_init_std_draws_gaussian_weights_and_zero_biases():
    model = make_mlp(hidden=(400,), init_std=0.1, seed=0)
    assert abs(model.linear1.weight.std().item() - 0.1) < 0.005
    assert torch.all(model.linear1.bias == 0)


def test_initial_weights_follow_the_seed():
    a, b, c = make_mlp(seed=1), make_mlp(seed=1), make_mlp(seed=2)
    assert torch.equal(a.linear1.weight, b.linear1.weight)
    assert not torch.equal(a.linear1.weight, c.linear1.weight)


def test_no_bias_option():
    assert make_mlp(bias=False).linear1.bias is None


@pytest.mark.parametrize("kwargs, message", [
    (dict(activation="sigmod"), "sigmoid, tanh, relu"),
    (dict(norm="batchnorm"), ", ".join(NORMS)),
    (dict(hidden=(100, 0)), "positive integers"),
    (dict(init_std=-1.0), "init_std"),
])
def test_bad_arguments_name_the_valid_ones(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        make_mlp(**kwargs)


@pytest.mark.parametrize("norm, kind", [("layernorm", nn.LayerNorm), ("groupnorm", nn.GroupNorm)])
def test_batch_independent_norm_choices(norm, kind):
    model = make_mlp(hidden=(20, 20), norm=norm, activation="relu")
    assert all(isinstance(block.norm, kind) for block in model.blocks)
    assert model(torch.randn(4, 64)).shape == (4, 10)
    if norm == "groupnorm":
        assert model.norm1.num_groups == 10


def test_a_norm_factory_builds_the_layer_of_every_block():
    model = make_mlp(hidden=(6, 7), norm=lambda width: nn.Dropout(0.0), activation="tanh")
    assert [type(block.norm) for block in model.blocks] == [nn.Dropout, nn.Dropout]


def test_blocks_name_their_layers_explicitly_and_slices_are_plain_sequentials():
    model = make_mlp(hidden=(8, 9), norm="torch_bn")
    first, second = model.blocks
    assert first.number == 1
    assert (first.linear, first.norm, first.activation) == (model.linear1, model.norm1, model.act1)
    assert second.linear.out_features == 9 and model.output.in_features == 9
    assert blocks_of(model) == model.blocks and blocks_of(nn.Linear(2, 2)) == []
    head = model[:3]
    assert type(head) is nn.Sequential and len(head) == 3
    plain = make_mlp(hidden=(5,))
    assert plain.blocks[0].norm is None


@pytest.mark.parametrize("scheme, expected", [("lecun", lambda i, o: i ** -0.5),
                                              ("xavier", lambda i, o: (2 / (i + o)) ** 0.5),
                                              ("he", lambda i, o: (2 / i) ** 0.5)])
def test_a_principled_init_sets_each_layers_std_from_its_shape(scheme, expected):
    model = make_mlp(64, (400, 400), 10, init_std=scheme, init_gain=1.5, seed=0)
    for layer in [block.linear for block in model.blocks] + [model.output]:
        want = 1.5 * expected(layer.in_features, layer.out_features)
        assert abs(layer.weight.std().item() / want - 1) < 0.05, (scheme, layer)
        assert torch.count_nonzero(layer.bias) == 0


@pytest.mark.parametrize("init_std, init_gain, words", [("kaiming", 1.0, "choose one of"), (-0.1, 1.0, "positive"),
                                                        ("he", 0.0, "init_gain"), (0.1, 2.0, "scheme")])
def test_a_bad_init_is_refused_in_words(init_std, init_gain, words):
    with pytest.raises(ValueError, match=words):
        make_mlp(init_std=init_std, init_gain=init_gain)
