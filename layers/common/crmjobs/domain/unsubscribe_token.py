"""The signed token of an unsubscribe link: it names workspace, campaign and recipient, and
an HMAC-SHA256 over them with a key only the stack knows (the caller passes the key, read
from Parameter Store by an adapter), so a forged or altered token is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

VERSION = "v1"


class InvalidToken(ValueError):
    pass


@dataclass(frozen=True)
class UnsubscribeClaim:
    workspace_id: str
    campaign_id: str
    recipient_type: str
    recipient_id: str
    address: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, body: str) -> bytes:
    return hmac.new(key, f"{VERSION}.{body}".encode(), hashlib.sha256).digest()


def sign(claim: UnsubscribeClaim, key: bytes) -> str:
    body = _b64(
        json.dumps(
            [
                claim.workspace_id,
                claim.campaign_id,
                claim.recipient_type,
                claim.recipient_id,
                claim.address,
            ],
            separators=(",", ":"),
        ).encode()
    )
    return f"{VERSION}.{body}.{_b64(_mac(key, body))}"


def verify(token: str, key: bytes) -> UnsubscribeClaim:
    """The claim of a token signed with `key`; InvalidToken for anything else."""
    try:
        version, body, signature = token.split(".")
        if version != VERSION or not hmac.compare_digest(_unb64(signature), _mac(key, body)):
            raise InvalidToken("the unsubscribe link is not valid")
        fields = json.loads(_unb64(body))
    except (ValueError, TypeError) as exc:  # wrong shape, bad base64, bad JSON
        raise InvalidToken("the unsubscribe link is not valid") from exc
    well_formed = isinstance(fields, list) and len(fields) == 5
    if not (well_formed and all(isinstance(field, str) for field in fields)):
        raise InvalidToken("the unsubscribe link is not valid")
    return UnsubscribeClaim(*fields)
