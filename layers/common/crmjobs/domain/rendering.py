"""A campaign message for one recipient: placeholders, the HTML and text parts, the
unsubscribe headers (RFC 2369, RFC 8058) and SES message tags.

Placeholders are checked before anything is sent (an unknown one names itself); values
are HTML-escaped in the HTML part and left as they are in the text part.
"""

from __future__ import annotations

import base64
import binascii
import email.policy
import hashlib
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import quote

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
PLACEHOLDERS = ("name", "firstName", "lastName", "company", "title", "email")
#: SES message tag values allow only these characters (sesv2 MessageTag).
_TAG_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class UnknownPlaceholder(ValueError):
    pass


@dataclass(frozen=True)
class RecipientFields:
    name: str
    first_name: str
    last_name: str
    company: str
    title: str
    email: str

    def values(self) -> dict[str, str]:
        return {
            "name": self.name,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "company": self.company,
            "title": self.title,
            "email": self.email,
        }


def check_placeholders(*templates: str) -> None:
    """Raise UnknownPlaceholder naming every placeholder that is not one of PLACEHOLDERS."""
    unknown = sorted(
        {
            match.group(1)
            for template in templates
            for match in PLACEHOLDER.finditer(template)
            if match.group(1) not in PLACEHOLDERS
        }
    )
    if unknown:
        names = ", ".join("{{" + name + "}}" for name in unknown)
        known = ", ".join("{{" + name + "}}" for name in PLACEHOLDERS)
        raise UnknownPlaceholder(f"unknown placeholder {names}; known placeholders: {known}")


def _fill(template: str, values: Mapping[str, str], escape) -> str:
    """Fill placeholders; `escape` applies to the template's text and the values alike."""
    check_placeholders(template)
    parts: list[str] = []
    position = 0
    for match in PLACEHOLDER.finditer(template):
        parts.append(escape(template[position : match.start()]))
        parts.append(escape(values[match.group(1)]))
        position = match.end()
    parts.append(escape(template[position:]))
    return "".join(parts)


def render_text(template: str, fields: RecipientFields) -> str:
    return _fill(template, fields.values(), lambda text: text)


def render_subject(template: str, fields: RecipientFields) -> str:
    """A subject is one header line: line breaks in the values become spaces."""
    return " ".join(render_text(template, fields).split())


def render_html(body: str, fields: RecipientFields) -> str:
    """Every non-empty line of the body is a paragraph; everything is HTML-escaped."""
    paragraphs = [
        f"<p>{_fill(line, fields.values(), html.escape)}</p>"
        for line in body.splitlines()
        if line.strip()
    ]
    return "\n".join(paragraphs)


@dataclass(frozen=True)
class Unsubscribe:
    """Where a recipient unsubscribes: the one-click https URL and a mailto address."""

    url: str
    mailto: str

    def header(self) -> str:
        return f"<{self.url}>, <mailto:{self.mailto}?subject={quote('unsubscribe')}>"


_HTML_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body>
{content}
<p style="font-size:12px;color:#666">You receive this because you are in our contacts.
<a href="{unsubscribe}">Unsubscribe</a></p>
</body></html>
"""


def build_message(
    *,
    sender: str,
    to: str,
    subject: str,
    body: str,
    fields: RecipientFields,
    unsubscribe: Unsubscribe,
    now: datetime,
) -> EmailMessage:
    """The complete multipart/alternative message for one recipient."""
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = render_subject(subject, fields)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["List-Unsubscribe"] = unsubscribe.header()
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    text = render_text(body, fields).rstrip() + f"\n\nUnsubscribe: {unsubscribe.url}\n"
    message.set_content(text)
    message.add_alternative(
        _HTML_PAGE.format(
            title=html.escape(message["Subject"]),
            content=render_html(body, fields),
            unsubscribe=html.escape(unsubscribe.url, quote=True),
        ),
        subtype="html",
    )
    return message


def encode_tag_value(value: str) -> str:
    """An id as an SES tag value (letters, digits, `_`, `-`): `_` -> `_u`, `.` -> `_d`,
    reversible by decode_tag_value."""
    encoded = value.replace("_", "_u").replace(".", "_d")
    if not _TAG_SAFE.match(encoded):
        raise ValueError(f"{value!r} cannot be an SES message tag value")
    return encoded


def decode_tag_value(encoded: str) -> str:
    out: list[str] = []
    escaped = False
    for char in encoded:
        if escaped:
            if char not in "ud":
                raise ValueError(f"{encoded!r} is not an encoded tag value")
            out.append("_" if char == "u" else ".")
            escaped = False
        elif char == "_":
            escaped = True
        else:
            out.append(char)
    if escaped:
        raise ValueError(f"{encoded!r} is not an encoded tag value")
    return "".join(out)


#: The campaign tag of a message that belongs to no campaign (services/mail.py).
DIRECT_CAMPAIGN = "direct"


def recipient_tag(address: str) -> str:
    """Names the recipient without putting the address (not a legal tag value) in the tag:
    feedback finds the address among the event's destinations by it."""
    return hashlib.sha256(address.encode()).hexdigest()[:32]


def dedupe_tag(dedupe_key: str) -> str | None:
    """A direct email's dedupe key (which keys its row) as a tag value: URL-safe base64
    without padding, or None when that is longer than a tag value may be (256)."""
    encoded = base64.urlsafe_b64encode(dedupe_key.encode()).decode().rstrip("=")
    return encoded if _TAG_SAFE.match(encoded) else None


def dedupe_key_of(tag: str) -> str | None:
    """The dedupe key a `dedupe_tag` carries, or None when the tag is not one."""
    try:
        padded = tag + "=" * (-len(tag) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def message_tags(
    workspace_id: str, campaign_id: str, address: str, dedupe_key: str | None = None
) -> dict[str, str]:
    """The message's SES tags: workspace, campaign and recipient, and a direct email's
    dedupe key (so that its events find its row)."""
    tags = {
        "workspace": encode_tag_value(workspace_id),
        "campaign": encode_tag_value(campaign_id),
        "recipient": recipient_tag(address),
    }
    dedupe = dedupe_tag(dedupe_key) if dedupe_key is not None else None
    if dedupe is not None:
        tags["dedupe"] = dedupe
    return tags
