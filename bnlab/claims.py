"""The claims ledger: every claim about Batch Normalization the course puts to a test.

A notebook tests a claim in a cell and reports what it measured with ``record``:

    record("ics-percentile-drift", holds=drift_bn < drift_plain,
           measured=f"median drift {drift_plain:.2f} without BN, {drift_bn:.2f} with BN")

``record`` prints one line in a fixed format. ``tools/build_ledger.py`` runs every notebook under
BNLAB_SEED 0..4, collects those lines into notebooks/claims_ledger.json, and writes the ledger page
notebooks/claims_ledger.md from it: for each claim, where the course tests it, what each seed measured,
and a verdict. tests/test_claims.py checks that the committed notebooks and every other-seed run
print exactly what the ledger holds, so the page cannot drift from the experiments.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from .config import course_seed

SEEDS = (0, 1, 2, 3, 4)
HOLDS, PARTLY, DOES_NOT_HOLD = "holds", "partly", "does not hold"
OUTCOMES = (HOLDS, PARTLY, DOES_NOT_HOLD)
# One recorded line: "Claim <key> [<outcome>] seed <k>: <what was measured>"
RECORD_LINE = re.compile(r"^Claim (?P<key>[a-z0-9-]+) \[(?P<outcome>[a-z ]+)\] seed (?P<seed>\d+): "
                         r"(?P<measured>.+)$", re.M)


@dataclass(frozen=True)
class Claim:
    """A claim about BN, who makes it, and where the course tests it (notebook stem and section)."""

    key: str
    statement: str
    source: str
    notebook: str
    section: str


@dataclass(frozen=True)
class Measurement:
    """What one run (one seed) measured for one claim."""

    key: str
    seed: int
    outcome: str  # HOLDS, PARTLY or DOES_NOT_HOLD
    measured: str  # the numbers behind the outcome, one line

    def line(self) -> str:
        return f"Claim {self.key} [{self.outcome}] seed {self.seed}: {self.measured}"


def _claims(*claims: Claim) -> dict[str, Claim]:
    return {claim.key: claim for claim in claims}


PAPER = "Ioffe & Szegedy 2015"
SANTURKAR = "Santurkar et al. 2018"
CLAIMS: dict[str, Claim] = _claims(
    # ---- notebook 02
    Claim("ics-percentile-drift",
          "Without BN the distribution of a hidden unit's input keeps shifting during training; with BN it "
          "is much more stable.", f"{PAPER}, Figure 1 (b, c)", "02_covariate_shift",
          "3. Internal covariate shift: the paper's Figure 1 on digits"),
    Claim("bn-trains-faster",
          "With BN the network reaches a given test accuracy in fewer steps.", f"{PAPER}, Figure 1 (a)",
          "02_covariate_shift", "5. The hypothesis, and why it is still one"),
    Claim("bn-no-protection-from-test-shift",
          "BN does not protect a trained model against a shift of the test inputs.", "course (seed 000, Q1)",
          "02_covariate_shift",
          "1. Covariate shift: the test data are not the training data"),
    # ---- notebook 03
    Claim("outside-gradient-bias-grows",
          "Normalizing outside the gradient step makes the bias grow without bound while the loss does "
          "not change.", f"{PAPER}, section 2", "03_normalizing_outside_the_gradient",
          "1. The paper's argument, and a layer that acts it out"),
    Claim("outside-gradient-model-blows-up",
          "With normalization statistics computed outside the gradient step, the model blows up.",
          f"{PAPER}, section 2", "03_normalizing_outside_the_gradient", "4. The same failure in a real network"),
    # ---- notebook 04
    Claim("bn-matches-two-moments-only",
          "BN matches the mean and variance of a batch, not its shape: a bimodal batch stays bimodal.",
          "seed 000, Q2", "04_batchnorm_from_scratch",
          "5. What BN does not fix: the shape of a distribution"),
    Claim("eval-needs-population-statistics",
          "At test time BN must use population (running) statistics: batch statistics of small test "
          "batches cost accuracy.", f"{PAPER}, Algorithm 2", "04_batchnorm_from_scratch",
          "4. Training mode and eval mode"),
    # ---- notebook 05
    Claim("bn-allows-higher-learning-rates",
          "BN allows much higher learning rates.", f"{PAPER}, abstract and section 3.3",
          "05_training_with_batchnorm", "2. Higher learning rates"),
    Claim("bn-forgives-initialization",
          "With BN one can be less careful about initialization: the output does not depend on the weights' "
          "scale, and the gradient scales as 1/a.", f"{PAPER}, section 3.3; seed 003",
          "05_training_with_batchnorm", "3. Initialization and scale invariance"),
    Claim("bn-trains-saturating-nets",
          "BN makes it possible to train networks with saturating nonlinearities.", f"{PAPER}, section 3.3; "
          "seed 001", "05_training_with_batchnorm", "4. Saturating nonlinearities: sigmoid and tanh"),
    Claim("gamma-beta-settle-early",
          "gamma and beta settle early in training.", "seed 004", "05_training_with_batchnorm",
          "6. γ and β during training"),
    Claim("gamma-beta-fluctuate-with-learning-rate",
          "A higher learning rate makes gamma and beta fluctuate more.", "seed 004", "05_training_with_batchnorm",
          "6. γ and β during training"),
    Claim("jacobian-singular-values-near-one",
          "BN brings the singular values of the layer Jacobians close to 1.", f"{PAPER}, section 3.3; "
          "seed 003", "05_training_with_batchnorm", "7. Do the layer Jacobians have singular values near 1?"),
    # ---- notebook 06 (claims examined in why_batchnorm_works; keep this block last)
    Claim("noisy-bn-still-helps",
          "BN still helps when noise after every BN layer makes the layer inputs less stable than without "
          "BN: noisy BN trains better than the same noise without BN, and than the plain network.",
          f"{SANTURKAR}, section 2.1", "06_why_batchnorm_works",
          "1. Noisy BN: make the inputs unstable on purpose"),
    Claim("ics-gradient-change-reduced",
          "BN reduces internal covariate shift, measured as the change of a layer's gradient when the layers "
          "below it are updated on the same batch.",
          f"{PAPER}, abstract; tested as in {SANTURKAR}, section 2.2",
          "06_why_batchnorm_works", "2. Internal covariate shift, measured through the gradient"),
    Claim("bn-smooths-loss-landscape-median",
          "With BN the loss and its gradient change less along the gradient direction (typical step of "
          "training).",
          f"{SANTURKAR}, section 3.1 and Figure 4", "06_why_batchnorm_works",
          "3. The loss landscape along the gradient"),
    Claim("bn-smooths-loss-landscape-worst-case",
          "With BN the loss and its gradient change less along the gradient direction (worst steps of "
          "training).",
          f"{SANTURKAR}, section 3.1 and Figure 4", "06_why_batchnorm_works",
          "3. The loss landscape along the gradient"),
    Claim("bn-improves-beta-smoothness",
          "BN makes the loss smoother: a smaller effective β-smoothness (gradient change per unit of step).",
          f"{SANTURKAR}, section 3.1 and Figure 4 (c)", "06_why_batchnorm_works",
          "3. The loss landscape along the gradient"),
    Claim("bn-weights-scale-invariant",
          "Under BN the loss does not depend on the scale of a unit's incoming weights: the gradient is "
          "orthogonal to them, their norm grows, and the effective learning rate η/|w|² falls.",
          f"{PAPER}, section 3.3; van Laarhoven 2017; Arora et al. 2019", "06_why_batchnorm_works",
          "4. Scale invariance and the effective learning rate"),
    Claim("bn-output-depends-on-batch",
          "In training mode, an example's output under BN depends on the other examples of its batch.",
          f"{PAPER}, section 3.4; seed 003", "06_why_batchnorm_works", "5. Pitfalls, each one run"),
    Claim("precise-bn-improves-accuracy",
          "Recomputing the population statistics at the final weights (precise BN) improves test accuracy "
          "over the running averages.", "Wu & Johnson 2021, section 3", "06_why_batchnorm_works",
          "5. Pitfalls, each one run"),
    Claim("layernorm-groupnorm-batch-independent",
          "LayerNorm and GroupNorm do not depend on the batch, and keep working with batches of 2 where BN "
          "fails.",
          "Ba et al. 2016; Wu & He 2018", "06_why_batchnorm_works",
          "6. Alternatives: LayerNorm and GroupNorm"),
)


def claim(key: str) -> Claim:
    """The claim named ``key``; a ValueError lists the known keys for a mistyped one."""
    if key not in CLAIMS:
        raise ValueError(f"unknown claim {key!r}; known claims: {', '.join(CLAIMS)}")
    return CLAIMS[key]


def record(key: str, holds: bool | np.bool_ | str, measured: str, seed: int | None = None) -> None:
    """Report, in a notebook, what was measured for claim ``key`` under the course seed; prints one line
    (and returns nothing, so a record at the end of a cell adds no output of its own).

    holds: True / False, or an outcome string (HOLDS, PARTLY, DOES_NOT_HOLD);
    measured: the figures behind the outcome, one line (they are compared by nbval and the ledger).
    """
    claim(key)
    if isinstance(holds, str) and holds in OUTCOMES:
        outcome = holds
    elif isinstance(holds, (bool, np.bool_)):  # numpy comparisons give np.bool_
        outcome = HOLDS if holds else DOES_NOT_HOLD
    else:
        raise ValueError(f"holds must be True, False or one of {OUTCOMES}, got {holds!r}")
    if "\n" in measured or not measured.strip():
        raise ValueError("measured must be one non-empty line")
    measurement = Measurement(key, course_seed() if seed is None else seed, outcome, measured.strip())
    print(measurement.line())


def parse(text: str) -> list[Measurement]:
    """Every recorded claim line in ``text`` (a notebook's outputs, say)."""
    return [Measurement(m["key"], int(m["seed"]), m["outcome"], m["measured"]) for m in RECORD_LINE.finditer(text)]


def verdict(outcomes: Iterable[str]) -> str:
    """The ledger's verdict over seeds: every seed holds, none does, or in between."""
    outcomes = list(outcomes)
    if outcomes and all(outcome == HOLDS for outcome in outcomes):
        return "holds here"
    if outcomes and all(outcome == DOES_NOT_HOLD for outcome in outcomes):
        return "does not hold here"
    return "holds with caveats"


def load_ledger(path: Path) -> dict[str, dict[int, Measurement]]:
    """The ledger's JSON: claim key -> seed -> Measurement."""
    raw = json.loads(Path(path).read_text())
    return {key: {int(seed): Measurement(key, int(seed), entry["outcome"], entry["measured"])
                  for seed, entry in seeds.items()} for key, seeds in raw.items()}


def ledger_json(measurements: Mapping[str, Mapping[int, Measurement]]) -> str:
    """The JSON text of a ledger, claims in the order of CLAIMS, seeds in order."""
    data = {key: {str(seed): {"outcome": m.outcome, "measured": m.measured}
                  for seed, m in sorted(measurements[key].items())}
            for key in CLAIMS if key in measurements}
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell (a bare | would end the cell)."""
    return text.replace("|", "\\|")


def ledger_markdown(measurements: Mapping[str, Mapping[int, Measurement]]) -> str:
    """The ledger page: one section per claim, with where it is tested, each seed's figures, the verdict."""
    lines = ["# The claims ledger", "",
             "Every claim about Batch Normalization that this course puts to a test, where it is tested, what "
             f"the experiment measured under BNLAB_SEED {SEEDS[0]} to {SEEDS[-1]}, and a verdict: *holds here* "
             "(every seed), *does not hold here* (no seed), or *holds with caveats* (partly, or not for every "
             "seed). Generated by `python tools/build_ledger.py` from the notebooks' own outputs; "
             "`tests/test_claims.py` fails if a notebook stops printing what this page says.", "",
             "| claim | source | tested in | verdict |", "|---|---|---|---|"]
    for key, claim_ in CLAIMS.items():
        if key in measurements:
            outcomes = [m.outcome for m in measurements[key].values()]
            lines.append(f"| [{_cell(claim_.statement)}](#{key}) | {_cell(claim_.source)} | "
                         f"[{claim_.notebook[:2]}]({claim_.notebook}.ipynb) | **{verdict(outcomes)}** |")
    for key, claim_ in CLAIMS.items():
        if key not in measurements:
            continue
        outcomes = [m.outcome for m in measurements[key].values()]
        lines += ["", f'<a id="{key}"></a>', f"## {claim_.statement}", "",
                  f"Source: {claim_.source}. Tested in [{claim_.notebook}]({claim_.notebook}.ipynb), "
                  f"section *{claim_.section}*. Verdict: **{verdict(outcomes)}**.", "",
                  "| seed | outcome | measured |", "|---|---|---|"]
        lines += [f"| {seed} | {m.outcome} | {_cell(m.measured)} |" for seed, m in sorted(measurements[key].items())]
    return "\n".join(lines) + "\n"
