"""What the generators of committed files share: write the file when it differs from what
its sources give, or with `--check` only compare and exit 1 when it is out of date
(`make check` runs every check)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def main(
    path: Path,
    render: Callable[[str | None], str],
    *,
    description: str,
    make_target: str,
    argv: list[str] | None = None,
) -> int:
    """`render` gets the file's current text (None when it does not exist) and returns what
    it should hold."""
    shown = path.relative_to(REPO_ROOT)
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"exit 1 if {shown} is out of date instead of writing it",
    )
    args = parser.parse_args(argv)
    current = path.read_text() if path.exists() else None
    expected = render(current)
    if args.check:
        if current != expected:
            print(f"{shown} is out of date: run `make {make_target}`", file=sys.stderr)
            return 1
        return 0
    if current != expected:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written beside it, then renamed: a reader (a test run) never sees half a file.
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(expected)
        partial.replace(path)
        print(f"wrote {shown}")
    return 0
