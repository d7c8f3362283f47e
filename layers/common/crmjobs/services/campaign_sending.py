"""The steps of the campaign-sending state machine (statemachines/send_campaign.asl.json).

list_audience pages the audience into the ledger; list_recipients folds the last round's
results and hands out the next round: consecutive ranges of the ledger's addresses, one
per batch (so a round can be hundreds of batches, and the sends go on from one batch to
the next with no pause); the Map runs send_batch over them, which sends to the pending
recipients of its range (a recipient it finds `sending` is unconfirmed: its send was made
and never recorded); a pass over the ledger in which nothing was released (throttled,
late, stopped) ends the sending; finish_sending recounts the counters from the ledger,
decides the campaign's status and records the run's outcome.

An attempt's sending is a chain of executions (crmjobs.domain.execution_chains), so that no
execution's history nears Step Functions' 25,000 events: a listing step that would take
its execution past its budget of history events starts the chain's next execution with the
state instead, and the execution ends; only the chain's last one finishes.

Sending is owned by one attempt at a time: the campaign's `sendingRun` names its chain, and
every step stops when it no longer does (paused, deleted, or taken over by a later
attempt). Canceling the run (a cancel request on it) pauses the campaign at the next look
(a round's listing, or a batch's once-a-second check) and the run ends CANCELED; a later
send-campaign resumes with the pending recipients.
"""

from __future__ import annotations

import random
import sys
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from crmjobs import concurrency, ledger
from crmjobs.adapters import state_machines
from crmjobs.adapters.mailer import (
    Mailer,
    RecipientRejected,
    SendingStopped,
    SendOutcomeUnknown,
    SendRetryable,
    SendThrottled,
    mailer_from_config,
)
from crmjobs.domain import pacing
from crmjobs.domain.audience import parse_audience, screen_page
from crmjobs.domain.campaigns import CampaignStatus, LedgerCounts, final_status
from crmjobs.domain.execution_chains import ChainedExecution
from crmjobs.errors import InvalidInput
from crmjobs.models import Campaign, Delivery
from crmjobs.models.base import utcnow
from crmjobs.observability import emit_metric, logger
from crmjobs.runtime import finish_detached_run
from crmjobs.services.mail import Sender, compose, fields_of
from crmjobs.stores import campaigns, deliveries, people, send_rate, suppressions

#: Audience records read per page step.
AUDIENCE_PAGE = 500
#: Recipients per batch step, and batches per round (the Map runs 4 at a time, so a batch
#: that ends is followed at once by the next: the schedule idles only between rounds).
BATCH_SIZE = 100
BATCHES_PER_ROUND = 400
#: The most a round's ranges may take in the state: Step Functions allows 256 KB, and the
#: Map adds the batches' results (about 100 bytes each).
ROUND_BYTES = 150_000
#: Recipients claimed and given send slots together (one reservation, one counter update).
CHUNK = 25
#: Sends in flight at once within a batch (each waits for its slot).
SEND_THREADS = CHUNK
#: A batch stops claiming when less than this is left of its Lambda's time.
TIME_MARGIN_S = 30.0
#: Passes over the ledger before the execution gives up (recipients still throttled).
MAX_PASSES = 20
MAX_THROTTLE_BACKOFF_S = 10.0
#: How often a batch looks whether the campaign is still its to send (paused, deleted).
STATUS_CHECK_S = 1.0
#: How long a thread may hold the interpreter while another waits (Python's default is
#: 5 ms): a send thread waking at its slot gets it within this, so it is rarely late.
#: Measured on the loaded local stack: sends more than 10 ms late fell from 24 % to 5 %.
SWITCH_INTERVAL_S = 0.0005

ACTIVE = CampaignStatus.ACTIVE.value
#: The task the campaign metrics are emitted under (the operations dashboard draws them).
METRIC_TASK = "send-campaign"
#: What a step reports (`stopped`) when the run was asked to stop, and the campaign's reason.
CANCELED = "canceled"
CANCELED_REASON = "the send-campaign run was canceled"
NO_RECIPIENTS = "no recipients"


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SendState(Step):
    """The state the machine carries between steps (and from one execution of the chain
    to the next). `execution` names the chain: its first execution's name, which the
    campaign's `sendingRun` and the run ledger record."""

    runId: str
    execution: str
    workspaceId: str
    campaignId: str
    audience: str
    audienceListed: bool = False
    cursor: dict[str, Any] | None = None
    pages: int = 0
    listed: int = 0
    recipients: int = 0
    excluded: dict[str, int] = Field(default_factory=dict)
    passes: int = 0
    released: int = 0
    done: bool = False
    stopped: str | None = None
    #: The listing step started the chain's next execution, which goes on from here.
    continued: bool = False
    #: History events the listing steps of this execution have recorded (estimated).
    executionEvents: int = 0
    totals: dict[str, int] = Field(default_factory=dict)
    results: list[dict[str, Any]] = Field(default_factory=list)
    batches: list[dict[str, str]] = Field(default_factory=list)


class ListingStep(Step):
    """A listing step's input: the state, and what the execution says of itself (its name
    in the chain, its state machine, and its budget of history events)."""

    state: SendState
    executionName: str
    stateMachine: str
    eventsPerExecution: int = Field(ge=1)


class BatchInput(Step):
    """A batch is a range of the ledger's addresses, `first` to `last` inclusive (at most
    BATCH_SIZE recipients were listed there); their audience entries give the rest."""

    runId: str
    workspaceId: str
    campaignId: str
    execution: str
    first: str
    last: str


def _still_ours(state: SendState) -> str | None:
    """None while this execution sends the campaign, else why it stops."""
    status, sending_run = campaigns.sending_state(state.workspaceId, state.campaignId)
    if status is None:
        return "deleted"
    if status != ACTIVE or sending_run != state.execution:
        return status if status != ACTIVE else "taken over by another send"
    return None


def _canceled(run_id: str, workspace_id: str, campaign_id: str, execution: str) -> bool:
    """Whether the run was asked to stop; if so the campaign pauses (while this execution
    sends it), which also stops the other batches at their next look."""
    if not ledger.cancel_requested(run_id):
        return False
    campaigns.pause(workspace_id, campaign_id, execution, CANCELED_REASON)
    return True


# --------------------------------------------------------------------------- audience


def list_audience(step: ListingStep) -> SendState:
    """One page of the audience into the ledger; at the last page, the exclusion counts
    (and back to draft when there is nobody to send to)."""
    state = step.state
    if _over_budget(step, AUDIENCE_PAGE_EVENTS):
        return _continue(step, state)
    stopped = _still_ours(state)
    if stopped is not None:
        return state.model_copy(update={"audienceListed": True, "done": True, "stopped": stopped})
    audience = parse_audience(state.audience)
    page, read, cursor = people.audience_page(
        state.workspaceId, audience, state.cursor, AUDIENCE_PAGE
    )
    addresses = [person.address for person in page]
    screening = screen_page(
        page,
        deliveries.listed_by(state.workspaceId, state.campaignId, addresses),
        suppressions.suppressed_among(state.workspaceId, addresses),
    )
    deliveries.add_recipients(state.workspaceId, state.campaignId, screening.new)
    excluded = Counter(state.excluded)
    excluded.update(screening.excluded)
    update: dict[str, Any] = {
        "cursor": cursor,
        "pages": state.pages + 1,
        "listed": state.listed + read,
        "recipients": state.recipients + len(screening.new) + screening.already_listed,
        "excluded": dict(excluded),
        "executionEvents": state.executionEvents + AUDIENCE_PAGE_EVENTS,
    }
    if cursor is None:
        update["audienceListed"] = True
        counts = {reason: excluded.get(reason, 0) for reason in _EXCLUSIONS}
        campaigns.record_audience(state.workspaceId, state.campaignId, state.execution, counts)
        if update["recipients"] == 0:
            campaign = campaigns.find(state.workspaceId, state.campaignId)
            if campaign is not None and campaign.sending_run == state.execution:
                campaigns.back_to_draft(campaign, NO_RECIPIENTS)
            update.update(done=True, stopped=NO_RECIPIENTS)
    return state.model_copy(update=update)


_EXCLUSIONS = ("optedOut", "suppressed", "duplicate", "invalid")
#: What a batch reports and the rounds add up ("late": sends that missed their slot and
#: waited for another, so not made then).
_SEND_OUTCOMES = ("sent", "failed", "unconfirmed", "late")


# --------------------------------------------------------------------------- rounds


def list_recipients(step: ListingStep) -> SendState:
    """Fold the last round's results, then list the next round of pending recipients (or
    hand the state to the chain's next execution)."""
    state = step.state
    totals = Counter(state.totals)
    released = state.released
    stops = [result["stopped"] for result in state.results if result.get("stopped")]
    for result in state.results:
        totals.update({k: v for k, v in result.items() if k in _SEND_OUTCOMES})
        released += int(result.get("released", 0))
    # The batch that saw the cancel request paused the campaign; the others saw it paused.
    stopped = state.stopped or (CANCELED if CANCELED in stops else next(iter(stops), None))
    update: dict[str, Any] = {"totals": dict(totals), "results": [], "batches": []}
    stopped = stopped or _still_ours(state)
    if stopped is None and _canceled(
        state.runId, state.workspaceId, state.campaignId, state.execution
    ):
        stopped = CANCELED
    if stopped is not None:
        return state.model_copy(update={**update, "done": True, "stopped": stopped})
    if _over_budget(step, round_events(BATCHES_PER_ROUND)):
        return _continue(step, state.model_copy(update={**update, "released": released}))
    cursor, passes = state.cursor, state.passes
    if passes == 0:
        cursor, passes, released = None, 1, 0
    elif cursor is None:  # the last round of a pass was sent
        if released == 0:  # and nothing of the pass is left to send
            return state.model_copy(update={**update, "done": True, "released": 0})
        if passes >= MAX_PASSES:
            raise RuntimeError(
                f"recipients still pending after {passes} passes (SES kept refusing them)"
            )
        passes, released = passes + 1, 0
    page = deliveries.address_page(
        state.workspaceId, state.campaignId, cursor, BATCH_SIZE * BATCHES_PER_ROUND
    )
    addresses = page.items
    batches = [
        {"first": addresses[i], "last": addresses[min(i + BATCH_SIZE, len(addresses)) - 1]}
        for i in range(0, len(addresses), BATCH_SIZE)
    ]
    cursor = page.cursor
    kept = _within_round_bytes(batches)
    if kept < len(batches):  # the next round starts after the last range handed out
        batches = batches[:kept]
        cursor = deliveries.cursor_after(state.workspaceId, state.campaignId, batches[-1]["last"])
    return state.model_copy(
        update={**update, "cursor": cursor, "passes": passes, "released": released,
                "batches": batches,
                "executionEvents": state.executionEvents + round_events(len(batches))}
    )


def _within_round_bytes(batches: list[dict[str, str]]) -> int:
    """How many of the ranges fit in one round's state (ROUND_BYTES)."""
    size = 0
    for count, batch in enumerate(batches):
        size += len(batch["first"].encode()) + len(batch["last"].encode()) + 30  # JSON
        if size > ROUND_BYTES:
            return count
    return len(batches)


def _unconfirm(workspace_id: str, campaign_id: str, rows: list[Delivery]) -> int:
    """Rows left `sending` by an earlier batch (it crashed or timed out between its send
    call and the write after it): unconfirmed, never sent again. How many were."""
    if not rows:
        return 0
    applied = deliveries.transact(
        [deliveries.unconfirmed(row, "the send's outcome was never recorded") for row in rows]
    )
    count = sum(applied)
    campaigns.add_counters(workspace_id, campaign_id, {"unconfirmed": count})
    return count


# --------------------------------------------------------------------------- the chain

#: History events an audience page records (its task and two choice states).
AUDIENCE_PAGE_EVENTS = 9


def round_events(batches: int) -> int:
    """History events a round of `batches` records: its task, choice and Map states, and 7
    per batch (retries add more: the budget leaves room for them)."""
    return 11 + 7 * batches


def _over_budget(step: ListingStep, events: int) -> bool:
    """Whether a step of `events` would take the execution past its budget (the first step
    of an execution always runs, so every execution gets on)."""
    spent = step.state.executionEvents
    return spent > 0 and spent + events > step.eventsPerExecution


def _continue(step: ListingStep, state: SendState) -> SendState:
    """Start the chain's next execution with the state, and end this one."""
    carried = state.model_copy(update={"executionEvents": 0, "results": [], "batches": []})
    successor = ChainedExecution.parse(step.executionName).successor()
    try:
        state_machines.start(step.stateMachine, successor.name, carried.model_dump(mode="json"))
    except state_machines.ExecutionExists:
        pass  # a retry of this step: its first try started the successor
    # The run's slot lasts as long as its chain does, however many days that is.
    concurrency.extend(state.workspaceId, state.runId, concurrency.DETACHED_LEASE_SECONDS)
    logger.info("campaign sending continues in a new execution",
                extra={"execution": successor.name})
    return carried.model_copy(update={"continued": True})


# --------------------------------------------------------------------------- one batch


Outcome = Literal["sent", "failed", "unconfirmed", "retry", "stopped", "late"]


@dataclass
class _Result:
    row: Delivery
    outcome: Outcome
    detail: str = ""
    throttled: bool = False


class _Batch:
    """Sends one batch: claims a chunk, reserves its slots from the shared schedule, sends
    each at its slot (in threads), records the chunk's outcomes (a conditional write per row)."""

    def __init__(
        self,
        batch: BatchInput,
        campaign: Campaign,
        mailer: Mailer,
        sender: Sender,
        remaining_seconds,
    ) -> None:
        self.batch = batch
        self.campaign = campaign
        self.mailer = mailer
        self.sender = sender
        self.remaining_seconds = remaining_seconds
        self.rate = pacing.paced_rate(mailer.max_send_rate())
        self.counts: Counter[str] = Counter()
        self.stopped: str | None = None
        self.throttles = 0
        self._pool = ThreadPoolExecutor(max_workers=SEND_THREADS)
        self._checked = time.monotonic()  # send_batch has just read the campaign

    def _compose(self, row: Delivery):
        content = self.campaign.content
        return compose(
            self.sender,
            workspace_id=self.batch.workspaceId,
            campaign_id=self.batch.campaignId,
            recipient=row.recipient or "",
            fields=fields_of(row),
            subject=content.subject or "",
            body=content.body or "",
            now=utcnow(),
        )

    def _send_one(self, row: Delivery, outgoing, slot: float) -> _Result:
        """Send at the slot; a send that could not start on time is not made ("late": it
        waits for a slot of the next reservation)."""
        wait = slot - time.time()
        if wait > 0:
            time.sleep(wait)
        if not pacing.on_time(slot, time.time()):
            return _Result(row, "late")
        try:
            return _Result(row, "sent", self.mailer.send(outgoing))
        except RecipientRejected as exc:
            return _Result(row, "failed", str(exc))
        except SendRetryable as exc:
            return _Result(row, "retry", str(exc), throttled=isinstance(exc, SendThrottled))
        except SendingStopped as exc:
            return _Result(row, "stopped", str(exc))
        except SendOutcomeUnknown as exc:
            return _Result(row, "unconfirmed", str(exc))
        except Exception as exc:  # unknown: it may have gone out, so never again
            logger.exception("send failed unexpectedly", extra={"recipient": row.email})
            return _Result(row, "unconfirmed", f"{type(exc).__name__}: {exc}")

    def _record(self, results: list[_Result]) -> list[Delivery]:
        """The chunk's rows (a conditional write each) and one counter update; the rows to
        try again (throttled or stopped: not sent)."""
        now = utcnow()
        transitions, retry, kinds = [], [], []
        for result in results:
            if result.outcome == "sent":
                transitions.append(deliveries.sent(result.row, result.detail, now))
            elif result.outcome == "failed":
                transitions.append(deliveries.failed(result.row, result.detail))
            elif result.outcome == "unconfirmed":
                transitions.append(deliveries.unconfirmed(result.row, result.detail))
            else:
                transitions.append(deliveries.released(result.row, result.detail))
                retry.append(result.row)
            kinds.append(result.outcome)
        applied = deliveries.transact(transitions) if transitions else []
        deltas = Counter(
            kind for kind, ok in zip(kinds, applied, strict=True)
            if ok and kind in ("sent", "failed", "unconfirmed")
        )
        campaigns.add_counters(self.batch.workspaceId, self.batch.campaignId, deltas)
        self.counts.update(deltas)
        if deltas["sent"]:
            emit_metric("CampaignEmailsSent", METRIC_TASK, deltas["sent"])
        throttled = sum(result.throttled for result in results)
        if throttled:
            emit_metric("CampaignSendsThrottled", METRIC_TASK, throttled)
        return retry

    def _fail_suppressed(self, rows: list[Delivery]) -> list[Delivery]:
        """Recipients suppressed since the audience was listed (an unsubscribe, a bounce in
        another campaign) fail without a send; the others go on."""
        addresses = [row.email for row in rows]
        suppressed = suppressions.suppressed_among(self.batch.workspaceId, addresses)
        if not suppressed:
            return rows
        claimed = deliveries.claim([row for row in rows if row.email in suppressed], utcnow())
        self._record([_Result(row, "failed", "suppressed") for row in claimed])
        return [row for row in rows if row.email not in suppressed]

    def run(self) -> dict[str, Any]:
        batch = self.batch
        rows = deliveries.range_rows(batch.workspaceId, batch.campaignId, batch.first, batch.last)
        # A range is one batch's at a time: a row found sending was left so by an earlier one.
        stale = [row for row in rows if row.status == deliveries.SENDING]
        self.counts["unconfirmed"] += _unconfirm(batch.workspaceId, batch.campaignId, stale)
        queue = deque(self._fail_suppressed(
            [row for row in rows if row.status == deliveries.PENDING]
        ))
        waiting: list[Delivery] = []  # claimed, their slot missed: they wait for new ones
        try:
            while queue or waiting:
                if self.remaining_seconds() < TIME_MARGIN_S or self._not_ours():
                    break
                fresh = [queue.popleft() for _ in range(min(CHUNK - len(waiting), len(queue)))]
                claimed = waiting + deliveries.claim(fresh, utcnow())
                if not claimed:
                    continue
                # Composed before the slots are reserved, so that a send is only a wait and a call.
                messages = [self._compose(row) for row in claimed]
                reservation = send_rate.reserve(len(claimed), self.rate)
                futures = [
                    self._pool.submit(self._send_one, row, message, reservation.slot(index))
                    for index, (row, message) in enumerate(zip(claimed, messages, strict=True))
                ]
                results = [future.result() for future in futures]
                waiting = [result.row for result in results if result.outcome == "late"]
                self.counts["late"] += len(waiting)
                again = self._record([r for r in results if r.outcome != "late"])
                if any(result.outcome == "stopped" for result in results):
                    self._stop(next(r.detail for r in results if r.outcome == "stopped"))
                    queue.extend(again)
                    break
                if again:
                    self._back_off()
                    queue.extend(again)
                else:
                    self.throttles = 0
        finally:
            self._pool.shutdown(wait=True)
        if waiting:  # claimed but never sent: back to pending
            deliveries.transact([deliveries.released(row) for row in waiting])
        return {**{k: int(v) for k, v in self.counts.items()},
                "released": len(queue) + len(waiting), "stopped": self.stopped}

    def _not_ours(self) -> bool:
        """The campaign was paused, deleted or taken over, or the run was canceled (looked
        up once a second)."""
        now = time.monotonic()
        if now - self._checked < STATUS_CHECK_S:
            return False
        self._checked = now
        batch = self.batch
        status, sending_run = campaigns.sending_state(batch.workspaceId, batch.campaignId)
        if status != ACTIVE or sending_run != batch.execution:
            self.stopped = status or "deleted"
            return True
        if _canceled(batch.runId, batch.workspaceId, batch.campaignId, batch.execution):
            self.stopped = CANCELED
            return True
        return False

    def _stop(self, reason: str) -> None:
        """SES will not send now (quota, paused, suspended): the campaign pauses with why."""
        campaigns.pause(
            self.batch.workspaceId, self.batch.campaignId, self.batch.execution, reason
        )
        self.stopped = CampaignStatus.PAUSED.value

    def _back_off(self) -> None:
        """After a chunk with throttled sends: 0.25 s, doubling while chunks keep being
        throttled, at most MAX_THROTTLE_BACKOFF_S, with jitter."""
        self.throttles += 1
        delay = min(MAX_THROTTLE_BACKOFF_S, 0.25 * 2 ** (self.throttles - 1))
        time.sleep(delay * random.uniform(0.8, 1.2))


def send_batch(
    batch: BatchInput, remaining_seconds=lambda: float("inf"), mailer: Mailer | None = None
) -> dict[str, Any]:
    """Send one batch of pending recipients; what happened to them, counted."""
    campaign = campaigns.find(batch.workspaceId, batch.campaignId)
    if campaign is None:
        return {"released": 0, "stopped": "deleted"}
    if campaign.status != ACTIVE or campaign.sending_run != batch.execution:
        return {"released": 0, "stopped": campaign.status}
    if _canceled(batch.runId, batch.workspaceId, batch.campaignId, batch.execution):
        return {"released": 0, "stopped": CANCELED}
    sender = _Batch(
        batch, campaign, mailer or mailer_from_config(), Sender.from_config(), remaining_seconds
    )
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
    return sender.run()


# --------------------------------------------------------------------------- the end


class FinishInput(Step):
    """`execution` names the chain; `executionName` is the execution that reports."""

    runId: str
    execution: str
    executionName: str
    stateMachine: str
    workspaceId: str
    campaignId: str
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def finish_sending(finish: FinishInput) -> dict[str, Any]:
    """Recount the ledger into the counters, decide the campaign's status (completed when
    every recipient is final, failed when nothing could be sent), give the campaign up and
    record the run: its output; FAILED (InvalidInput) when nobody was there to send to;
    CANCELED when it was asked to stop; or its error (then the run is retried and resumes).
    An error of an execution whose successor was started changes nothing: the chain goes on
    in the successor."""
    workspace_id, campaign_id, execution = finish.workspaceId, finish.campaignId, finish.execution
    if finish.error is not None:
        successor = ChainedExecution.parse(finish.executionName).successor().name
        if state_machines.status(finish.stateMachine, successor) is not None:
            logger.info("sending went on in the next execution", extra={"execution": successor})
            return {"continued": successor}
    counts = LedgerCounts(deliveries.count_by_status(workspace_id, campaign_id))
    campaigns.set_ledger_counters(workspace_id, campaign_id, execution, counts.counters())
    if finish.error is not None:
        cause = (finish.error.get("Cause") or "")[:500]
        error = f"{finish.error.get('Error')}: {cause}"
        finish_detached_run(finish.runId, execution, error=error)
        return {"error": error}
    state = SendState.model_validate(finish.result)
    status = final_status(counts) if counts.recipients else None
    if status is None or not campaigns.finish_sending(workspace_id, campaign_id, execution, status):
        campaigns.release(workspace_id, campaign_id, execution)
    campaign = campaigns.find(workspace_id, campaign_id)
    output: dict[str, Any] = {
        "status": campaign.status if campaign is not None else "deleted",
        **counts.counters(),
        "excluded": state.excluded,
        "passes": state.passes,
        "lateSends": state.totals.get("late", 0),
    }
    if state.stopped:
        output["stopped"] = state.stopped
    if campaign is not None and campaign.last_error:
        output["lastError"] = campaign.last_error
    if state.stopped == NO_RECIPIENTS:  # back to draft with it: the run fails, no retry
        finish_detached_run(finish.runId, execution, error=InvalidInput(NO_RECIPIENTS))
        return output
    if state.stopped == CANCELED:
        # The run carries a cancel request, so this error ends it CANCELED (never retried).
        finish_detached_run(
            finish.runId, execution, error=f"{CANCELED_REASON}: {_progress(output)}"
        )
        return output
    finish_detached_run(finish.runId, execution, output=output)
    return output


def _progress(output: dict[str, Any]) -> str:
    return ", ".join(f"{name} {output[name]}" for name in ("status", "sent", "pending"))
