"""SES feedback and unsubscribe links on the local runtime: events fed to the feedback
queue as EventBridge delivers them (moto's event destinations never publish), the
unsubscribe function invoked with API Gateway's events."""

from __future__ import annotations

import email
import email.policy
import json
import re
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from crmjobs import client
from crmjobs.adapters import aws
from crmjobs.domain.rendering import message_tags
from crmjobs.models import Campaign, Contact, Delivery, Prospect, Suppression, Workspace
from crmjobs.models.campaigns import CampaignContent
from crmjobs.stores import deliveries
from crmjobs_local.outbox import sent_mail_in_process

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory):
    from crmjobs_local.stack import LocalRuntime

    with LocalRuntime(
        ROOT / "template.yaml",
        data_dir=tmp_path_factory.mktemp("data"),
        in_process=True,
    ) as local:
        with local.serving():
            yield local


def _sent_campaign(audience: str = "all_contacts", count: int = 4, domain: str | None = None):
    ws = f"ws-{uuid.uuid4().hex[:8]}"
    Workspace(id=ws, name="Acme", subscription_tier="starter").save()
    domain = domain or f"{ws}.example.com"
    for n in range(count):
        Contact(workspace_id=ws, id=f"ct-{n}", first_name=f"C{n}", email=f"c{n}@{domain}").save()
    campaign = Campaign(workspace_id=ws, id="c-1", name="News", audience=audience,
                        content=CampaignContent(subject="Hi {{firstName}}", body="News"))
    campaign.save()
    run = client.trigger("send-campaign", {"workspaceId": ws, "campaignId": "c-1"})
    assert client.wait(run.id, timeout=120).output["status"] == "completed"
    rows = {row.email: row for row in Delivery.query(deliveries.campaign_key(ws, "c-1"))}
    return ws, rows


def _event(event_type: str, ws: str, row: Delivery, **detail) -> dict:
    tags = {name: [value] for name, value in message_tags(ws, "c-1", row.email).items()}
    mail = {"messageId": detail.pop("message_id", row.message_id), "destination": [row.email],
            "source": "campaigns@crmjobs.local", "tags": tags,
            "timestamp": "2026-12-01T09:00:00.000Z"}
    return {"version": "0", "id": str(uuid.uuid4()), "source": "aws.ses",
            "detail-type": f"Email {event_type}", "detail": {"eventType": event_type,
                                                            "mail": mail, **detail}}


def _feed(stack, *events: dict) -> None:
    url = stack.resources.queues["CampaignFeedbackQueue"].url
    for event in events:
        aws.client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps(event))


def _wait_for(check, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


def _counters(ws: str) -> dict:
    return Campaign.get(ws, "c-1").counters.as_dict()


def test_each_event_counts_once_and_hard_bounces_and_complaints_suppress(local_stack):
    ws, rows = _sent_campaign()
    r0, r1, r2, r3 = (rows[address] for address in sorted(rows))

    def bounce(row, kind):
        return _event("Bounce", ws, row, bounce={
            "bounceType": kind, "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": row.email.upper()}]})

    complaint = _event("Complaint", ws, r3, complaint={
        "complainedRecipients": [{"emailAddress": r3.email}], "complaintFeedbackType": "abuse"})
    delivery = _event("Delivery", ws, r0, delivery={"recipients": [r0.email]})
    opens = [_event("Open", ws, r0, open={"timestamp": f"2026-12-01T10:0{n}:00Z"})
             for n in range(2)]
    _feed(local_stack, delivery, delivery, bounce(r1, "Permanent"), bounce(r1, "Permanent"),
          bounce(r2, "Transient"), complaint, complaint, *opens)

    _wait_for(lambda: _counters(ws)["complained"] == 1 and _counters(ws)["opened"] == 1
              and _counters(ws)["bounced"] == 2 and _counters(ws)["delivered"] == 1)
    time.sleep(2)  # the repeats have been processed too: nothing moved twice
    counters = _counters(ws)
    assert (counters["delivered"], counters["bounced"], counters["complained"],
            counters["opened"]) == (1, 2, 1, 1)
    suppressed = {item.email: item.reason for item in Suppression.query(ws)}
    assert suppressed == {r1.email: "bounce", r3.email: "complaint"}  # not the transient one
    stored = deliveries.get(ws, "c-1", r1.email)
    assert stored.bounce_type == "Permanent" and stored.bounced_at is not None


def test_events_touch_only_their_own_workspace(local_stack):
    shared = f"shared-{uuid.uuid4().hex[:6]}.example.com"
    ws_a, rows_a = _sent_campaign(count=1, domain=shared)
    ws_b, rows_b = _sent_campaign(count=1, domain=shared)
    (address,) = rows_a
    row_a, row_b = rows_a[address], rows_b[address]
    hard = {"bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": address}]}
    # B's tags with A's message id (a forged or mixed-up event): nothing changes.
    _feed(local_stack, _event("Bounce", ws_b, row_b, message_id=row_a.message_id, bounce=hard))
    _feed(local_stack, _event("Bounce", ws_a, row_a, bounce=hard))
    _wait_for(lambda: _counters(ws_a)["bounced"] == 1)
    time.sleep(2)
    assert _counters(ws_b)["bounced"] == 0
    assert deliveries.get(ws_b, "c-1", address).bounced_at is None
    assert [s.email for s in Suppression.query(ws_a)] == [address]
    assert list(Suppression.query(ws_b)) == []  # A's bounce suppresses in A only


def _unsubscribe_url(address: str) -> str:
    for mail in sent_mail_in_process():
        if mail.raw_data and f"To: {address}" in mail.raw_data:
            message = email.message_from_string(mail.raw_data, policy=email.policy.default)
            return re.search(r"<(http[^>]+)>", message["List-Unsubscribe"]).group(1)
    raise AssertionError(f"no mail to {address}")


def _http(stack, method: str, url: str, body: str | None = None) -> dict:
    parsed = urlparse(url)
    event = {
        "version": "2.0", "routeKey": f"{method} /unsubscribe", "rawPath": parsed.path,
        "rawQueryString": parsed.query,
        "queryStringParameters": {k: v[0] for k, v in parse_qs(parsed.query).items()},
        "headers": {"content-type": "application/x-www-form-urlencoded"},
        "requestContext": {"domainName": "api.example", "http": {"method": method,
                           "path": parsed.path, "sourceIp": "127.0.0.1"}, "stage": "$default"},
        "body": body, "isBase64Encoded": False,
    }
    return stack.invoke("UnsubscribeFunction", event)


def test_one_click_unsubscribe_and_forged_links(local_stack):
    ws, rows = _sent_campaign(count=2)
    first, second = sorted(rows)
    url = _unsubscribe_url(first)

    page = _http(local_stack, "GET", url)
    assert page["statusCode"] == 200 and "<form" in page["body"]
    assert Contact.get(ws, "ct-0").email_opt_out is False  # a GET changes nothing

    token = parse_qs(urlparse(url).query)["token"][0]
    head, body, signature = token.split(".")
    other = _unsubscribe_url(second)
    forged = [
        url.replace(token, f"{head}.{body}.{signature[:-3]}AAA"),
        url.replace(token, f"{head}.{parse_qs(urlparse(other).query)['token'][0].split('.')[1]}"
                    f".{signature}"),
        url.replace(token, "garbage"),
        url.split("?")[0],
    ]
    for forged_url in forged:
        answer = _http(local_stack, "POST", forged_url, "List-Unsubscribe=One-Click")
        assert 400 <= answer["statusCode"] < 500, forged_url
    assert _counters(ws)["unsubscribed"] == 0
    assert list(Suppression.query(ws)) == []
    assert not Contact.get(ws, "ct-0").email_opt_out and not Contact.get(ws, "ct-1").email_opt_out

    for _ in range(2):  # a second click changes nothing more
        answer = _http(local_stack, "POST", url, "List-Unsubscribe=One-Click")
        assert answer["statusCode"] == 200 and "no more emails" in answer["body"]
    assert _counters(ws)["unsubscribed"] == 1
    assert Contact.get(ws, "ct-0").email_opt_out is True
    assert [(s.email, s.reason) for s in Suppression.query(ws)] == [(first, "unsubscribe")]
    assert deliveries.get(ws, "c-1", first).unsubscribed_at is not None


def test_prospect_unsubscribe_bumps_its_version(local_stack):
    ws = f"ws-{uuid.uuid4().hex[:8]}"
    Workspace(id=ws, name="Acme").save()
    Prospect(workspace_id=ws, id="p-1", name="Ada L", email=f"ada@{ws}.example.com").save()
    version = Prospect.get(ws, "p-1").version
    Campaign(workspace_id=ws, id="c-1", name="News", audience="all_leads",
             content=CampaignContent(subject="Hi", body="News")).save()
    run = client.trigger("send-campaign", {"workspaceId": ws, "campaignId": "c-1"})
    assert client.wait(run.id, timeout=120).output["sent"] == 1
    answer = _http(local_stack, "POST", _unsubscribe_url(f"ada@{ws}.example.com"))
    assert answer["statusCode"] == 200
    stored = Prospect.get(ws, "p-1")
    assert stored.email_opt_out is True and stored.version == version + 1
