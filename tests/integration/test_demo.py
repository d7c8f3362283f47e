"""`crmjobs demo` end to end, as a user runs it (a separate process, its own moto server)."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from rich.console import Console

from crmjobs.ledger import RunStatus, RunView
from crmjobs_local.demo import verdict

CLI = [sys.executable, "-m", "crmjobs_local.cli"]


@pytest.mark.slow
def test_demo_runs_every_built_task_and_exits_zero(tmp_path):
    data_dir = tmp_path / "demo"
    result = subprocess.run(
        [*CLI, "demo", "--prospects", "60", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        # about two minutes on 2 idle cores (the campaigns send ~450 messages at the local
        # rate); leave room for a loaded machine
        timeout=900,
    )
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    for line in (
        "Acme Robotics (ws-demo, professional): 60 prospects, 6 documents",
        "score distribution (61 scored)",  # the 60 seeded and the lead the agent created
        '"started": 2, "alreadyStarted": 0',  # the nightly job: both workspaces
        '"started": 0, "alreadyStarted": 2',  # its second firing the same day
        "isolation: Acme's search saw only Acme documents, Globex's only its own",
        "(source sqs): COMPLETED",  # the plain SQS message
        f"outbox: {data_dir / 'outbox'}",
        "demo ok: all",
        # the agent part: its four tools, its stats, and the two agent jobs after it
        "tools search_knowledge, create_lead, schedule_meeting, draft_email",
        "agent: executionCount 1",
        "1 active agent(s):",
        "stuck marked failed: 0, auto-paused: 0",
        # the campaign part: exclusions, the feedback and the unsubscribe counted once
        '"duplicate": 12',
        '"optedOut": 9',
        "one-click unsubscribe of customer",
        '"bounced": 1',
        '"unsubscribed": 1',
    ):
        assert line in out, line
    assert "Pricing and plans" in out and "ready" in out
    assert (data_dir / "vectors.sqlite3").is_file()


def test_demo_refuses_a_used_data_dir(tmp_path):
    (tmp_path / "leftover.txt").write_text("from an earlier run")
    result = subprocess.run(
        [*CLI, "demo", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "not empty" in result.stderr


def _run(run_id: str, status: RunStatus, error: dict | None = None) -> RunView:
    return RunView(
        id=run_id,
        task="score-lead",
        workspaceId="ws-demo",
        status=status,
        payload={},
        attempts=1,
        maxAttempts=3,
        error=error,
        source="client",
        createdAt="2026-11-29T00:00:00Z",
        updatedAt="2026-11-29T00:00:01Z",
    )


def test_verdict_fails_on_any_unfinished_run_and_names_its_error():
    output = io.StringIO()
    console = Console(file=output, width=200)
    completed = _run("run_ok", RunStatus.COMPLETED)
    failed = _run("run_bad", RunStatus.FAILED, {"type": "NotFound", "message": "gone"})
    assert verdict(console, [completed], []) == 0
    assert "all 1 runs COMPLETED" in output.getvalue()
    assert verdict(console, [completed, failed], []) == 1
    assert "run_bad score-lead (ws-demo) FAILED: NotFound gone" in output.getvalue()
    assert verdict(console, [completed], ["search crossed workspaces"]) == 1


def test_a_demo_in_a_temporary_data_dir_leaves_nothing_behind(tmp_path, monkeypatch):
    """Without --data-dir the demo runs in a fresh temporary folder, removed afterwards
    (also when the demo fails)."""
    import tempfile

    from crmjobs_local import cli, demo

    used = []

    def recording_demo(console, *, prospects, data_dir, template):
        (data_dir / "moto-state").write_text("written by the demo")
        used.append(data_dir)
        return 1

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(demo, "run_demo", recording_demo)
    assert cli.main(["demo", "--prospects", "5"]) == 1
    [data_dir] = used
    assert data_dir.parent == tmp_path and data_dir.name.startswith("crmjobs-demo-")
    assert list(tmp_path.iterdir()) == []
