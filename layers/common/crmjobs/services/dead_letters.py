"""The tasks' dead-letter queues as an operator works them: what is in them, and redrive.

A message the runtime dead-lettered carries its run's id (`runId` attribute) and the
error. That run is FAILED in the ledger, so redriving it is a replay (a new run with the
same payload, `replayOf` the original, taking over its idempotency key): sending the
message again would only be skipped as a finished run. A message without a run id (SQS's
own redrive, after `maxReceiveCount`, of a message the runtime never saw) goes back to the
task's queue as it is, with its message attributes (its idempotencyKey among them).

A scoped viewer (a workspace id) sees and redrives only the letters of its workspace; the
others stay in the queue, visible again at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from crmjobs import client, ledger
from crmjobs.adapters import dead_letter_queues, queues
from crmjobs.adapters.dead_letter_queues import ReceivedMessage
from crmjobs.envelope import DEAD_LETTER_ERROR_ATTRIBUTE, DEAD_LETTER_RUN_ATTRIBUTE
from crmjobs.errors import NotFound
from crmjobs.tasks import SYSTEM_WORKSPACE, TASKS

#: How long a looked-at message stays hidden if putting it back fails.
PEEK_HIDE_SECONDS = 30
#: How long a message being redriven stays hidden (its replay is recorded meanwhile).
REDRIVE_HIDE_SECONDS = 300


@dataclass(frozen=True)
class DeadLetter:
    task: str
    message_id: str
    run_id: str | None
    workspace_id: str | None
    """The run's workspace, or a plain message's payload's; None when unknown (a run that
    expired from the ledger, a body that is not a payload)."""
    error: str | None
    sent_at: datetime | None
    body: str
    #: The message's own attributes (its idempotencyKey, ...), without runId and error.
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class DeadLetterQueue:
    task: str
    messages: list[DeadLetter] = field(default_factory=list)


@dataclass(frozen=True)
class Redriven:
    letter: DeadLetter
    new_run_id: str | None = None
    """The replay's run id (a dead-lettered run); None for a plain message sent again."""


@dataclass
class RedriveResult:
    redriven: list[Redriven] = field(default_factory=list)
    kept: list[DeadLetter] = field(default_factory=list)
    """Letters whose run is no longer in the ledger (expired): left in the queue."""


def tasks_with_queues(task: str | None = None) -> list[str]:
    """The tasks (or just `task`) whose dead-letter queue exists; NotFound if `task`'s
    does not."""
    names = [task] if task else list(TASKS)
    present = [name for name in names if dead_letter_queues.exists(name)]
    if task and not present:
        raise NotFound(f"{task} has no dead-letter queue in this stack")
    return present


def peek(task: str, viewer: str | None = None) -> DeadLetterQueue:
    """The queue's letters (the viewer's only, when given), oldest first, left in place."""
    messages = dead_letter_queues.receive_all(task, PEEK_HIDE_SECONDS)
    dead_letter_queues.make_visible(task, messages)
    letters = [letter_of(task, message) for message in messages]
    visible = [letter for letter in letters if viewer is None or letter.workspace_id == viewer]
    visible.sort(key=lambda letter: (letter.sent_at is not None, letter.sent_at))
    return DeadLetterQueue(task, visible)


def peek_all(viewer: str | None = None) -> list[DeadLetterQueue]:
    return [peek(task, viewer) for task in tasks_with_queues()]


def redrive(task: str, viewer: str | None = None) -> RedriveResult:
    """Replay every dead-lettered run of the queue (the viewer's only, when given) and
    delete its message; a plain message goes back to the task's queue."""
    result = RedriveResult()
    left: list[ReceivedMessage] = []
    for message in dead_letter_queues.receive_all(task, REDRIVE_HIDE_SECONDS):
        letter = letter_of(task, message)
        if viewer is not None and letter.workspace_id != viewer:
            left.append(message)
            continue
        if letter.run_id:
            try:
                view = client.replay(letter.run_id, viewer, keep_idempotency_key=True)
            except NotFound:
                left.append(message)
                result.kept.append(letter)
                continue
            result.redriven.append(Redriven(letter, new_run_id=view.id))
        else:
            queues.send(
                task, letter.body, group=letter.workspace_id, attributes=letter.attributes
            )
            result.redriven.append(Redriven(letter))
        dead_letter_queues.delete(task, message)
    dead_letter_queues.make_visible(task, left)
    return result


def letter_of(task: str, message: ReceivedMessage) -> DeadLetter:
    run_id = message.attributes.get(DEAD_LETTER_RUN_ATTRIBUTE)
    if run_id:
        run = ledger.get(run_id)
        workspace = run.workspace_id if run is not None else None
    else:
        workspace = _payload_workspace(message.body)
    return DeadLetter(
        task=task,
        message_id=message.message_id,
        run_id=run_id,
        workspace_id=workspace,
        error=message.attributes.get(DEAD_LETTER_ERROR_ATTRIBUTE),
        sent_at=message.sent_at,
        body=message.body,
        attributes={
            name: value
            for name, value in message.attributes.items()
            if name not in (DEAD_LETTER_RUN_ATTRIBUTE, DEAD_LETTER_ERROR_ATTRIBUTE)
        },
    )


def _payload_workspace(body: str) -> str | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload.get("workspaceId", SYSTEM_WORKSPACE) if isinstance(payload, dict) else None
