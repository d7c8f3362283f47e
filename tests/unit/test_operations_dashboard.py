"""The stack's CloudWatch dashboard (OperationsDashboard in template.yaml): a valid body,
and every metric it draws is one the code emits or AWS publishes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from crmjobs_local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
PER_TASK = {"RunsCompleted", "RunsFailed", "RunsRetried", "RunDuration"}


def _body() -> dict:
    resource = load_template(ROOT / "template.yaml")["Resources"]["OperationsDashboard"]
    assert resource["Type"] == "AWS::CloudWatch::Dashboard"
    text = resource["Properties"]["DashboardBody"]["Fn::Sub"]
    assert set(re.findall(r"\$\{([^}]+)\}", text)) == {"AWS::Region", "AWS::StackName"}
    return json.loads(
        text.replace("${AWS::Region}", "eu-west-1").replace("${AWS::StackName}", "crm-prod")
    )


def _metrics(body: dict) -> tuple[set[tuple[str, str]], list[str]]:
    """(namespace, metric name) of plain metrics, and the search/math expressions."""
    plain, expressions = set(), []
    for widget in body["widgets"]:
        for line in widget.get("properties", {}).get("metrics", []):
            if isinstance(line[0], dict):
                expressions.append(line[0]["expression"])
            else:
                plain.add((line[0], line[1]))
    return plain, expressions


def _emitted() -> set[str]:
    names = set()
    for path in (ROOT / "layers" / "common" / "crmjobs").rglob("*.py"):
        for match in re.finditer(r'emit_metric\(\s*f?"([A-Za-z{}.()]+)"', path.read_text()):
            names.add(match.group(1))
    return names


def _matches(name: str, emitted: set[str]) -> bool:
    """An emitted name, or one an f-string makes (f"AgentExecutionsLastHour{...}")."""
    return any(re.fullmatch(re.sub(r"\{[^}]*\}", "[A-Za-z]+", e), name) for e in emitted)


def test_the_body_is_valid_and_every_widget_is_placed():
    body = _body()
    assert len(body["widgets"]) >= 10
    for widget in body["widgets"]:
        assert {"type", "x", "y", "width", "height", "properties"} <= set(widget)
        assert widget["x"] + widget["width"] <= 24
        if widget["type"] == "metric":
            assert widget["properties"]["region"] == "eu-west-1"


def test_per_task_figures_are_searches_over_the_task_dimension():
    _, expressions = _metrics(_body())
    searched = {
        (match.group(1), match.group(2), match.group(3))
        for expression in expressions
        if (
            match := re.match(
                r"SEARCH\('\{CrmJobs,task\} MetricName=\"(\w+)\"', '(\w+)', (\d+)\)", expression
            )
        )
    }
    assert {(name, stat) for name, stat, _ in searched} == {
        ("RunsCompleted", "Sum"),
        ("RunsFailed", "Sum"),
        ("RunsRetried", "Sum"),
        ("RunDuration", "p50"),
        ("RunDuration", "p95"),
    }
    queues = [e for e in expressions if "{AWS/SQS,QueueName}" in e]
    assert any("ApproximateAgeOfOldestMessage" in e and "NOT QueueName=dlq" in e for e in queues)
    assert any("ApproximateNumberOfMessagesVisible" in e and " QueueName=dlq" in e for e in queues)
    assert all("QueueName=crm-prod" in e for e in queues)  # this stack's queues only


def test_every_crmjobs_metric_drawn_is_emitted_by_the_code():
    plain, expressions = _metrics(_body())
    drawn = {name for namespace, name in plain if namespace == "CrmJobs"} | PER_TASK
    emitted = _emitted()
    missing = {name for name in drawn if not _matches(name, emitted)}
    assert not missing, missing
    assert ("AWS/SES", "Send") in plain  # the account's sends, published by SES

