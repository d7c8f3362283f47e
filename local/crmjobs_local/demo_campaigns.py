"""The demo's campaign part: a campaign of a few hundred contacts (with duplicates,
opt-outs, an invalid and a suppressed address) sent through send-campaign, a scheduled
campaign fired by its one-time schedule, a bounce and a complaint fed to the feedback
queue as SES publishes them, an unsubscribe link clicked over the local HTTP API, and the
campaign's counters."""

from __future__ import annotations

import email
import email.policy
import json
import random
import re
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

#: Send rate of the demo's stack (messages per second; moto has no GetAccount).
STACK_PARAMETERS = {"MaxSendRate": "40"}
CONTACTS = 200
DUPLICATES = 12
OPTED_OUT = 9


def _seed(workspace_id: str, rng: random.Random) -> tuple[int, str]:
    """Contacts: some twice (another case, spaces), some opted out, one invalid and one
    suppressed address. Returns (contacts written, the suppressed address)."""
    from crmjobs.models import Contact
    from crmjobs.stores import suppressions

    domain = "customers.example.com"
    with Contact.batch_write() as batch:
        for n in range(CONTACTS):
            batch.save(
                Contact(
                    workspace_id=workspace_id,
                    id=f"camp-ct-{n:04d}",
                    first_name=rng.choice(["Ada", "Grace", "Alan", "Edsger", "Barbara"]),
                    last_name=f"Customer{n}",
                    email=f"customer{n}@{domain}",
                    company=rng.choice(["Initech", "Umbrella", "Hooli"]),
                    email_opt_out=n < OPTED_OUT,
                )
            )
        for n in range(DUPLICATES):
            batch.save(
                Contact(
                    workspace_id=workspace_id,
                    id=f"camp-dup-{n:04d}",
                    first_name="Dup",
                    email=f"  Customer{100 + n}@{domain.upper()} ",
                )
            )
        batch.save(Contact(workspace_id=workspace_id, id="camp-bad", email="not-an-address"))
    suppressed = f"customer{CONTACTS - 1}@{domain}"
    suppressions.suppress(workspace_id, suppressed, "complaint")
    return CONTACTS + DUPLICATES + 1, suppressed


def _campaign(
    workspace_id: str, campaign_id: str, subject: str, audience: str = "all_contacts"
) -> None:
    from crmjobs.models import Campaign
    from crmjobs.models.campaigns import CampaignContent

    Campaign(
        workspace_id=workspace_id,
        id=campaign_id,
        name=subject,
        audience=audience,
        content=CampaignContent(
            subject=subject,
            body="Hi {{firstName}},\nOur spring release is out for {{company}}.\nCheers",
        ),
    ).save()


def _wait_for_status(workspace_id: str, campaign_id: str, wanted: set[str], timeout: float):
    from crmjobs.models import Campaign

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        campaign = Campaign.get(workspace_id, campaign_id)
        if campaign.status in wanted:
            return campaign
        time.sleep(0.5)
    raise TimeoutError(f"campaign {campaign_id} did not reach {sorted(wanted)} in {timeout}s")


def _ses_event(event_type: str, workspace_id: str, campaign_id: str, row: Any, **detail):
    from crmjobs.domain.rendering import message_tags

    tags = {k: [v] for k, v in message_tags(workspace_id, campaign_id, row.email).items()}
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "source": "aws.ses",
        "detail-type": f"Email {event_type}",
        "detail": {
            "eventType": event_type,
            "mail": {"messageId": row.message_id, "destination": [row.email], "tags": tags},
            **detail,
        },
    }


def _unsubscribe_link(address: str, outbox_dir, timeout_s: float = 10) -> str:
    """The link of the message to `address`, once the serving stack wrote it to the outbox
    (it does each second)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for path in sorted(outbox_dir.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if message["To"] == address:
                return re.search(r"<(http[^>]+)>", message["List-Unsubscribe"]).group(1)
        time.sleep(0.2)
    raise LookupError(f"no message to {address} in the outbox")


def run_campaigns_demo(console: Any, stack: Any, workspace_id: str, problems: list[str]) -> None:
    """The campaign scenario on a serving local stack; what went wrong goes to `problems`."""
    from crmjobs import client
    from crmjobs.adapters import aws
    from crmjobs.models import Campaign, Delivery
    from crmjobs.stores import deliveries
    from crmjobs_local.http_api import BackgroundServer, LocalHttpApi

    console.rule("[bold]Campaigns")
    rng = random.Random(7)
    # Where the stack's ApiEndpoint (its unsubscribe links) points.
    api = BackgroundServer(LocalHttpApi.for_stack(stack), stack.api_port).start()
    try:
        written, suppressed = _seed(workspace_id, rng)
        console.print(f"{written} contacts, {DUPLICATES} duplicate addresses, {OPTED_OUT} opted "
                      f"out, 1 invalid, {suppressed} suppressed")
        _campaign(workspace_id, "camp-spring", "Spring release for {{company}}")
        started = time.monotonic()
        run = client.trigger("send-campaign", {"workspaceId": workspace_id,
                                               "campaignId": "camp-spring"})
        finished = client.wait(run.id, timeout=900)
        console.print(f"send-campaign {finished.status} in {time.monotonic() - started:.1f}s: "
                      f"{json.dumps(finished.output)}")
        if finished.status != "COMPLETED" or finished.output.get("status") != "completed":
            problems.append(f"campaign camp-spring: {finished.status} {finished.output}")
            return

        _campaign(workspace_id, "camp-later", "Your proposal, {{firstName}}", "qualified_leads")
        at = (datetime.now(UTC) + timedelta(seconds=15)).replace(microsecond=0)
        scheduled = client.trigger(
            "schedule-campaign",
            {"workspaceId": workspace_id, "campaignId": "camp-later",
             "scheduledFor": at.isoformat()},
        )
        console.print(f"schedule-campaign: {client.wait(scheduled.id, timeout=60).output}")
        later = _wait_for_status(workspace_id, "camp-later", {"completed", "failed"}, 900)
        console.print(f"scheduled campaign (qualified leads) fired at {at:%H:%M:%S}: "
                      f"{later.status}, {later.counters.as_dict()['sent']} sent")

        key = deliveries.campaign_key(workspace_id, "camp-spring")
        sent = [row for row in Delivery.query(key) if row.status == "sent"]
        bounced, complained, leaving = sent[0], sent[1], sent[2]
        queue = stack.resources.queues["CampaignFeedbackQueue"].url
        for event in (
            _ses_event("Bounce", workspace_id, "camp-spring", bounced, bounce={
                "bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": bounced.email}]}),
            _ses_event("Complaint", workspace_id, "camp-spring", complained, complaint={
                "complainedRecipients": [{"emailAddress": complained.email}]}),
        ):
            for _ in range(2):  # SES may publish an event twice: it counts once
                aws.client("sqs").send_message(QueueUrl=queue, MessageBody=json.dumps(event))
        link = _unsubscribe_link(leaving.email, stack.outbox.folder)
        request = urllib.request.Request(link, data=b"List-Unsubscribe=One-Click", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            console.print(f"one-click unsubscribe of {leaving.email}: HTTP {response.status}")

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            counters = Campaign.get(workspace_id, "camp-spring").counters.as_dict()
            if counters["bounced"] and counters["complained"] and counters["unsubscribed"]:
                break
            time.sleep(0.5)
        console.print(f"camp-spring counters: {json.dumps(counters, sort_keys=True)}")
        expected = {"bounced": 1, "complained": 1, "unsubscribed": 1}
        if {name: counters[name] for name in expected} != expected:
            problems.append(f"campaign feedback not counted once: {counters}")
        console.print(f"outbox: {len(list(stack.outbox.folder.glob('*.eml')))} messages "
                      f"in {stack.outbox.folder}")
    finally:
        api.stop()
