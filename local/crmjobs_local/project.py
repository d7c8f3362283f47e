"""Where the project's files are, wherever the local tools run from.

The local runtime and the CLI are installed packages: they find the SAM template from
the current folder upward (or ``CRMJOBS_TEMPLATE``), and a running ``crmjobs dev`` by
the ``endpoint.json`` it writes into its data dir (``CRMJOBS_DATA_DIR``, or ``.crmjobs``
beside the template).
"""

from __future__ import annotations

import os
from pathlib import Path

TEMPLATE_ENV = "CRMJOBS_TEMPLATE"
DATA_DIR_ENV = "CRMJOBS_DATA_DIR"
TEMPLATE_NAME = "template.yaml"
DATA_DIR_NAME = ".crmjobs"
ENDPOINT_FILE = "endpoint.json"
#: What tells this project's template from any other file called template.yaml.
_SAM_TRANSFORM = "AWS::Serverless-2016-10-31"


class ProjectNotFound(LookupError):
    """No SAM template where the tools look for one; the message says where they looked."""


def find_template(start: Path | None = None) -> Path:
    """``CRMJOBS_TEMPLATE`` if set, else the first SAM template.yaml in ``start`` (default:
    the current folder) or a folder above it."""
    configured = os.environ.get(TEMPLATE_ENV)
    if configured:
        path = Path(configured).expanduser().resolve()
        if not path.is_file():
            raise ProjectNotFound(f"{TEMPLATE_ENV}={configured}: no such file")
        return path
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / TEMPLATE_NAME
        if candidate.is_file() and _SAM_TRANSFORM in candidate.read_text(errors="replace"):
            return candidate
    raise ProjectNotFound(
        f"no SAM {TEMPLATE_NAME} in {here} or any folder above it: run from the project"
        f" or set {TEMPLATE_ENV}"
    )


def default_data_dir(template: Path) -> Path:
    """Where local state lives: ``CRMJOBS_DATA_DIR``, else ``.crmjobs`` beside the template."""
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(template).resolve().parent / DATA_DIR_NAME


def dev_server_endpoint_file(start: Path | None = None) -> Path:
    """The endpoint.json a ``crmjobs dev`` of this project writes (it may not exist yet).

    ``CRMJOBS_DATA_DIR`` if set; else the first ``.crmjobs/endpoint.json`` in ``start``
    (default: the current folder) or above it; else the one beside the project's template.
    """
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser().resolve() / ENDPOINT_FILE
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / DATA_DIR_NAME / ENDPOINT_FILE
        if candidate.is_file():
            return candidate
    return default_data_dir(find_template(here)) / ENDPOINT_FILE
