import os
import threading

import numpy as np
import pytest
import torch

from bnlab import parallel, seeding


def test_default_seed_is_zero(monkeypatch):
    monkeypatch.delenv("BNLAB_SEED", raising=False)
    assert seeding.course_seed() == 0


def test_seed_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("BNLAB_SEED", "3")
    assert seeding.course_seed() == 3
    assert seeding.resolve_seed(None) == 3
    assert seeding.resolve_seed(5) == 5


@pytest.mark.parametrize("raw", ["abc", "1.5", "-2"])
def test_bad_seed_variable_says_what_is_wrong(monkeypatch, raw):
    monkeypatch.setenv("BNLAB_SEED", raw)
    with pytest.raises(ValueError, match="BNLAB_SEED"):
        seeding.course_seed()


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_bad_seed_argument(bad):
    with pytest.raises(ValueError, match="seed"):
        seeding.resolve_seed(bad)


def test_generators_repeat_for_a_seed_and_differ_between_seeds_and_streams():
    assert np.array_equal(seeding.numpy_rng(1).random(4), seeding.numpy_rng(1).random(4))
    assert not np.array_equal(seeding.numpy_rng(1).random(4), seeding.numpy_rng(2).random(4))
    assert not np.array_equal(seeding.numpy_rng(1, stream=0).random(4), seeding.numpy_rng(1, stream=1).random(4))
    a = torch.rand(3, generator=seeding.torch_generator(4))
    assert torch.equal(a, torch.rand(3, generator=seeding.torch_generator(4)))
    assert not torch.equal(a, torch.rand(3, generator=seeding.torch_generator(5)))


def test_seed_everything_seeds_the_global_generators(monkeypatch):
    monkeypatch.setenv("BNLAB_SEED", "7")
    assert seeding.seed_everything() == 7
    first = torch.rand(2), np.random.rand(2)
    seeding.seed_everything()
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
    with parallel.single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


# ---- side_by_side: independent runs on one thread per core ---------------------------------------

@pytest.fixture
def two_cores(monkeypatch):
    """side_by_side on two threads, even in a test worker that conftest.py gives one core."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs a machine with two cores")
    monkeypatch.setenv("BNLAB_CORES", "2")


def test_side_by_side_keeps_the_order_and_computes_on_one_torch_thread(two_cores):
    results = parallel.side_by_side(lambda i: (i * i, torch.get_num_threads(), threading.get_ident()), range(7))
    assert [square for square, _, _ in results] == [i * i for i in range(7)]
    assert {threads for _, threads, _ in results} == {1}
    assert threading.get_ident() not in {thread for _, _, thread in results}  # on the pool's threads
    assert parallel.side_by_side(lambda i: i, []) == []


def test_bnlab_cores_limits_the_runs_side_by_side(monkeypatch):
    monkeypatch.setenv("BNLAB_CORES", "1")
    assert parallel.cpu_cores() == 1
    assert {thread for thread in parallel.side_by_side(lambda i: threading.get_ident(), range(4))} == {
        threading.get_ident()}  # one core: in this thread, one run after the other
    monkeypatch.setenv("BNLAB_CORES", "512")
    assert parallel.cpu_cores() == len(os.sched_getaffinity(0))  # never more than the process may use
    for bad in ("0", "two", "-1", "1.5"):
        monkeypatch.setenv("BNLAB_CORES", bad)
        with pytest.raises(ValueError, match="BNLAB_CORES must be a whole number of cores"):
            parallel.cpu_cores()


def test_side_by_side_runs_give_the_numbers_they_give_alone(two_cores):
    from bnlab.data import load_digits
    from bnlab.models import make_mlp
    from bnlab.training import train

    data = load_digits(seed=0)

    def run(lr):
        model = make_mlp(hidden=(30, 30), norm="torch_bn", seed=0)
        history = train(model, data, steps=30, lr=lr, record_every=10, seed=0, progress=False)
        return history.batch_loss, history.test_accuracy, [p.detach().clone() for p in model.parameters()]

    learning_rates = [0.1, 0.5, 1.0, 2.0]
    together = parallel.side_by_side(run, learning_rates)
    with parallel.single_thread():
        alone = [run(lr) for lr in learning_rates]
    for (loss, accuracy, params), (loss_alone, accuracy_alone, params_alone) in zip(together, alone):
        assert loss == loss_alone and accuracy == accuracy_alone  # exactly, not approximately
        assert all(torch.equal(p, q) for p, q in zip(params, params_alone))


def test_side_by_side_raises_the_error_of_a_failing_item():
    def fail_on_three(i):
        if i == 3:
            raise ValueError("item 3 is bad")
        return i

    with pytest.raises(ValueError, match="item 3 is bad"):
        parallel.side_by_side(fail_on_three, range(6))
