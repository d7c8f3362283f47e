"""Each function names its Powertools service (POWERTOOLS_SERVICE_NAME in its own
environment), and the shared logger says that name in the function's log lines, also on
the local runtime, where every function runs in one process."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from crmjobs import config
from crmjobs.observability import DEFAULT_SERVICE, logger
from crmjobs_local.context import LambdaContext
from crmjobs_local.template import Template

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def test_every_function_names_its_own_service():
    functions = Template.load(TEMPLATE).functions()
    names = {
        logical_id: function.environment.get("POWERTOOLS_SERVICE_NAME")
        for logical_id, function in functions.items()
    }
    assert names["ScoreLeadFunction"] == "score-lead"
    assert names["TriggerApiFunction"] == "trigger-api"
    shared = [logical_id for logical_id, name in names.items() if name in (None, DEFAULT_SERVICE)]
    assert shared == [], "functions without a service name of their own"
    assert len(set(names.values())) == len(names), "two functions share a service name"


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(logger.registered_formatter.format(record)))


def test_log_lines_carry_the_invoked_functions_service():
    captured = _Lines()
    logger._logger.addHandler(captured)

    @logger.inject_lambda_context(clear_state=True)
    def handler(event, context):
        logger.warning("in the handler")

    def invoke(service: str) -> None:
        context = LambdaContext(
            f"crmjobs-{service}", f"arn:aws:lambda:::function:{service}", 128, 3
        )
        with config.function_environment({"POWERTOOLS_SERVICE_NAME": service}):
            handler({}, context)

    try:
        threads = [threading.Thread(target=invoke, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        invoke("score-lead")
        logger.warning("outside any function")
    finally:
        logger._logger.removeHandler(captured)
    services = sorted(line["service"] for line in captured.lines[:-1])
    assert services == ["a", "b", "score-lead"]
    assert captured.lines[-1]["service"] == DEFAULT_SERVICE
