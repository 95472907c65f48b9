"""bnlab: the helper package of an interactive course on Batch Normalization.

Modules, one per concern:
    numerics   the same numbers on every x86-64 CPU (set on import, before torch computes)
    config     the course seed (BNLAB_SEED)
    data       digits and synthetic problems, offline
    models     make_mlp, the one model factory
    batchnorm  bnlab's own Batch Normalization
    training   train, the one training loop, and its History
    figures    plotly figure builders with one theme
    widgets    SliderPanel, the one way to build a slider panel
    checks     exercise checkers and their hidden solutions
    panels     the slider panels of every notebook (one module per notebook)
    gradcheck  compare gradients: exact, allclose, largest difference
Notebook machinery: conditioning (01), covariate_shift (02), outside_gradient (03),
batchnorm's functional forms (04), bn_training (05).
"""

from .numerics import pin_numerics

pin_numerics()  # first of all: torch reads these settings when it first computes

__version__ = "0.1.0"


def setup() -> int:
    """Prepare a notebook: seed every generator from BNLAB_SEED, use one CPU thread, set the figure
    theme and renderer. Returns the course seed. Every notebook calls this in its first cell.
    """
    import torch

    from .config import seed_everything
    from .figures import use_notebook_renderer

    # One thread: the course's small networks run as fast, and the printed numbers then do not
    # depend on how many cores a machine has (summation order changes the last bits).
    torch.set_num_threads(1)
    use_notebook_renderer()
    return seed_everything()
