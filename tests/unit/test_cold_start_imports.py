"""What a function's cold start imports: nothing it does not use.

Each function of template.yaml is imported in a fresh interpreter with its environment as
deployed (bench/cold_start.py's), and the modules it loaded are checked: the local runtime,
moto, numpy, opensearch-py, the X-Ray SDK, boto3 (s3transfer) and the Powertools parser
models (which Powertools' batch utility loads when pydantic came first) stay out, and so
does the batch utility itself (asyncio and every event data class, about 40 ms) in a
function that no queue or stream feeds. Garbage collection, paused during the import in
Lambda (crmjobs/__init__.py), runs again once the handler is made.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crmjobs_local.template import DynamoDbStreamEventSource, SqsEventSource, Template

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
import gc, json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import app
print(json.dumps({
    "modules": sorted(sys.modules), "collecting": gc.isenabled(), "frozen": gc.get_freeze_count()
}))
"""

#: Imported only by the functions that a queue or a stream feeds with batches of records.
BATCH_UTILITY = "aws_lambda_powertools.utilities.batch"

FUNCTIONS = functions_of(ROOT / "template.yaml")
TEMPLATE = Template.load(ROOT / "template.yaml")


def _fed_batches(logical_id: str) -> bool:
    return any(
        isinstance(event, SqsEventSource | DynamoDbStreamEventSource)
        for event in TEMPLATE.function(logical_id).events
    )


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
    imported = json.loads(result.stdout.strip().splitlines()[-1])
    assert imported["collecting"] and imported["frozen"] > 0
    loaded = imported["modules"]
    never = (
        NEVER_AT_START if _fed_batches(function.logical_id) else (*NEVER_AT_START, BATCH_UTILITY)
    )
    unwanted = sorted(
        {
            watched
            for module in loaded
            for watched in never
            if module == watched or module.startswith(watched + ".")
        }
    )
    assert unwanted == []


def test_outside_lambda_collection_is_never_paused():
    environment = lambda_environment(FUNCTIONS[0])
    del environment["AWS_LAMBDA_RUNTIME_API"]
    code = "import gc, sys; sys.path[:0] = [sys.argv[1]]; import crmjobs; print(gc.isenabled())"
    result = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "layers" / "common")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == ["True"]


def test_the_functions_fed_by_queues_or_streams_are_told_apart():
    fed = {function.folder.name for function in FUNCTIONS if _fed_batches(function.logical_id)}
    assert {"score_lead", "knowledge_stream", "campaign_feedback"} <= fed
    assert not {"trigger_api", "unsubscribe", "score_prospects_batch"} & fed


def test_every_function_is_checked():
    assert len(FUNCTIONS) == len(list((ROOT / "functions").glob("*/app.py")))
