"""send_direct_email on the local stack: sent once per dedupe key, skipped for opted-out,
suppressed and address-less people, workspace-scoped, throttles leave it retryable; its
SES events reach its row."""

from __future__ import annotations

import email
import email.policy

import pytest

from crmjobs import config
from crmjobs.adapters.mailer import SendThrottled, SesMailer
from crmjobs.domain.feedback import parse_ses_event
from crmjobs.errors import NotFound
from crmjobs.models import Contact, Prospect, Workspace
from crmjobs.services.feedback import record_event
from crmjobs.services.mail import send_direct_email
from crmjobs.stores import deliveries, suppressions
from crmjobs_local.outbox import sent_mail_in_process


@pytest.fixture
def mail_settings(stack):
    """Sender settings as the template gives them to send_email's function (the agents')."""
    with config.function_environment(stack.function("ExecuteAgentFunction").environment):
        yield


def _sent_to(address: str) -> list:
    return [
        mail
        for mail in sent_mail_in_process()
        if mail.raw_data and f"To: {address}" in mail.raw_data
    ]


def test_sent_once_per_dedupe_key(workspace, mail_settings):
    Contact(workspace_id=workspace.id, id="c-1", first_name="Ada", last_name="L",
            email=f"Ada.{workspace.id}@Example.com").save()
    address = f"ada.{workspace.id}@example.com"
    first = send_direct_email(
        workspace.id, recipient_type="contact", recipient_id="c-1",
        subject="Hi {{firstName}}", body="Hello {{name}}\nSee you", dedupe_key="exec-1:tool-1",
        sent_by="agent-1",
    )
    again = send_direct_email(
        workspace.id, recipient_type="contact", recipient_id="c-1",
        subject="Hi {{firstName}}", body="Hello {{name}}", dedupe_key="exec-1:tool-1",
        sent_by="agent-1",
    )
    assert first.status == "sent" and first.message_id
    assert again == first
    (mail,) = _sent_to(address)
    parsed = email.message_from_string(mail.raw_data, policy=email.policy.default)
    assert parsed["Subject"] == "Hi Ada"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "token=" in parsed["List-Unsubscribe"]


def test_skips_and_scoping(workspace, mail_settings):
    ws = workspace.id
    Prospect(workspace_id=ws, id="p-none", name="No Mail").save()
    Prospect(workspace_id=ws, id="p-out", name="Out", email=f"out.{ws}@example.com",
             email_opt_out=True).save()
    Prospect(workspace_id=ws, id="p-sup", name="Sup", email=f"sup.{ws}@example.com").save()
    suppressions.suppress(ws, f"sup.{ws}@example.com", "complaint")
    other = Workspace(id=f"{ws}-other", name="Other")
    other.save()
    Prospect(workspace_id=other.id, id="p-x", name="X", email=f"x.{ws}@example.com").save()

    def send(recipient_id, workspace_id=ws):
        return send_direct_email(
            workspace_id, recipient_type="prospect", recipient_id=recipient_id,
            subject="S", body="B", dedupe_key=f"k-{recipient_id}", sent_by="agent",
        )

    assert send("p-none").reason == "no email"
    assert send("p-out").reason == "opted out"
    assert send("p-sup").reason == "suppressed"
    with pytest.raises(NotFound):
        send("p-x")  # exists only in the other workspace
    assert _sent_to(f"out.{ws}@example.com") == [] and _sent_to(f"x.{ws}@example.com") == []


def test_throttled_send_can_be_retried(workspace, mail_settings):
    ws = workspace.id
    Prospect(workspace_id=ws, id="p-1", name="Grace Hopper", email=f"grace.{ws}@example.com").save()

    class ThrottledOnce(SesMailer):
        calls = 0

        def send(self, outgoing):
            ThrottledOnce.calls += 1
            if ThrottledOnce.calls == 1:
                raise SendThrottled("Maximum sending rate exceeded.")
            return super().send(outgoing)

    def send():
        return send_direct_email(
            ws, recipient_type="prospect", recipient_id="p-1", subject="S {{lastName}}",
            body="B", dedupe_key="exec:tool", sent_by="agent", mailer=ThrottledOnce(),
        )

    with pytest.raises(SendThrottled):
        send()
    row = deliveries.find_direct(f"{ws}#direct#exec:tool")
    assert row.status == "pending"
    result = send()
    assert result.status == "sent"
    assert len(_sent_to(f"grace.{ws}@example.com")) == 1


def test_ses_events_of_a_direct_email_reach_its_row_once(workspace, mail_settings):
    """The message's tags carry its dedupe key: a Delivery and a permanent Bounce set the
    row's flags once (SES repeats events), the bounce suppresses the address; an event of
    another message with the same tags changes no row."""
    ws = workspace.id
    address = f"linus.{ws}@example.com"
    Contact(workspace_id=ws, id="c-9", first_name="Linus", email=address).save()

    class Recording(SesMailer):
        tags: dict = {}

        def send(self, outgoing):
            Recording.tags = outgoing.tags
            return super().send(outgoing)

    dedupe_key = "exec-7:tooluse_Ab9/+=ü"
    sent = send_direct_email(
        ws, recipient_type="contact", recipient_id="c-9", subject="S", body="B",
        dedupe_key=dedupe_key, sent_by="agent-1", mailer=Recording(),
    )

    def event(event_type, message_id=sent.message_id, **detail):
        mail = {"messageId": message_id, "destination": [address],
                "tags": {name: [value] for name, value in Recording.tags.items()}}
        return parse_ses_event({"eventType": event_type, "mail": mail, **detail})

    bounce = {"bounce": {"bounceType": "Permanent",
                         "bouncedRecipients": [{"emailAddress": address}]}}
    assert record_event(event("Delivery", message_id="another-message")) == {
        "counted": 0, "suppressed": 0}
    assert record_event(event("Delivery")) == {"counted": 1, "suppressed": 0}
    assert record_event(event("Delivery")) == {"counted": 0, "suppressed": 0}
    assert record_event(event("Bounce", **bounce)) == {"counted": 1, "suppressed": 1}
    assert record_event(event("Bounce", **bounce)) == {"counted": 0, "suppressed": 0}
    row = deliveries.find_direct(deliveries.direct_key(ws, dedupe_key))
    assert row.delivered_at and row.bounced_at and row.bounce_type == "Permanent"
    assert suppressions.is_suppressed(ws, address)
