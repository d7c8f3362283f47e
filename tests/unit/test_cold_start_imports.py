"""What a function's cold start imports: nothing it does not use.

Each function of template.yaml is imported in a fresh interpreter with its environment as
deployed (bench/cold_start.py's), and the modules it loaded are checked: the local runtime,
moto, numpy, opensearch-py, the X-Ray SDK, boto3 (s3transfer) and the Powertools parser
models (which Powertools' batch utility loads when pydantic came first) stay out.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from cold_start import functions_of, lambda_environment  # noqa: E402

NEVER_AT_START = (
    "crmjobs_local",
    "moto",
    "numpy",
    "opensearchpy",
    "aws_xray_sdk",
    "boto3",
    "s3transfer",
    "email_validator",
    "aws_lambda_powertools.utilities.parser",
)

CHILD = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import app
print(json.dumps(sorted(sys.modules)))
"""

FUNCTIONS = functions_of(ROOT / "template.yaml")


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda function: function.folder.name)
def test_a_cold_start_imports_only_what_the_function_uses(function):
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(function.folder), str(ROOT / "layers" / "common")],
        env=lambda_environment(function),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    unwanted = sorted(
        {
            watched
            for module in loaded
            for watched in NEVER_AT_START
            if module == watched or module.startswith(watched + ".")
        }
    )
    assert unwanted == []


def test_every_function_is_checked():
    assert len(FUNCTIONS) == len(list((ROOT / "functions").glob("*/app.py")))
