"""Build the claims ledger from the notebooks' own outputs.

    python tools/build_ledger.py           # run the notebooks for seeds 1..4, write the ledger
    python tools/build_ledger.py 06        # re-run only notebook 06; keep the other claims' entries
    python tools/build_ledger.py --render  # only re-render claims_ledger.md from claims_ledger.json

Seed 0 is read from the committed notebooks (built by tools/build_notebooks.py with seed 0); seeds
1..4 are run here, two notebooks at a time, in fresh kernels with BNLAB_SEED set. Every line a
notebook printed with ``bnlab.claims.record`` is collected into notebooks/claims_ledger.json, and
notebooks/claims_ledger.md is rendered from it. Every claim in ``bnlab.claims.CLAIMS`` must be
recorded by some notebook for every seed.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LEDGER_JSON, LEDGER_PAGE = NOTEBOOKS / "claims_ledger.json", NOTEBOOKS / "claims_ledger.md"
sys.path.insert(0, str(ROOT))
from bnlab import claims, course  # noqa: E402  (importing course registers every lesson's claims)
from tools.notebook_runner import execute, printed_text  # noqa: E402


def run(path: Path, seed: int) -> list[claims.Measurement]:
    """Execute a notebook in a fresh kernel with BNLAB_SEED=seed; its recorded claims."""
    return claims.parse(printed_text(execute(path, cwd=NOTEBOOKS, seed=seed)))


def collect(seeds: tuple[int, ...], prefixes: list[str]) -> dict[str, dict[int, claims.Measurement]]:
    """Claim key -> seed -> Measurement, from the notebooks whose names start with one of ``prefixes``
    (all when empty); the other claims keep their entries in the committed ledger."""
    ledger: dict[str, dict[int, claims.Measurement]] = {}
    if prefixes and LEDGER_JSON.exists():
        ledger = claims.load_ledger(LEDGER_JSON)
    notebooks = [NOTEBOOKS / entry.file for entry in course.COURSE  # the registry's notebooks, in order
                 if (not prefixes or p.name.startswith(tuple(prefixes)))
                 and claims.parse(printed_text(nbformat.read(p, as_version=4)))]
    measured = [claims.parse(printed_text(nbformat.read(p, as_version=4))) for p in notebooks]
    jobs = [(p, seed) for seed in seeds if seed != 0 for p in notebooks]
    with ProcessPoolExecutor(max_workers=2) as pool:
        measured += list(pool.map(run, *zip(*jobs)))
    for key in {m.key for ms in measured for m in ms}:
        ledger[key] = {}
    for measurement in (m for ms in measured for m in ms):
        ledger[measurement.key][measurement.seed] = measurement
    for key in set(ledger) - set(claims.CLAIMS):
        del ledger[key]  # a claim no longer in the registry
    return ledger


def check_complete(ledger: dict[str, dict[int, claims.Measurement]]) -> None:
    missing = [f"{key} (seeds {sorted(set(claims.SEEDS) - set(ledger.get(key, {})))})"
               for key in claims.CLAIMS if set(ledger.get(key, {})) != set(claims.SEEDS)]
    if missing:
        raise SystemExit("no recorded measurement for: " + ", ".join(missing))


def main(arguments: list[str]) -> None:
    started = time.monotonic()
    prefixes = [a for a in arguments if not a.startswith("--")]
    ledger = claims.load_ledger(LEDGER_JSON) if "--render" in arguments else collect(claims.SEEDS, prefixes)
    check_complete(ledger)
    LEDGER_JSON.write_text(claims.ledger_json(ledger))
    LEDGER_PAGE.write_text(claims.ledger_markdown(ledger))
    print(f"{len(ledger)} claims x {len(claims.SEEDS)} seeds -> {LEDGER_PAGE.relative_to(ROOT)} "
          f"in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
