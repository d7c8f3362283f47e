"""Every benchmark in sequence, each in its own process, with modest sizes (`make bench`).

Run: python bench/run.py
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
BENCHMARKS = (
    ("lead_scoring.py", "--prospects", "2000"),
    ("documents.py",),
    ("local_runtime.py",),
    ("campaigns.py", "--recipients", "1000", "--rate", "100"),
    ("agents.py", "--executions", "10"),
    ("dashboard.py", "--runs", "2000"),
    ("execution_history.py",),
    ("cold_start.py",),
    ("fuzz.py", "--inputs", "200"),
)


def main() -> int:
    failed = []
    for script, *arguments in BENCHMARKS:
        command = " ".join([f"bench/{script}", *arguments])
        print(f"\n{'=' * 100}\n{command}\n{'=' * 100}", flush=True)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(BENCH / script), *arguments], check=False)
        elapsed = time.perf_counter() - started
        status = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
        print(f"--- {command}: {status} in {elapsed:.0f} s", flush=True)
        if result.returncode != 0:
            failed.append(command)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
