"""send-campaign and schedule-campaign on the local runtime (queues, the sending state
machine, schedules), with SES faults injected into the mailer the batches use."""

from __future__ import annotations

import os
import random
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crmjobs import client
from crmjobs.adapters.mailer import SendOutcomeUnknown, SendRetryable, SendThrottled, SesMailer
from crmjobs.models import Campaign, Contact, Delivery, Prospect, Workspace
from crmjobs.models.campaigns import CampaignContent
from crmjobs.services import campaign_sending
from crmjobs.stores import deliveries, suppressions
from crmjobs_local import campaigns as local_campaigns
from crmjobs_local.outbox import sent_mail_in_process

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
        local_campaigns.prepare()
        with local.serving():
            yield local


@pytest.fixture
def mailer(monkeypatch):
    """The batches' mailer: the real SesMailer (moto), with faults a test can turn on."""
    faulty = FaultyMailer(max_rate_override=400.0)
    monkeypatch.setattr(campaign_sending, "mailer_from_config", lambda: faulty)
    return faulty


class LambdaCrash(BaseException):
    """Ends the batch like a crash of its Lambda: nothing after the send call runs."""


class FaultyMailer(SesMailer):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rng = random.Random(11)
        self.throttle_rate = 0.0
        self.unavailable_rate = 0.0
        self.unknown_rate = 0.0
        self.crash_after: int | None = None
        self.on_send = None
        self.sends = 0
        self.faults: Counter[str] = Counter()
        self._lock = threading.Lock()

    def send(self, email):
        with self._lock:
            roll = self.rng.random()
            self.sends += 1
            crash = self.crash_after is not None and self.sends == self.crash_after
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
        if crash:
            self.faults["crash"] += 1
            raise LambdaCrash("the batch's Lambda died after a send")
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
    return list(Delivery.query(deliveries.campaign_key(ws, campaign_id), consistent_read=True))


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
