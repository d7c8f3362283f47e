"""The health check's figures go out as CloudWatch EMF metrics, the task as dimension."""

from __future__ import annotations

import json

from crmjobs.services.agent_health import TASK, _emit

FIGURES = {
    "agentsByStatus": {"draft": 1, "active": 4, "paused": 2, "archived": 0},
    "totalExecutions": 57,
    "lastHour": {
        "executions": 9,
        "byStatus": {"pending": 0, "running": 1, "completed": 6, "failed": 2, "cancelled": 0},
        "meanDurationMs": 2150,
        "meanTokens": 3400,
    },
    "stuckMarkedFailed": [{"workspaceId": "ws-1", "executionId": "ex-1", "agentId": "a-1"}],
    "autoPaused": [],
}


def test_figures_are_emitted_as_metrics(monkeypatch, capsys):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    _emit(FIGURES)
    points = {}
    for line in capsys.readouterr().out.splitlines():
        document = json.loads(line)
        [definition] = document["_aws"]["CloudWatchMetrics"]
        assert definition["Dimensions"] == [["task"]] and document["task"] == TASK
        [metric] = definition["Metrics"]
        [value] = document[metric["Name"]]
        points[metric["Name"]] = (value, metric["Unit"])
    assert points["AgentsActive"] == (4.0, "Count") and points["AgentsPaused"] == (2.0, "Count")
    assert points["AgentExecutionsTotal"] == (57.0, "Count")
    assert points["AgentExecutionsLastHourFailed"] == (2.0, "Count")
    assert points["AgentExecutionMeanDuration"] == (2150.0, "Milliseconds")
    assert points["AgentExecutionMeanTokens"] == (3400.0, "Count")
    assert points["AgentExecutionsStuck"] == (1.0, "Count")
    assert points["AgentsAutoPaused"] == (0.0, "Count")
