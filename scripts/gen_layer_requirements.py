"""Write layers/common/requirements.txt from `[project].dependencies` in pyproject.toml.

`sam build` installs the Lambda layer's dependencies from that requirements file, while
pip installs the package from pyproject.toml; generating one from the other keeps the two
from drifting apart. `--check` only compares and exits 1 when the file is out of date.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import generated_file

REPO_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = REPO_ROOT / "pyproject.toml"
REQUIREMENTS = REPO_ROOT / "layers" / "common" / "requirements.txt"
HEADER = (
    "# generated from pyproject.toml by scripts/gen_layer_requirements.py; do not edit\n"
    "# (run `make layer-requirements` after changing [project].dependencies)\n"
)


def render_requirements(pyproject: Path = PYPROJECT) -> str:
    """The requirements file's full text for the dependencies declared in `pyproject`."""
    with pyproject.open("rb") as handle:
        dependencies = tomllib.load(handle)["project"]["dependencies"]
    return HEADER + "".join(f"{requirement}\n" for requirement in dependencies)


if __name__ == "__main__":
    sys.exit(
        generated_file.main(
            REQUIREMENTS,
            lambda _current: render_requirements(),
            description=__doc__,
            make_target="layer-requirements",
        )
    )
