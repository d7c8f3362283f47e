"""send-campaign and schedule-campaign on the local runtime (queues, the sending state
machine, schedules), with SES faults injected into the mailer the batches use."""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from state_machine_runs import run_executions

from crmjobs import client, ledger
from crmjobs.adapters.aws import client as aws_client
from crmjobs.adapters.mailer import SendOutcomeUnknown, SendRetryable, SendThrottled, SesMailer
from crmjobs.domain.audience import parse_audience
from crmjobs.models import Campaign, Contact, Delivery, Prospect, Workspace
from crmjobs.models.campaigns import CampaignContent
from crmjobs.services import campaign_sending
from crmjobs.stores import deliveries, people, suppressions
from crmjobs_local.outbox import sent_mail_in_process
from crmjobs_local.template import Template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = Path(os.environ.get("CAMPAIGN_TEST_TEMPLATE", ROOT / "template.yaml"))


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory):
    """The stack with a send rate (moto has no GetAccount), serving its queues."""
    from crmjobs_local.stack import LocalRuntime

    data_dir = tmp_path_factory.mktemp("data")
    with LocalRuntime(
        TEMPLATE, data_dir=data_dir, in_process=True, parameters={"MaxSendRate": "400"}
    ) as local:
        with local.serving():
            yield local


@pytest.fixture
def mailer(monkeypatch):
    """The batches' mailer: the real SesMailer (moto), with faults a test can turn on."""
    faulty = FaultyMailer(max_rate_override=400.0)
    monkeypatch.setattr(campaign_sending, "mailer_from_config", lambda: faulty)
    return faulty


class LambdaCrash(Exception):
    """A batch's Lambda dying between its send calls and the write after them."""


@pytest.fixture
def crash_on_record(monkeypatch):
    """crash_on_record(n): the n-th write of a chunk's outcomes never happens (its sends
    were made); the batch fails and Step Functions retries it."""
    calls = {"count": 0, "at": None}
    real_record = campaign_sending._Batch._record

    def record(self, results):
        calls["count"] += 1
        if calls["count"] == calls["at"]:
            raise LambdaCrash(f"crashed with {len(results)} sends unrecorded")
        return real_record(self, results)

    monkeypatch.setattr(campaign_sending._Batch, "_record", record)
    return lambda n: calls.__setitem__("at", n)


class FaultyMailer(SesMailer):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rng = random.Random(11)
        self.throttle_rate = 0.0
        self.unavailable_rate = 0.0
        self.unknown_rate = 0.0
        self.on_send = None
        self.sends = 0
        self.faults: Counter[str] = Counter()
        self._lock = threading.Lock()

    def send(self, email):
        with self._lock:
            roll = self.rng.random()
            self.sends += 1
        if roll < self.throttle_rate:
            self.faults["throttled"] += 1
            raise SendThrottled("TooManyRequestsException: Maximum sending rate exceeded.")
        roll -= self.throttle_rate
        if roll < self.unavailable_rate:
            self.faults["unavailable"] += 1
            raise SendRetryable("ServiceUnavailable: try again")
        message_id = super().send(email)
        roll -= self.unavailable_rate
        if roll < self.unknown_rate:  # sent, but the answer was lost
            self.faults["unknown"] += 1
            raise SendOutcomeUnknown("ReadTimeoutError: no answer")
        if self.on_send is not None:
            self.on_send(email)
        return message_id


def _workspace(suffix: str = "") -> str:
    ws = Workspace(id=f"ws-{uuid.uuid4().hex[:8]}{suffix}", name="Acme",
                   subscription_tier="starter")
    ws.save()
    return ws.id


def _campaign(ws: str, audience: str = "all_leads", **fields) -> Campaign:
    campaign = Campaign(
        workspace_id=ws,
        id=f"c-{uuid.uuid4().hex[:6]}",
        name="Spring",
        audience=audience,
        content=CampaignContent(subject=fields.pop("subject", "Hi {{firstName}}"),
                                body=fields.pop("body", "Hello {{name}}\nNews for {{company}}")),
        **fields,
    )
    campaign.save()
    return campaign


def _prospects(ws: str, count: int, *, domain: str | None = None, start: int = 0) -> list[str]:
    domain = domain or f"{ws}.example.com"
    with Prospect.batch_write() as batch:
        for n in range(start, start + count):
            batch.save(Prospect(workspace_id=ws, id=f"p-{n:05d}", name=f"Lead {n} Smith",
                                email=f"lead{n}@{domain}", company="Initech", stage="new"))
    return [f"lead{n}@{domain}" for n in range(start, start + count)]


def _send(ws: str, campaign_id: str, timeout: float = 240, **extra):
    run = client.trigger("send-campaign", {"workspaceId": ws, "campaignId": campaign_id, **extra})
    return client.wait(run.id, timeout=timeout)


def _mail_per_address(domain: str) -> Counter[str]:
    """Messages in the mail store per recipient (by the To header of the raw message)."""
    counts: Counter[str] = Counter()
    for mail in sent_mail_in_process():
        if not mail.raw_data:
            continue
        for line in mail.raw_data.splitlines():
            if line.startswith("To: ") and line.endswith(domain):
                counts[line[4:].strip()] += 1
                break
    return counts


def _ledger(ws: str, campaign_id: str) -> list[Delivery]:
    """Every recipient's row (a recipient whose send was never claimed: as pending)."""
    rows, cursor = [], None
    while True:
        page = deliveries.ledger_page(ws, campaign_id, cursor, 500)
        rows.extend(page.items)
        cursor = page.cursor
        if cursor is None:
            return rows


def _assert_counters_match_ledger(ws: str, campaign_id: str) -> dict:
    rows = _ledger(ws, campaign_id)
    statuses = Counter(row.status for row in rows)
    counters = Campaign.get(ws, campaign_id).counters.as_dict()
    assert counters["recipients"] == len(rows)
    for status in ("sent", "failed", "unconfirmed"):
        assert counters[status] == statuses.get(status, 0), status
    assert counters["pending"] == statuses.get("pending", 0) + statuses.get("sending", 0)
    return counters


def test_sends_to_the_audience_once_with_exclusions(local_stack, mailer):
    ws = _workspace()
    domain = f"{ws}.example.com"
    addresses = _prospects(ws, 30)
    Prospect(workspace_id=ws, id="p-dup", name="Dup", email=f"  LEAD3@{domain.upper()} ").save()
    Prospect(workspace_id=ws, id="p-out", name="Out", email=f"out@{domain}",
             email_opt_out=True).save()
    Prospect(workspace_id=ws, id="p-bad", name="Bad", email="not-an-address").save()
    Prospect(workspace_id=ws, id="p-sup", name="Sup", email=f"sup@{domain}").save()
    Prospect(workspace_id=ws, id="p-x", name="<script>alert(1)</script>",
             email=f"xss@{domain}").save()
    suppressions.suppress(ws, f"sup@{domain}", "bounce")
    campaign = _campaign(ws)

    run = _send(ws, campaign.id)

    assert run.status == "COMPLETED", run.error
    stored = Campaign.get(ws, campaign.id)
    assert stored.status == "completed" and stored.sending_run is None
    counters = _assert_counters_match_ledger(ws, campaign.id)
    assert counters["sent"] == 31
    assert counters["excluded"] == {"optedOut": 1, "suppressed": 1, "duplicate": 1, "invalid": 1}
    mail = _mail_per_address(domain)
    assert set(mail) == {*addresses, f"xss@{domain}"} and set(mail.values()) == {1}
    xss = next(m for m in sent_mail_in_process() if m.raw_data and f"xss@{domain}" in m.raw_data)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in xss.raw_data
    assert run.output["sent"] == 31 and run.output["status"] == "completed"

    again = _send(ws, campaign.id)
    assert again.status == "COMPLETED" and again.output["skipped"]
    assert _mail_per_address(domain) == mail


def test_exactly_once_under_faults(local_stack, mailer, crash_on_record, monkeypatch):
    """2,000 recipients; SES throttles and is unavailable now and then, some answers are
    lost after the mail went out, a batch's Lambda dies after a send; the send message is
    delivered twice and a second run is triggered: no address is mailed twice, every
    recipient ends final, the counters equal the ledger."""
    ws = _workspace()
    domain = f"{ws}.example.com"
    addresses = _prospects(ws, 2000)
    campaign = _campaign(ws)
    mailer.throttle_rate, mailer.unavailable_rate, mailer.unknown_rate = 0.03, 0.02, 0.01
    crash_on_record(70)
    metrics: Counter[str] = Counter()

    def emit_metric(name, task, value=1, *args):
        assert task == "send-campaign"
        metrics[name] += value

    monkeypatch.setattr(campaign_sending, "emit_metric", emit_metric)

    first = client.trigger("send-campaign", {"workspaceId": ws, "campaignId": campaign.id})
    # The same message again (SQS delivers at least once), and another run meanwhile.
    duplicate = client.trigger(
        "send-campaign", {"workspaceId": ws, "campaignId": campaign.id}, idempotency_key="k"
    )
    repeat = client.trigger(
        "send-campaign", {"workspaceId": ws, "campaignId": campaign.id}, idempotency_key="k"
    )
    assert repeat.id == duplicate.id and repeat.deduplicated
    finished = client.wait(first.id, timeout=600)
    other = client.wait(duplicate.id, timeout=120)

    assert finished.status == "COMPLETED", finished.error
    assert other.status == "COMPLETED" and "skipped" in other.output, other.output
    rows = _ledger(ws, campaign.id)
    statuses = Counter(row.status for row in rows)
    assert len(rows) == 2000 and set(statuses) <= {"sent", "unconfirmed"}, statuses
    mail = _mail_per_address(domain)
    assert max(mail.values()) == 1  # nobody mailed twice
    assert set(mail) <= set(addresses)
    for row in rows:  # a sent recipient got its mail; an unconfirmed one at most once
        assert mail[row.email] == 1 if row.status == "sent" else mail[row.email] <= 1
    # unknown answers, plus the crashed chunk's sends (at most CHUNK of them)
    unconfirmed = statuses["unconfirmed"] - mailer.faults["unknown"]
    assert 0 < unconfirmed <= campaign_sending.CHUNK
    assert mailer.faults["throttled"] > 0 and mailer.faults["unavailable"] > 0
    counters = _assert_counters_match_ledger(ws, campaign.id)
    assert Campaign.get(ws, campaign.id).status == "completed"
    # The dashboard's figures: each recorded send once; the throttles (but the crashed
    # chunk's, never recorded).
    assert metrics["CampaignEmailsSent"] == statuses["sent"]
    assert 0 < metrics["CampaignSendsThrottled"] <= mailer.faults["throttled"]
    print(f"\nfault test: {dict(statuses)}, faults {dict(mailer.faults)}, counters {counters}")


def _executions(stack, run_id: str) -> list[dict]:
    return run_executions(stack, "SendCampaignStateMachine", run_id)


def test_a_long_send_goes_on_in_a_chain_of_executions(local_stack, mailer, monkeypatch):
    """An execution's listing steps stop before its budget of history events (here each
    step is taken to record 40 % of it): the send goes on in the attempt's next executions
    with the state carried, everyone is mailed once and the chain's last execution
    finishes the run."""
    budget = int(Template.load(TEMPLATE).document["Parameters"]["CampaignEventsPerExecution"]
                 ["Default"])
    monkeypatch.setattr(campaign_sending, "AUDIENCE_PAGE", 20)
    monkeypatch.setattr(campaign_sending, "BATCH_SIZE", 10)
    monkeypatch.setattr(campaign_sending, "BATCHES_PER_ROUND", 2)
    monkeypatch.setattr(campaign_sending, "AUDIENCE_PAGE_EVENTS", budget * 2 // 5)
    monkeypatch.setattr(campaign_sending, "round_events", lambda batches: budget * 2 // 5)
    ws = _workspace()
    domain = f"{ws}.example.com"
    addresses = _prospects(ws, 60)
    Prospect(workspace_id=ws, id="p-out", name="Out", email=f"out@{domain}",
             email_opt_out=True).save()
    campaign = _campaign(ws)

    run = _send(ws, campaign.id)

    assert run.status == "COMPLETED", run.error
    assert run.output["status"] == "completed" and run.output["sent"] == 60
    assert run.output["excluded"] == {"optedOut": 1}
    mail = _mail_per_address(domain)
    assert set(mail) == set(addresses) and set(mail.values()) == {1}
    _assert_counters_match_ledger(ws, campaign.id)
    # Two listing steps per execution: 4 audience pages and 4 rounds at least.
    executions = _executions(local_stack, run.id)
    deadline = time.monotonic() + 30  # the last one ends after it recorded the run
    while executions[-1]["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)
        executions = _executions(local_stack, run.id)
    chain = [f"{run.id}-1"] + [f"{run.id}-1-{n}" for n in range(2, len(executions) + 1)]
    assert [e["name"] for e in executions] == chain and len(chain) >= 4
    assert {e["status"] for e in executions} == {"SUCCEEDED"}
    for handed_over in executions[:-1]:
        assert json.loads(handed_over["output"])["result"] == {"outcome": {"continued": True}}
    last = json.loads(executions[-1]["input"])
    assert (last["execution"], last["audienceListed"], last["recipients"]) == (
        f"{run.id}-1", True, 60
    )
    assert ledger.get(run.id).execution == f"{run.id}-1"  # the chain the run records


#: The history events no listing step counts: the execution's start and end, the Parallel,
#: the first choice, the last listing step and its choice (nothing comes after them), the
#: loop's end, the last choice and the finish task.
FRAME_EVENTS = 24


def test_the_budget_estimate_bounds_an_executions_history(local_stack, mailer, monkeypatch):
    """What the listing steps count against an execution's budget is at least the history
    Step Functions records for them (and not far above it)."""
    monkeypatch.setattr(campaign_sending, "AUDIENCE_PAGE", 10)
    monkeypatch.setattr(campaign_sending, "BATCH_SIZE", 5)
    monkeypatch.setattr(campaign_sending, "BATCHES_PER_ROUND", 3)
    ws = _workspace()
    _prospects(ws, 42)
    campaign = _campaign(ws)

    run = _send(ws, campaign.id)

    assert run.status == "COMPLETED" and run.output["sent"] == 42, run.error
    [execution] = _executions(local_stack, run.id)
    sfn = aws_client("stepfunctions")
    events = sfn.get_execution_history(executionArn=execution["executionArn"],
                                       maxResults=1000)["events"]
    [finish] = [e for e in events if e["type"] == "TaskStateEntered"
                and e["stateEnteredEventDetails"]["name"] == "RecordSuccess"]
    state = json.loads(finish["stateEnteredEventDetails"]["input"])["result"]["outcome"]
    recorded = len(events) - FRAME_EVENTS
    assert recorded <= state["executionEvents"] <= recorded * 1.2, (len(events), state)


def test_pause_mid_send_then_resume(local_stack, mailer):
    ws = _workspace()
    domain = f"{ws}.example.com"
    addresses = _prospects(ws, 300)
    campaign = _campaign(ws)
    mailer.max_rate_override = 60.0
    paused = threading.Event()

    def pause_after_some(email):
        if mailer.sends >= 60 and not paused.is_set():  # sends run in threads
            paused.set()
            Campaign(ws, campaign.id).update(actions=[Campaign.status.set("paused")])

    mailer.on_send = pause_after_some
    run = _send(ws, campaign.id)
    assert run.status == "COMPLETED" and run.output["status"] == "paused", run.output
    mid = _assert_counters_match_ledger(ws, campaign.id)
    assert 60 <= mid["sent"] < 300 and mid["pending"] == 300 - mid["sent"]
    sent_before = set(_mail_per_address(domain))
    assert Campaign.get(ws, campaign.id).sending_run is None
    # A listing page run again (a stale execution's) rewrites audience entries: the sent
    # recipients stay sent, since no send state is kept in an entry.
    audience, _, _ = people.audience_page(ws, parse_audience("all_leads"), None, 500)
    deliveries.add_recipients(ws, campaign.id, audience)
    assert _assert_counters_match_ledger(ws, campaign.id) == mid

    mailer.on_send = None
    mailer.max_rate_override = 400.0
    resumed = _send(ws, campaign.id)
    assert resumed.status == "COMPLETED" and resumed.output["status"] == "completed"
    mail = _mail_per_address(domain)
    assert set(mail) == set(addresses) and set(mail.values()) == {1}
    assert sent_before < set(mail)
    assert _assert_counters_match_ledger(ws, campaign.id)["sent"] == 300


def test_canceling_the_run_stops_sending_at_the_next_batch(local_stack, mailer):
    ws = _workspace()
    domain = f"{ws}.example.com"
    addresses = _prospects(ws, 300)
    campaign = _campaign(ws)
    mailer.max_rate_override = 60.0
    run_ids: list[str] = []
    asked = threading.Event()

    def cancel_after_some(email):
        if mailer.sends >= 60 and run_ids and not asked.is_set():
            asked.set()
            assert client.cancel(run_ids[0]).cancelRequested

    mailer.on_send = cancel_after_some
    run_ids.append(client.trigger("send-campaign", {"workspaceId": ws,
                                                    "campaignId": campaign.id}).id)
    run = client.wait(run_ids[0], timeout=240)
    assert run.status == "CANCELED", (run.status, run.error, run.output)
    assert "canceled" in run.error["message"] and run.error["type"] == "RunCanceled"
    stored = Campaign.get(ws, campaign.id)
    assert (stored.status, stored.sending_run) == ("paused", None)
    assert "canceled" in stored.last_error
    mid = _assert_counters_match_ledger(ws, campaign.id)
    # The batches stop at their next look (once a second: about 60 more sends at 60/s).
    assert 60 <= mid["sent"] < 240 and mid["pending"] == 300 - mid["sent"]
    sent_before = _mail_per_address(domain)
    assert sum(sent_before.values()) == mid["sent"]
    time.sleep(1.5)
    assert _mail_per_address(domain) == sent_before  # nothing sent after the run ended

    mailer.on_send = None
    mailer.max_rate_override = 400.0
    resumed = _send(ws, campaign.id)
    assert resumed.status == "COMPLETED" and resumed.output["status"] == "completed"
    mail = _mail_per_address(domain)
    assert set(mail) == set(addresses) and set(mail.values()) == {1}


def test_ses_stopping_pauses_with_the_reason(local_stack, mailer, monkeypatch):
    from crmjobs.adapters.mailer import SendingStopped

    ws = _workspace()
    _prospects(ws, 40)
    campaign = _campaign(ws)
    real_send = SesMailer.send

    def quota_after_ten(self, email):
        if self.sends >= 10:
            raise SendingStopped("TooManyRequestsException: Daily message quota exceeded.")
        self.sends += 1
        return real_send(self, email)

    monkeypatch.setattr(FaultyMailer, "send", quota_after_ten)
    run = _send(ws, campaign.id)
    stored = Campaign.get(ws, campaign.id)
    assert run.status == "COMPLETED" and stored.status == "paused"
    assert "Daily message quota" in stored.last_error
    counters = _assert_counters_match_ledger(ws, campaign.id)
    assert counters["sent"] == 10 and counters["pending"] == 30


def test_content_errors_send_it_back_to_draft(local_stack, mailer):
    ws = _workspace()
    _prospects(ws, 3)
    for fields, error in [
        ({"audience": "vip_leads"}, "unknown audience"),
        ({"subject": ""}, "no subject"),
        ({"body": "Hi {{nickname}}"}, "{{nickname}}"),
    ]:
        audience = fields.pop("audience", "all_leads")
        campaign = _campaign(ws, audience, **fields)
        run = _send(ws, campaign.id)
        assert run.status == "FAILED" and error in run.error["message"]
        stored = Campaign.get(ws, campaign.id)
        assert stored.status == "draft" and error in stored.last_error
    empty = _campaign(_workspace())
    run = _send(empty.workspace_id, empty.id)
    assert (run.status, run.error["type"], run.error["message"]) == (
        "FAILED", "InvalidInput", "no recipients"
    )
    assert run.attempts == 1  # never retried
    stored = Campaign.get(empty.workspace_id, empty.id)
    assert (stored.status, stored.last_error) == ("draft", "no recipients")
    assert stored.sending_run is None
    assert sum(_mail_per_address(f"{ws}.example.com").values()) == 0


def test_a_campaign_reaches_its_own_workspace_only(local_stack, mailer):
    ws, other = _workspace(), _workspace("-b")
    shared = "shared.example.com"
    _prospects(ws, 5, domain=shared)
    _prospects(other, 5, domain=shared, start=100)
    Contact(workspace_id=other, id="ct-1", email=f"contact@{shared}").save()
    campaign = _campaign(ws)
    assert _send(ws, campaign.id).status == "COMPLETED"
    mail = _mail_per_address(shared)
    assert set(mail) == {f"lead{n}@{shared}" for n in range(5)}
    # The other workspace's id of the same campaign is not found.
    run = _send(other, campaign.id)
    assert run.status == "FAILED" and run.error["type"] == "NotFound"


def test_schedules_are_replaced_and_stale_firings_do_nothing(local_stack, mailer):
    from crmjobs.services.campaigns import schedule_name

    ws = _workspace()
    domain = f"{ws}.example.com"
    _prospects(ws, 4)
    campaign = _campaign(ws)
    scheduler = local_stack.scheduler
    group = os.environ["SCHEDULE_GROUP_NAME"]
    later = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    sooner = later - timedelta(hours=1)

    def schedule(at):
        run = client.trigger("schedule-campaign", {"workspaceId": ws, "campaignId": campaign.id,
                                                   "scheduledFor": at.isoformat()})
        return client.wait(run.id, timeout=60)

    assert schedule(later).status == "COMPLETED"
    assert schedule(sooner).status == "COMPLETED"  # rescheduled: replaces the schedule

    found = aws_client("scheduler").get_schedule(Name=schedule_name(ws, campaign.id),
                                                 GroupName=group)
    assert found["ScheduleExpression"] == f"at({sooner.strftime('%Y-%m-%dT%H:%M:%S')})"
    stored = Campaign.get(ws, campaign.id)
    assert stored.status == "scheduled" and stored.scheduled_for == sooner

    stale = _send(ws, campaign.id, scheduledFor=later.isoformat())  # the old schedule, late
    assert "no longer scheduled" in stale.output["skipped"]
    assert sum(_mail_per_address(domain).values()) == 0

    record = scheduler.fire_now(schedule_name(ws, campaign.id), group)
    assert record is not None
    deadline = datetime.now(UTC) + timedelta(seconds=90)
    while Campaign.get(ws, campaign.id).status != "completed":
        assert datetime.now(UTC) < deadline, Campaign.get(ws, campaign.id).status
        threading.Event().wait(0.5)
    assert sum(_mail_per_address(domain).values()) == 4

    # A time in the past sends at once.
    past = _campaign(ws)
    run = client.trigger("schedule-campaign", {"workspaceId": ws, "campaignId": past.id,
                                               "scheduledFor": "2020-01-01T00:00:00+00:00"})
    output = client.wait(run.id, timeout=60).output
    assert client.wait(output["sendRun"], timeout=120).output["status"] == "completed"


def test_pausing_or_deleting_a_scheduled_campaign_cancels_its_schedule(local_stack, mailer):
    from crmjobs.services.campaigns import schedule_name

    ws = _workspace()
    scheduler = aws_client("scheduler")
    group = os.environ["SCHEDULE_GROUP_NAME"]
    at = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0).isoformat()
    for change in ("paused", "draft", "deleted"):
        campaign = _campaign(ws)
        run = client.trigger("schedule-campaign", {"workspaceId": ws, "campaignId": campaign.id,
                                                   "scheduledFor": at})
        assert client.wait(run.id, timeout=60).status == "COMPLETED"
        name = schedule_name(ws, campaign.id)
        scheduler.get_schedule(Name=name, GroupName=group)  # exists
        if change == "deleted":
            Campaign(ws, campaign.id).delete()
        else:
            Campaign(ws, campaign.id).update(actions=[Campaign.status.set(change)])
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        while True:
            try:
                scheduler.get_schedule(Name=name, GroupName=group)
            except scheduler.exceptions.ResourceNotFoundException:
                break
            assert datetime.now(UTC) < deadline, f"schedule kept after the campaign was {change}"
            threading.Event().wait(0.5)
