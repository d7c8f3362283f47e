"""Write docs/openapi.json, the HTTP API's OpenAPI document, from its routes.

Powertools generates the document from the routes and pydantic models of
layers/common/crmjobs/api.py and the unsubscribe routes of crmjobs/campaign_handlers.py
(the trigger function serves the same at `GET /openapi.json`); the committed copy is what
users generate clients from. `--check` only compares and exits 1
when the file is out of date. Run it with the project's venv (it imports the package).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = REPO_ROOT / "docs" / "openapi.json"


def render_document() -> str:
    from crmjobs.api import openapi_document

    return json.dumps(openapi_document(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if docs/openapi.json differs from the routes instead of writing it",
    )
    args = parser.parse_args(argv)
    expected = render_document()
    current = DOCUMENT.read_text() if DOCUMENT.exists() else None
    relative = DOCUMENT.relative_to(REPO_ROOT)
    if args.check:
        if current != expected:
            print(f"{relative} is out of date: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    if current != expected:
        DOCUMENT.parent.mkdir(exist_ok=True)
        DOCUMENT.write_text(expected)
        print(f"wrote {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
