import pytest
import torch
from torch import nn

from bnlab.batchnorm import BatchNorm
from bnlab.models import NORMS, StepNoise, activation_layers, make_mlp, norm_layers


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
    assert all(isinstance(layer, kind) for layer in norm_layers(model).values())
    assert list(activation_layers(model)) == ["act1", "act2"]
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


@pytest.mark.parametrize("norm, kind", [("layernorm", nn.LayerNorm), ("groupnorm", nn.GroupNorm),
                                        ("noise", StepNoise), ("noisy_bn", nn.Sequential)])
def test_notebook_06_norm_choices(norm, kind):
    model = make_mlp(hidden=(20, 20), norm=norm, activation="relu")
    assert all(isinstance(model.get_submodule(f"norm{i}"), kind) for i in (1, 2))
    assert model(torch.randn(4, 64)).shape == (4, 10)
    if norm == "groupnorm":
        assert model.norm1.num_groups == 10
    if norm == "noisy_bn":
        assert isinstance(model.norm1[0], nn.BatchNorm1d) and isinstance(model.norm1[1], StepNoise)


def test_step_noise_changes_every_training_step_and_is_its_mean_in_eval_mode():
    noise = StepNoise(5, level=2.0, seed=0)
    x = torch.randn(8, 5)
    first, second = noise(x), noise(x)
    assert not torch.equal(first, second)                              # a fresh draw at every step
    assert torch.allclose(noise.eval()(x), 2.0 * x)                    # E[s] x + E[m] = (1 + level/2) x
    noise.train().reseed(0)
    assert torch.equal(noise(x), first)                                # reproducible from its seed
    assert torch.equal(StepNoise(5, level=0.0)(x), x)
    with pytest.raises(ValueError, match="noise level must be a non-negative number"):
        StepNoise(5, level=-1.0)
    with pytest.raises(ValueError, match="width must be a positive integer"):
        StepNoise(0)
