"""Print one of the README's two commands, so CI runs exactly what the README tells users to run.

    python3 tools/readme_commands.py test     # the command after <!-- test-command -->
    python3 tools/readme_commands.py start    # the command after <!-- start-command -->
"""

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_command(name: str, text: str | None = None) -> str:
    text = README.read_text() if text is None else text
    match = re.search(rf"<!-- {name}-command -->\s*```bash\n(.+?)\n```", text, re.S)
    if not match:
        raise SystemExit(f"README.md has no <!-- {name}-command --> followed by a bash block")
    return match.group(1).strip()


if __name__ == "__main__":
    print(readme_command(sys.argv[1] if len(sys.argv) > 1 else "test"))
