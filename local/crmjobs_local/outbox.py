"""The local outbox: mail "sent" through moto's SES written as .eml files a person can open.

moto keeps sent mail in its SES backend (SES v1 and v2 share it): in-process at
``moto.ses.models.ses_backends[account][region].sent_messages``, and on a server in the
``ses`` section of ``GET /moto-api/data.json`` (models Message, RawMessage, TemplateMessage,
BulkTemplateMessage; no account or region there). Each message becomes one RFC 5322 file,
``<message id>.eml``, written once.

What moto keeps decides what the file can show: for simple content it stores one body, the
HTML part when there is one (else the text part), and no send time. An HTML body is written
as multipart/alternative with a plain-text rendering of it; Date is when the outbox first saw
the message. Raw messages (SES SendRawEmail, SESv2 Content.Raw) are kept verbatim.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account


@dataclass(frozen=True)
class SentMail:
    """One message as moto recorded it."""

    message_id: str
    source: str
    destinations: dict[str, list[str]] = field(default_factory=dict)
    subject: str | None = None
    body: str | None = None
    raw_data: str | None = None
    template: str | None = None
    template_data: str | None = None


def _sent_mail_from_model(kind: str, fields: dict[str, Any]) -> list[SentMail]:
    if kind == "Message":
        return [
            SentMail(
                message_id=fields["id"],
                source=fields["source"],
                destinations=fields.get("destinations") or {},
                subject=fields.get("subject"),
                body=fields.get("body"),
            )
        ]
    if kind == "RawMessage":
        destinations = fields.get("destinations") or []
        return [
            SentMail(
                message_id=fields["id"],
                source=fields["source"],
                destinations={"ToAddresses": list(destinations)},
                raw_data=fields["raw_data"],
            )
        ]
    if kind == "TemplateMessage":
        return [
            SentMail(
                message_id=fields["id"],
                source=fields["source"],
                destinations=fields.get("destinations") or {},
                template=fields.get("template"),
                template_data=fields.get("template_data"),
            )
        ]
    if kind == "BulkTemplateMessage":
        return [
            SentMail(
                message_id=message_id,
                source=fields["source"],
                destinations=(entry.get("Destination") or {}),
                template=fields.get("template"),
                template_data=fields.get("template_data"),
            )
            for message_id, entry in zip(
                fields.get("ids", []), fields.get("destinations", []), strict=False
            )
        ]
    return []


_MODEL_KINDS = ("Message", "RawMessage", "TemplateMessage", "BulkTemplateMessage")


def sent_mail_from_server(endpoint_url: str, timeout_s: float = 10) -> list[SentMail]:
    """Sent mail of a moto server in another process (all accounts and regions)."""
    with urllib.request.urlopen(
        f"{endpoint_url.rstrip('/')}/moto-api/data.json", timeout=timeout_s
    ) as response:
        data = json.load(response)
    ses_models = data.get("ses", {})
    mails: list[SentMail] = []
    for kind in _MODEL_KINDS:
        for fields in ses_models.get(kind, []):
            mails.extend(_sent_mail_from_model(kind, fields))
    return mails


def _mail_of(messages: list[Any]) -> list[SentMail]:
    return [
        mail
        for message in messages
        for mail in _sent_mail_from_model(type(message).__name__, vars(message))
    ]


def _sent_messages(account_id: str, region: str) -> list[Any]:
    from moto.ses.models import ses_backends

    return ses_backends[account_id][region].sent_messages


def sent_mail_in_process(
    account_id: str = DEFAULT_ACCOUNT_ID, region: str = "us-east-1"
) -> list[SentMail]:
    """Sent mail of the moto running in this process (also a ThreadedMotoServer started here)."""
    return _mail_of(_sent_messages(account_id, region))


class NewSentMailInProcess:
    """Each call, the mail sent in this process's moto since the last call (moto's list of
    sent messages only grows, or starts over when moto is reset), so that syncing the
    outbox once a second costs what was sent in that second, not everything sent so far."""

    def __init__(self, account_id: str = DEFAULT_ACCOUNT_ID, region: str = "us-east-1") -> None:
        self.account_id = account_id
        self.region = region
        self._read = 0

    def __call__(self) -> list[SentMail]:
        messages = _sent_messages(self.account_id, self.region)
        if len(messages) < self._read:
            self._read = 0
        new = messages[self._read :]
        self._read += len(new)
        return _mail_of(new)


# --------------------------------------------------------------------------- rendering

_HTML_TAG = re.compile(
    r"<\s*(html|body|p|div|br|table|tr|td|a|span|h[1-6]|ul|ol|li|strong|em|b|i|img)\b",
    re.IGNORECASE,
)
_BLOCK_TAGS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul"}


class _TextRenderer(HTMLParser):
    """HTML to readable plain text: block tags become line breaks, links keep their target."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0
        self._links: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        if tag == "a":
            self._links.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag == "a" and self._links:
            href = self._links.pop()
            if href and not href.startswith("#"):
                self.parts.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)

    def text(self) -> str:
        joined = "".join(self.parts)
        lines = [" ".join(line.split()) for line in joined.splitlines()]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def html_to_text(html: str) -> str:
    renderer = _TextRenderer()
    renderer.feed(html)
    renderer.close()
    return renderer.text()


def looks_like_html(body: str) -> bool:
    return bool(_HTML_TAG.search(body))


def build_message(mail: SentMail, seen_at: datetime) -> email.message.Message:
    """The RFC 5322 message for one sent mail."""
    message_id_header = f"<{mail.message_id}@email.amazonses.com>"
    if mail.raw_data is not None:
        message = email.message_from_string(mail.raw_data, policy=email.policy.default)
        if "Message-ID" not in message:
            message["Message-ID"] = message_id_header
        if "Date" not in message:
            message["Date"] = format_datetime(seen_at)
        return message

    message = EmailMessage(policy=email.policy.default)
    message["From"] = mail.source
    for header, key in (("To", "ToAddresses"), ("Cc", "CcAddresses"), ("Bcc", "BccAddresses")):
        if mail.destinations.get(key):
            message[header] = ", ".join(mail.destinations[key])
    message["Date"] = format_datetime(seen_at)
    message["Message-ID"] = message_id_header
    if mail.template is not None:
        message["Subject"] = f"[SES template {mail.template}]"
        message.set_content(
            f"Sent with the SES template {mail.template!r}; moto does not render templates.\n"
            f"Template data: {mail.template_data}\n"
        )
        return message
    message["Subject"] = mail.subject or ""
    body = mail.body or ""
    if looks_like_html(body):
        message.set_content(html_to_text(body))
        message.add_alternative(body, subtype="html")
    else:
        message.set_content(body)
    return message


# --------------------------------------------------------------------------- the outbox


class Outbox:
    """Writes each new sent mail once as `<folder>/<message id>.eml`."""

    def __init__(
        self,
        folder: str | Path,
        read_sent_mail: Callable[[], list[SentMail]] | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.folder = Path(folder)
        self._read_sent_mail = read_sent_mail or NewSentMailInProcess()
        #: Message ids written (or found written) already: a repeat costs no file lookup.
        self._written: set[str] = set()
        self._clock = clock
        #: The serving thread and a caller may sync at once: one writer at a time.
        self._writing = threading.Lock()

    @classmethod
    def for_server(cls, folder: str | Path, endpoint_url: str) -> Outbox:
        return cls(folder, lambda: sent_mail_from_server(endpoint_url))

    def path_for(self, mail: SentMail) -> Path:
        safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", mail.message_id)
        return self.folder / f"{safe_id}.eml"

    def sync(self) -> list[Path]:
        """Write the mail not written yet; returns the new files (none on a repeat)."""
        with self._writing:
            return self._write_new()

    def _write_new(self) -> list[Path]:
        self.folder.mkdir(parents=True, exist_ok=True)
        written = []
        for mail in self._read_sent_mail():
            if mail.message_id in self._written:
                continue
            self._written.add(mail.message_id)
            path = self.path_for(mail)
            if path.exists():
                continue
            message = build_message(mail, self._clock())
            temporary = path.with_suffix(".eml.tmp")
            temporary.write_bytes(message.as_bytes(policy=email.policy.SMTP))
            temporary.replace(path)  # a reader never sees half a file
            written.append(path)
        return written


def verify_sender(ses_client: Any, sesv2_client: Any, identity: str) -> dict[str, Any]:
    """Verify a domain or address identity (moto verifies at once) and return its SESv2 status.

    A verified domain covers every address in it. Raises RuntimeError if the identity is
    not verified afterwards.
    """
    if "@" in identity:
        ses_client.verify_email_identity(EmailAddress=identity)
    else:
        ses_client.verify_domain_identity(Domain=identity)
    status = sesv2_client.get_email_identity(EmailIdentity=identity)
    if status.get("VerificationStatus") != "SUCCESS":
        raise RuntimeError(
            f"SES identity {identity} is {status.get('VerificationStatus')}, not verified"
        )
    return status
