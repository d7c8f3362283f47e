"""What the commands print: consoles, run tables and status colours, dead letters, search
hits, and the dev server's live lines."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TextIO

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


def batch_line(out: Console, function: str, outcome: BatchOutcome) -> None:
    """One line per batch a dev server's queue poller ran."""
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
