"""The outbox against a moto server: SES v1/v2 sends become .eml files, each written once."""

from __future__ import annotations

import email
import email.policy
from email.utils import parsedate_to_datetime

import pytest

from crmjobs_local.outbox import (
    NewSentMailInProcess,
    Outbox,
    sent_mail_in_process,
    verify_sender,
)

REGION = "us-east-1"
HTML = (
    "<html><body><h1>Your score is up</h1>"
    '<p>Prospect <b>Ada Lovelace</b> reached 87. <a href="https://crm.example.com/p/1">Open</a>'
    "</p></body></html>"
)


@pytest.fixture
def clients(moto_clients):
    """SES v1 and v2 clients on a freshly reset moto with example.com verified."""
    ses, sesv2 = moto_clients("ses", "sesv2")
    verify_sender(ses, sesv2, "example.com")
    return ses, sesv2


def read_eml(path):
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def test_sesv2_simple_mail_becomes_an_openable_eml_once(clients, endpoint, tmp_path):
    _, sesv2 = clients
    message_id = sesv2.send_email(
        FromEmailAddress="CRM Jobs <noreply@example.com>",
        Destination={"ToAddresses": ["ada@client.test"], "CcAddresses": ["owner@client.test"]},
        Content={
            "Simple": {
                "Subject": {"Data": "Lead score update"},
                "Body": {"Text": {"Data": "Ada reached 87."}, "Html": {"Data": HTML}},
            }
        },
    )["MessageId"]
    outbox = Outbox.for_server(tmp_path, endpoint)

    (path,) = outbox.sync()

    assert path.name == f"{message_id}.eml"
    message = read_eml(path)
    assert message["From"] == "CRM Jobs <noreply@example.com>"
    assert message["To"] == "ada@client.test"
    assert message["Cc"] == "owner@client.test"
    assert message["Subject"] == "Lead score update"
    assert message["Message-ID"] == f"<{message_id}@email.amazonses.com>"
    assert parsedate_to_datetime(message["Date"]).tzinfo is not None
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"
    assert html.get_content().strip() == HTML
    assert "Your score is up" in text.get_content()
    assert "Ada Lovelace reached 87. Open (https://crm.example.com/p/1)" in text.get_content()
    assert outbox.sync() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_in_process_reader_sees_the_servers_mail_and_text_only_mail_is_plain(clients, tmp_path):
    ses, _ = clients
    ses.send_email(
        Source="noreply@example.com",
        Destination={"ToAddresses": ["bob@client.test"], "BccAddresses": ["audit@example.com"]},
        Message={
            "Subject": {"Data": "Plain note"},
            "Body": {"Text": {"Data": "Just text, <no markup>."}},
        },
    )
    outbox = Outbox(tmp_path, lambda: sent_mail_in_process(region=REGION))

    (path,) = outbox.sync()

    message = read_eml(path)
    assert message.get_content_type() == "text/plain"
    assert message.get_content().strip() == "Just text, <no markup>."
    assert message["Bcc"] == "audit@example.com"
    assert outbox.sync() == []


def test_the_in_process_reader_returns_each_sent_mail_once(clients, tmp_path):
    ses, _ = clients

    def send(to: str) -> str:
        return ses.send_email(
            Source="noreply@example.com",
            Destination={"ToAddresses": [to]},
            Message={"Subject": {"Data": "Hi"}, "Body": {"Text": {"Data": "Hello."}}},
        )["MessageId"]

    first = [send("a@client.test"), send("b@client.test")]
    reader = NewSentMailInProcess(region=REGION)
    outbox = Outbox(tmp_path, reader)
    assert sorted(path.stem for path in outbox.sync()) == sorted(first)
    assert reader() == [] and outbox.sync() == []
    later = send("c@client.test")
    assert [path.stem for path in outbox.sync()] == [later]
    # A second outbox over the same folder reads everything once and rewrites nothing.
    assert Outbox(tmp_path, NewSentMailInProcess(region=REGION)).sync() == []


def test_raw_mail_is_kept_verbatim(clients, endpoint, tmp_path):
    ses, sesv2 = clients
    raw = (
        "From: noreply@example.com\r\nTo: carol@client.test\r\nSubject: Raw one\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nRaw body.\r\n"
    )
    sesv2.send_email(
        FromEmailAddress="noreply@example.com",
        Destination={"ToAddresses": ["carol@client.test"]},
        Content={"Raw": {"Data": raw.encode()}},
    )

    (path,) = Outbox.for_server(tmp_path, endpoint).sync()

    message = read_eml(path)
    assert message["Subject"] == "Raw one"
    assert message.get_content().strip() == "Raw body."
    assert message["Message-ID"] and message["Date"]


def test_verify_sender_covers_addresses_and_domains(clients):
    ses, sesv2 = clients
    status = verify_sender(ses, sesv2, "alerts@another.test")
    assert status["IdentityType"] == "EMAIL_ADDRESS"
    assert status["VerificationStatus"] == "SUCCESS"
    assert verify_sender(ses, sesv2, "example.com")["IdentityType"] == "DOMAIN"
