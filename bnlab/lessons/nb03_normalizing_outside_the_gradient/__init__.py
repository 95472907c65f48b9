"""Notebook 03, normalizing outside the gradient: why the normalization must be inside the gradient step
(sections 1-6).

experiments  the four normalizations, the paper's toy layer and its plain training loop, the MLP readings
figures      the drift panel (section 2)
checks       the exercises: the bias drift, centering and standardizing inside autograd
"""

from __future__ import annotations

from ...claims import PAPER, Claim, register
from ...widgets import SliderPanel
from . import checks, experiments, figures  # noqa: F401  (checks: read by bnlab.course)


def drift() -> SliderPanel:
    """Section 2's drift panel."""
    return figures.drift_panel(experiments.all_drift_sweeps())


PANELS = {"03 drift outside the gradient": (drift, {
    "lr": [0.01, 0.0137, 0.1, 0.137, 0.3],  # 0.0137 and 0.137: on no grid, trained when chosen
    "normalization": ["centering only", "centering and scaling"],
})}

CLAIMS = (
    Claim("outside-gradient-bias-grows",
          "Normalizing outside the gradient step makes the bias grow without bound while the loss does "
          "not change.", f"{PAPER}, section 2", "03_normalizing_outside_the_gradient",
          "1. The paper's argument, and a layer that acts it out"),
    Claim("outside-gradient-model-blows-up",
          "With normalization statistics computed outside the gradient step, the model blows up.",
          f"{PAPER}, section 2", "03_normalizing_outside_the_gradient", "4. The same failure in a real network"),
)
register(*CLAIMS)
