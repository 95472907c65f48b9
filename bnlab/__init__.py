"""bnlab: the helper package of an interactive course on Batch Normalization.

Modules, one per concern:
    config     the course seed (BNLAB_SEED)
    data       digits and synthetic problems, offline
    models     make_mlp, the one model factory
    batchnorm  bnlab's own Batch Normalization
    training   train, the one training loop, and its History
    figures    plotly figure builders with one theme
    widgets    SliderPanel, the one way to build a slider panel
    checks     exercise checkers and their hidden solutions
"""

__version__ = "0.1.0"


def setup() -> int:
    """Prepare a notebook: seed every generator from BNLAB_SEED, set the figure theme and renderer.

    Returns the course seed. Every notebook calls this in its first code cell.
    """
    from .config import seed_everything
    from .figures import use_notebook_renderer

    use_notebook_renderer()
    return seed_everything()
