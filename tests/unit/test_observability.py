"""Handler tracing: no X-Ray SDK at cold start unless XRAY_SDK_TRACING asks for it.

Each case runs in a fresh interpreter with Lambda's environment variables, because the
SDK patches botocore process-wide once loaded.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRACE_ID = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"

CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from crmjobs.observability import tracer

def handler(event, context):
    return {"echo": event}

traced = tracer.capture_lambda_handler(capture_response=False)(handler)
result = traced({"n": 1}, None)
print(json.dumps({
    "wrapped": traced is not handler,
    "result": result,
    "sdk_loaded": "aws_xray_sdk.core" in sys.modules,
}))
"""


def run_in_lambda_environment(**settings: str) -> dict:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("POWERTOOLS_", "XRAY_", "AWS_XRAY", "_X_AMZN"))
    }
    environment.update(
        {
            "LAMBDA_TASK_ROOT": str(ROOT / "functions" / "score_lead"),
            "AWS_LAMBDA_FUNCTION_NAME": "crmjobs-ScoreLeadFunction",
            "POWERTOOLS_SERVICE_NAME": "crmjobs",
            **settings,
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT / "layers" / "common")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_without_the_setting_handlers_run_bare_and_the_sdk_is_never_imported():
    outcome = run_in_lambda_environment()
    assert outcome == {"wrapped": False, "result": {"echo": {"n": 1}}, "sdk_loaded": False}


def test_the_setting_traces_the_handler_as_a_subsegment_sent_to_the_daemon():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        daemon.settimeout(10)
        port = daemon.getsockname()[1]
        outcome = run_in_lambda_environment(
            XRAY_SDK_TRACING="true",
            AWS_XRAY_DAEMON_ADDRESS=f"127.0.0.1:{port}",
            _X_AMZN_TRACE_ID=TRACE_ID,
        )
        datagram = daemon.recv(65536).decode()
    assert outcome == {"wrapped": True, "result": {"echo": {"n": 1}}, "sdk_loaded": True}
    header, _, body = datagram.partition("\n")
    assert json.loads(header) == {"format": "json", "version": 1}
    subsegment = json.loads(body)
    assert subsegment["name"] == "## handler"
    assert subsegment["trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert subsegment["annotations"] == {"ColdStart": True, "Service": "crmjobs"}
