import numpy as np
import pytest
import torch

from bnlab import config


def test_default_seed_is_zero(monkeypatch):
    monkeypatch.delenv("BNLAB_SEED", raising=False)
    assert config.course_seed() == 0


def test_seed_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("BNLAB_SEED", "3")
    assert config.course_seed() == 3
    assert config.resolve_seed(None) == 3
    assert config.resolve_seed(5) == 5


@pytest.mark.parametrize("raw", ["abc", "1.5", "-2"])
def test_bad_seed_variable_says_what_is_wrong(monkeypatch, raw):
    monkeypatch.setenv("BNLAB_SEED", raw)
    with pytest.raises(ValueError, match="BNLAB_SEED"):
        config.course_seed()


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_bad_seed_argument(bad):
    with pytest.raises(ValueError, match="seed"):
        config.resolve_seed(bad)


def test_generators_repeat_for_a_seed_and_differ_between_seeds_and_streams():
    assert np.array_equal(config.numpy_rng(1).random(4), config.numpy_rng(1).random(4))
    assert not np.array_equal(config.numpy_rng(1).random(4), config.numpy_rng(2).random(4))
    assert not np.array_equal(config.numpy_rng(1, stream=0).random(4), config.numpy_rng(1, stream=1).random(4))
    a = torch.rand(3, generator=config.torch_generator(4))
    assert torch.equal(a, torch.rand(3, generator=config.torch_generator(4)))
    assert not torch.equal(a, torch.rand(3, generator=config.torch_generator(5)))


def test_seed_everything_seeds_the_global_generators(monkeypatch):
    monkeypatch.setenv("BNLAB_SEED", "7")
    assert config.seed_everything() == 7
    first = torch.rand(2), np.random.rand(2)
    config.seed_everything()
    assert torch.equal(first[0], torch.rand(2)) and np.array_equal(first[1], np.random.rand(2))


def test_setup_seeds_uses_one_thread_and_returns_the_seed(monkeypatch):
    import bnlab

    monkeypatch.setenv("BNLAB_SEED", "2")
    threads = torch.get_num_threads()
    try:
        assert bnlab.setup() == 2
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def test_single_thread_restores_the_thread_count():
    before = torch.get_num_threads()
    with config.single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
