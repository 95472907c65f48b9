"""bnlab: the helper package of an interactive course on Batch Normalization.

The core, which knows no lesson:
    reproducibility  bit-identical rebuilds on request (BNLAB_PINNED_NUMERICS=1; off by default)
    seeding          the course seed (BNLAB_SEED), the seeds claims are measured over, the generators
    statistics       statistics over seeds: OverSeeds (median and range), Support (k of n seeds)
    parallel         independent runs side by side, one per CPU core
    data             digits and synthetic problems, offline; standardize, whiten
    models           make_mlp, the one model factory (an MLP of explicit Blocks)
    batchnorm        bnlab's own Batch Normalization layer
    training         train, the one training loop, and its History
    ensemble         train_ensemble: many networks of one architecture in one batched computation
    runs             train once, reuse everywhere: the one cache of training runs
    probes           looking inside a network: accuracy, layer inputs, gradients, saturation
    figures          plotly figure builders with one theme
    widgets          SliderPanel, the one way to build a slider panel
    exercises        Verdict, Exercise and the machinery of exercise checks
    claims           the claims protocol: record a measurement, build the ledger
    compare          compare two tensors: exact, allclose, largest difference
    environment      notebook 00's environment check
One package per notebook: bnlab.lessons.nb<NN_name> (its experiments, figures, checks, claims);
bnlab.course lists the notebooks and everything that belongs to each.
"""

from .reproducibility import pin_numerics

pin_numerics()  # only with BNLAB_PINNED_NUMERICS=1; first, since torch reads them when it first computes

__version__ = "0.1.0"


def setup() -> int:
    """Prepare a notebook: seed every generator from BNLAB_SEED, use one CPU thread, set the figure
    theme and renderer. Returns the course seed. Every notebook calls this in its first cell.
    """
    import torch

    from .figures import use_notebook_renderer
    from .seeding import seed_everything

    # One thread: the course's small networks run as fast, and the printed numbers then do not
    # depend on how many cores a machine has (summation order changes the last bits).
    torch.set_num_threads(1)
    use_notebook_renderer()
    return seed_everything()
