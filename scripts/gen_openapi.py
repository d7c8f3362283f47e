"""Write docs/openapi.json, the HTTP API's OpenAPI document, from its routes.

Powertools generates the document from the routes and pydantic models of
layers/common/crmjobs/api.py and the unsubscribe routes of crmjobs/campaign_handlers/unsubscribe.py
(the trigger function serves the same at `GET /openapi.json`); the committed copy is what
users generate clients from. `--check` only compares and exits 1
when the file is out of date. Run it with the project's venv (it imports the package).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import generated_file

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = REPO_ROOT / "docs" / "openapi.json"


def render_document() -> str:
    from crmjobs.api import openapi_document

    return json.dumps(openapi_document(), indent=2) + "\n"


if __name__ == "__main__":
    sys.exit(
        generated_file.main(
            DOCUMENT, lambda _current: render_document(), description=__doc__, make_target="openapi"
        )
    )
