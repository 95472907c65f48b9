"""Build the claims ledger from the committed notebooks' own outputs.

    python tools/build_ledger.py           # read the committed notebooks, write the ledger

Every notebook measures its claims over several seeds inside itself (bnlab.seeding.claim_seeds) and
prints one line per claim with ``bnlab.claims.record``. This collects those lines from the committed
notebooks (built by tools/build_notebooks.py: nothing is re-executed here) into
notebooks/claims_ledger.json and renders notebooks/claims_ledger.md from it. Every claim in
``bnlab.claims.CLAIMS`` must be recorded exactly once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LEDGER_JSON, LEDGER_PAGE = NOTEBOOKS / "claims_ledger.json", NOTEBOOKS / "claims_ledger.md"
sys.path.insert(0, str(ROOT))
from bnlab import claims, course  # noqa: E402  (importing course registers every lesson's claims)
from tools.notebook_runner import printed_text  # noqa: E402


def collect() -> dict[str, claims.Measurement]:
    """Claim key -> Measurement, from the registry's notebooks in order; fails on a claim recorded
    twice, on a claim no notebook records, and on a recorded claim the registry does not know."""
    ledger: dict[str, claims.Measurement] = {}
    for entry in course.COURSE:
        for measurement in claims.parse(printed_text(nbformat.read(NOTEBOOKS / entry.file, as_version=4))):
            if measurement.key in ledger:
                raise SystemExit(f"{measurement.key} is recorded twice")
            claims.claim(measurement.key)  # raises for an unknown key
            ledger[measurement.key] = measurement
    missing = set(claims.CLAIMS) - set(ledger)
    if missing:
        raise SystemExit("no notebook records: " + ", ".join(sorted(missing)))
    return ledger


def main() -> None:
    ledger = collect()
    LEDGER_JSON.write_text(claims.ledger_json(ledger))
    LEDGER_PAGE.write_text(claims.ledger_markdown(ledger))
    print(f"{len(ledger)} claims -> {LEDGER_PAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
