"""Sending one email through SES (sesv2 SendEmail with Raw content).

Raw content, because the message is built whole (headers such as List-Unsubscribe included)
by crmjobs.domain.rendering, and moto keeps Raw headers where it drops Simple ones. The
client has botocore's retries off: the sender paces and retries itself, so a retry inside
botocore would both skew the pacing and hide a throttle. SES's errors become the ones below;
callers never see botocore's.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from crmjobs import config
from crmjobs.adapters import aws
from crmjobs.errors import PermanentError


@dataclass(frozen=True)
class OutgoingEmail:
    sender: str
    to: str
    raw_mime: bytes
    #: SES message tags: workspace, campaign (or "direct"), recipient.
    tags: dict[str, str]


class Mailer(Protocol):
    def send(self, email: OutgoingEmail) -> str: ...

    def max_send_rate(self) -> float: ...


class SendRetryable(Exception):
    """SES did not send the message and may later: retry the same recipient."""


class SendThrottled(SendRetryable):
    """Maximum sending rate exceeded: not sent."""


class SendingStopped(Exception):
    """The account cannot send now (daily quota reached, sending paused, suspended)."""


class RecipientRejected(PermanentError):
    """SES refused this message (MessageRejected and the like): it fails with the reason."""


class SendOutcomeUnknown(Exception):
    """The request may have reached SES but no answer came back (a read timeout, an internal
    error): the message may have been sent, so it must not be sent again."""


_STOPPED_CODES = {"SendingPausedException", "AccountSuspendedException"}
_THROTTLE_CODES = {"TooManyRequestsException", "Throttling", "ThrottlingException"}
_REJECTED_CODES = {
    "MessageRejected",
    "MailFromDomainNotVerifiedException",
    "BadRequestException",
    "NotFoundException",
    "InvalidParameterValue",
}
_UNAVAILABLE_CODES = {"ServiceUnavailable", "ServiceUnavailableException"}


def translate_error(exc: Exception) -> Exception:
    """SES's error as one of this module's (the exception itself when it is none of them)."""
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return SendRetryable(f"SES unreachable: {exc}")
    if isinstance(exc, ReadTimeoutError | ConnectionClosedError):
        return SendOutcomeUnknown(f"no answer from SES: {exc}")
    if not isinstance(exc, ClientError):
        return exc
    error = exc.response.get("Error", {})
    code, message = error.get("Code", ""), error.get("Message", "")
    if "daily message quota" in message.lower() or code in _STOPPED_CODES:
        return SendingStopped(f"{code}: {message}")
    if code in _THROTTLE_CODES:
        return SendThrottled(f"{code}: {message}")
    if code in _REJECTED_CODES:
        return RecipientRejected(f"{code}: {message}")
    if code in _UNAVAILABLE_CODES:
        return SendRetryable(f"{code}: {message}")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if status >= 500:
        return SendOutcomeUnknown(f"{code}: {message}")
    return RecipientRejected(f"{code}: {message}")


#: No botocore retries for SES: the sender owns them (tooling-facts, "SES facts").
_SES_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 1},
    account_id_endpoint_mode="disabled",
    connect_timeout=5,
    read_timeout=15,
)


def ses_client() -> Any:
    return aws.client("sesv2", _SES_CONFIG)


class SesMailer:
    """Mailer over SESv2. `max_rate_override` (the MaxSendRate parameter; locally the
    configured rate, moto has no GetAccount) wins over the account's quota."""

    #: How long the account's MaxSendRate is trusted before it is asked again.
    RATE_TTL_S = 300.0

    def __init__(
        self,
        client: Any = None,
        *,
        configuration_set: str | None = None,
        max_rate_override: float | None = None,
    ) -> None:
        self._client = client
        self.configuration_set = configuration_set
        self.max_rate_override = max_rate_override
        self._rate: tuple[float, float] | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else ses_client()

    def send(self, email: OutgoingEmail) -> str:
        request: dict[str, Any] = {
            "FromEmailAddress": email.sender,
            "Destination": {"ToAddresses": [email.to]},
            "Content": {"Raw": {"Data": email.raw_mime}},
            "EmailTags": [{"Name": name, "Value": value} for name, value in email.tags.items()],
        }
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        try:
            return self.client.send_email(**request)["MessageId"]
        except Exception as exc:  # every SES failure is translated, the rest re-raised
            translated = translate_error(exc)
            if translated is exc:
                raise
            raise translated from exc

    def max_send_rate(self) -> float:
        if self.max_rate_override:
            return self.max_rate_override
        with self._lock:
            now = time.monotonic()
            if self._rate is None or now - self._rate[1] > self.RATE_TTL_S:
                try:
                    quota = self.client.get_account()["SendQuota"]
                except ClientError as exc:
                    raise translate_error(exc) from exc
                self._rate = (float(quota["MaxSendRate"]), now)
            return self._rate[0]


def mailer_from_config() -> SesMailer:
    """The mailer the template configures: its configuration set and rate override."""
    override = config.env("SES_MAX_SEND_RATE")
    return SesMailer(
        configuration_set=config.env("SES_CONFIGURATION_SET"),
        max_rate_override=float(override) if override and float(override) > 0 else None,
    )
