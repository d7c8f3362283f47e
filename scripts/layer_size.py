"""Print the size of the built Lambda layer (after `sam build`), and its largest packages.

Lambda allows 250 MB unzipped for a function and all its layers; the zipped size is what
is uploaded. Run: python scripts/layer_size.py [.aws-sam/build/CommonLayer]
"""

from __future__ import annotations

import io
import sys
import zipfile
from collections import Counter
from pathlib import Path

DEFAULT_LAYER = Path(".aws-sam/build/CommonLayer")
MIB = 2**20
LARGEST = 5


def main(argv: list[str]) -> int:
    layer = Path(argv[0]) if argv else DEFAULT_LAYER
    files = sorted(path for path in layer.rglob("*") if path.is_file())
    if not files:
        print(f"no built layer in {layer}: run sam build first", file=sys.stderr)
        return 1
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(layer))
    by_package: Counter[str] = Counter()
    for path in files:
        relative = path.relative_to(layer).parts
        by_package[relative[1] if len(relative) > 2 else relative[-1]] += path.stat().st_size
    unzipped = sum(by_package.values())
    largest = ", ".join(
        f"{name} {size / MIB:.1f}" for name, size in by_package.most_common(LARGEST)
    )
    print(
        f"layer {layer.name}: {unzipped / MIB:.1f} MiB unzipped, {buffer.tell() / MIB:.1f} MiB"
        f" zipped, {len(files)} files; largest (MiB): {largest}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
