"""Write layers/common/requirements.txt from `[project].dependencies` in pyproject.toml.

`sam build` installs the Lambda layer's dependencies from that requirements file, while
pip installs the package from pyproject.toml; generating one from the other keeps the two
from drifting apart. `--check` only compares and exits 1 when the file is out of date.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if the requirements file differs from pyproject.toml instead of writing it",
    )
    args = parser.parse_args(argv)
    expected = render_requirements()
    current = REQUIREMENTS.read_text() if REQUIREMENTS.exists() else None
    relative = REQUIREMENTS.relative_to(REPO_ROOT)
    if args.check:
        if current != expected:
            print(f"{relative} is out of date: run `make layer-requirements`", file=sys.stderr)
            return 1
        return 0
    if current != expected:
        REQUIREMENTS.write_text(expected)
        print(f"wrote {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
