"""The SES mailer: requests checked against the service model (botocore Stubber), SES errors
translated, and a real send through moto that keeps every header."""

from __future__ import annotations

import email
import email.policy
import socket
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber
from moto import mock_aws

from crmjobs.adapters import mailer as mailer_module
from crmjobs.adapters.mailer import (
    OutgoingEmail,
    RecipientRejected,
    SendingStopped,
    SendOutcomeUnknown,
    SendRetryable,
    SendThrottled,
    SesMailer,
)
from crmjobs.domain.rendering import RecipientFields, Unsubscribe, build_message, message_tags

FIELDS = RecipientFields("Ada L", "Ada", "L", "Acme", "CTO", "ada@example.com")


def outgoing(to: str = "ada@example.com", sender: str = "news@crmjobs.local") -> OutgoingEmail:
    message = build_message(
        sender=sender,
        to=to,
        subject="Hello {{firstName}}",
        body="Hi {{name}}",
        fields=FIELDS,
        unsubscribe=Unsubscribe("https://u.example/unsubscribe?token=t", "unsub@crmjobs.local"),
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return OutgoingEmail(sender, to, message.as_bytes(), message_tags("ws-1", "c.1", to))


@pytest.fixture
def stubbed():
    client = boto3.client("sesv2", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield SesMailer(client, configuration_set="crmjobs-feedback"), stubber


def test_send_request_matches_the_service_model(stubbed):
    mailer, stubber = stubbed
    email_ = outgoing()
    stubber.add_response(
        "send_email",
        {"MessageId": "m-1"},
        {
            "FromEmailAddress": "news@crmjobs.local",
            "Destination": {"ToAddresses": ["ada@example.com"]},
            "Content": {"Raw": {"Data": email_.raw_mime}},
            "EmailTags": [
                {"Name": "workspace", "Value": "ws-1"},
                {"Name": "campaign", "Value": "c_d1"},
                {"Name": "recipient", "Value": email_.tags["recipient"]},
            ],
            "ConfigurationSetName": "crmjobs-feedback",
        },
    )
    assert mailer.send(email_) == "m-1"
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "message", "status", "expected"),
    [
        ("TooManyRequestsException", "Maximum sending rate exceeded.", 429, SendThrottled),
        ("Throttling", "Maximum sending rate exceeded.", 400, SendThrottled),
        ("TooManyRequestsException", "Daily message quota exceeded.", 429, SendingStopped),
        ("SendingPausedException", "Sending paused for this account.", 400, SendingStopped),
        ("AccountSuspendedException", "Account suspended.", 400, SendingStopped),
        ("MessageRejected", "Email address is not verified.", 400, RecipientRejected),
        ("MailFromDomainNotVerifiedException", "MAIL FROM not verified", 400, RecipientRejected),
        ("ServiceUnavailable", "Service unavailable", 503, SendRetryable),
        ("InternalFailure", "Internal error", 500, SendOutcomeUnknown),
    ],
)
def test_ses_errors_are_translated(stubbed, code, message, status, expected):
    mailer, stubber = stubbed
    stubber.add_client_error("send_email", code, message, status)
    with pytest.raises(expected) as raised:
        mailer.send(outgoing())
    assert code in str(raised.value)
    stubber.assert_no_pending_responses()  # one call: botocore did not retry


def test_throttle_is_retryable_and_rejection_permanent():
    from crmjobs.errors import PermanentError

    assert issubclass(SendThrottled, SendRetryable)
    assert issubclass(RecipientRejected, PermanentError)
    assert not issubclass(SendingStopped, PermanentError)


def test_a_read_timeout_is_an_unknown_outcome():
    translated = mailer_module.translate_error(ReadTimeoutError(endpoint_url="https://ses"))
    assert isinstance(translated, SendOutcomeUnknown)


def test_ses_client_does_not_retry(monkeypatch):
    """One request per send, even for an error botocore would retry (a refused connection)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_SESV2", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = mailer_module.ses_client()
    requests = []
    client.meta.events.register("before-send.sesv2.SendEmail", lambda **_: requests.append(1))
    with pytest.raises(EndpointConnectionError):
        client.send_email(
            FromEmailAddress="news@crmjobs.local",
            Destination={"ToAddresses": ["ada@example.com"]},
            Content={"Raw": {"Data": b"Subject: hi\r\n\r\nhi"}},
        )
    assert len(requests) == 1


def test_max_send_rate_from_get_account_and_override(stubbed):
    mailer, stubber = stubbed
    stubber.add_response(
        "get_account",
        {"SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 14.0, "SentLast24Hours": 3.0}},
        {},
    )
    assert mailer.max_send_rate() == 14.0
    assert mailer.max_send_rate() == 14.0  # cached: one GetAccount
    stubber.assert_no_pending_responses()
    assert SesMailer(mailer.client, max_rate_override=200.0).max_send_rate() == 200.0


def test_configuration(monkeypatch):
    monkeypatch.setenv("SES_MAX_SEND_RATE", "25")
    monkeypatch.setenv("SES_CONFIGURATION_SET", "cs")
    configured = mailer_module.mailer_from_config()
    assert configured.max_send_rate() == 25.0 and configured.configuration_set == "cs"
    monkeypatch.setenv("SES_MAX_SEND_RATE", "0")
    assert mailer_module.mailer_from_config().max_rate_override is None


@mock_aws
def test_send_through_moto_keeps_raw_headers():
    from moto.ses.models import ses_backends

    client = boto3.client("sesv2", region_name="us-east-1")
    mailer = SesMailer(client)
    with pytest.raises(RecipientRejected, match="MessageRejected"):
        mailer.send(outgoing())
    client.create_email_identity(EmailIdentity="crmjobs.local")
    message_id = mailer.send(outgoing())
    (sent,) = ses_backends["123456789012"]["us-east-1"].sent_messages
    assert sent.id == message_id
    parsed = email.message_from_string(sent.raw_data, policy=email.policy.default)
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["List-Unsubscribe"].startswith("<https://u.example/unsubscribe?token=t>")
    assert parsed["To"] == "ada@example.com"
