"""What the commands print: consoles, run tables and status colours, dead letters, search
hits, and the dev server's live lines."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from crmjobs.adapters.vector_index import SearchHit
    from crmjobs.ledger import RunView
    from crmjobs.services.dead_letters import DeadLetter
    from crmjobs_local.event_sources import BatchOutcome
    from crmjobs_local.schedules import FireRecord

_STATUS_STYLES = {
    "QUEUED": "cyan",
    "DELAYED": "blue",
    "EXECUTING": "yellow",
    "COMPLETED": "green",
    "FAILED": "red",
    "CANCELED": "magenta",
}


def console(stream: TextIO | None = None) -> Console:
    stream = stream or sys.stdout
    # Piped output is not wrapped at 80 columns, so ids stay whole.
    return Console(file=stream, width=None if stream.isatty() else 200)


def status_text(status: str) -> str:
    return f"[{_STATUS_STYLES.get(status, 'white')}]{status}[/]"


def _duration(view: RunView) -> str:
    if not (view.startedAt and view.finishedAt):
        return ""
    started = datetime.fromisoformat(view.startedAt.replace("Z", "+00:00"))
    finished = datetime.fromisoformat(view.finishedAt.replace("Z", "+00:00"))
    return f"{(finished - started).total_seconds():.2f}s"


def runs_table(views: Sequence[RunView], title: str | None = None) -> Table:
    table = Table(title=title)
    for column in ("run", "task", "status", "attempts", "tags", "created", "took", "error"):
        table.add_column(column, no_wrap=column in ("run", "created"))
    for view in views:
        table.add_row(
            view.id,
            view.task,
            status_text(view.status),
            f"{view.attempts}/{view.maxAttempts}",
            ", ".join(view.tags),
            view.createdAt,
            _duration(view),
            (view.error or {}).get("message", "") if view.status == "FAILED" else "",
        )
    return table


def dead_letters_table(letters: Sequence[DeadLetter]) -> Table:
    table = Table(title="dead-lettered messages")
    for column in ("task", "message", "run", "error", "sent", "body"):
        table.add_column(column, no_wrap=column in ("message", "run"))
    for letter in letters:
        table.add_row(
            letter.task,
            letter.message_id,
            letter.run_id or "(plain message)",
            letter.error or "",
            f"{letter.sent_at:%Y-%m-%d %H:%M:%S}" if letter.sent_at else "",
            letter.body[:120],
        )
    return table


def search_hits_table(workspace_id: str, query: str, hits: Sequence[SearchHit]) -> Table:
    table = Table(title=f"{workspace_id}: {query!r}")
    for column in ("#", "score", "title", "item", "chunk"):
        table.add_column(column)
    for rank, hit in enumerate(hits, 1):
        table.add_row(
            str(rank), f"{hit.score:.3f}", hit.title, hit.item_id, " ".join(hit.chunk.split())
        )
    return table


def task_of_function(logical_id: str) -> str | None:
    """The task an SQS-fed function runs (`ScoreLeadFunction` -> score-lead), or None."""
    from crmjobs.tasks import TASKS

    return next(
        (spec.name for spec in TASKS.values() if f"{spec.resource_prefix}Function" == logical_id),
        None,
    )


def runs_of_event(task: str, event: dict[str, Any]) -> list[tuple[str, RunView | None]]:
    """(run id, run or None when none was recorded) for each SQS record of an event."""
    from crmjobs import ledger
    from crmjobs.ledger import RunView
    from crmjobs.runtime import run_id_of

    found = []
    for record in event.get("Records", []):
        run_id = run_id_of(task, record.get("messageId", ""), record.get("body", ""))
        run = ledger.get(run_id)
        found.append((run_id, None if run is None else RunView.of(run)))
    return found


def run_line(view: RunView) -> str:
    """A run in one line: task, workspace, id, status, attempt, duration, and its error
    (or why it waits)."""
    took = _duration(view)
    attempt = (
        f"attempt {view.attempts}/{view.maxAttempts}" if view.attempts else "before any attempt"
    )
    line = f"[bold]{view.task}[/] {view.workspaceId} {view.id} {status_text(view.status)} {attempt}"
    line += f" {took}" if took else ""
    error = view.error or {}
    if view.status in ("FAILED", "CANCELED"):
        line += f" [red]{error.get('type')}: {error.get('message')}[/]"
    elif view.status == "QUEUED" and error:
        line += f" retrying after [yellow]{error.get('type')}: {error.get('message')}[/]"
    elif view.status == "QUEUED":
        line += " waiting for a concurrency slot"
    return line


class RunLog:
    """The dev server's live lines: one per run a queue poller ran, when it is done with it
    (finished, or back in the queue for a retry). A run that goes on in a state machine (a
    bulk run) gets its line when it finishes (`poll`, from the dev server's loop)."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self._lock = threading.Lock()
        self._executing: set[str] = set()
        self._shown: set[tuple[str, str, int]] = set()

    def batch(self, function: str, outcome: BatchOutcome) -> None:
        task = task_of_function(function)
        if task is None:  # a queue of no task (campaign feedback): its batch
            batch_line(self.out, function, outcome)
            return
        for run_id, view in runs_of_event(task, outcome.event):
            if view is None:
                self._print(f"[bold]{task}[/] message of no run ({run_id}): a duplicate")
            else:
                self._show(view)

    def poll(self) -> None:
        from crmjobs import client

        with self._lock:
            executing = list(self._executing)
        for run_id in executing:
            self._show(client.retrieve(run_id))

    def _show(self, view: RunView) -> None:
        with self._lock:
            if view.status == "EXECUTING":
                self._executing.add(view.id)
                return
            self._executing.discard(view.id)
            key = (view.id, str(view.status), view.attempts)
            if key in self._shown:
                return
            self._shown.add(key)
        self._print(run_line(view))

    def _print(self, text: str) -> None:
        self.out.print(f"{datetime.now():%H:%M:%S} {text}", highlight=False)


def batch_line(out: Console, function: str, outcome: BatchOutcome) -> None:
    """One line per batch a dev server's queue poller ran (for queues of no task)."""
    records = len(outcome.event.get("Records", []))
    state = "[green]ok[/]" if outcome.succeeded else f"[red]failed: {outcome.failure_reason}[/]"
    out.print(
        f"{datetime.now():%H:%M:%S} [bold]{function}[/] {records} record(s), "
        f"{len(outcome.deleted)} deleted, {len(outcome.retried)} retried, "
        f"{outcome.duration_s * 1000:.0f} ms {state}"
    )


def fire_line(out: Console, record: FireRecord) -> None:
    """One line per schedule a dev server fired."""
    result = f"[red]{record.error}[/]" if record.error else f"message {record.message_id}"
    out.print(
        f"{datetime.now():%H:%M:%S} [bold]schedule {record.schedule_name}[/] fired for "
        f"{record.scheduled_time:%Y-%m-%dT%H:%M:%SZ}: {result}"
    )


def wait_with_status(out: Console, run_id: str, timeout: float) -> RunView:
    """Poll the run until it finishes (or `timeout`), with a live status line."""
    from crmjobs import client, ledger

    deadline = time.monotonic() + timeout
    with out.status(f"waiting for {run_id}") as status:
        while True:
            view = client.retrieve(run_id)
            status.update(f"{run_id}: {view.status} (attempt {view.attempts}/{view.maxAttempts})")
            if view.status in ledger.FINISHED or time.monotonic() >= deadline:
                return view
            time.sleep(0.25)
