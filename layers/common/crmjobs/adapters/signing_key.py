"""The key that signs unsubscribe links: a Secrets Manager secret the template generates
(UnsubscribeSigningSecret), so no key is in code or configuration. Read once per container
for KEY_TTL_S (a rotation takes effect within that time)."""

from __future__ import annotations

import threading
import time

from crmjobs import config
from crmjobs.adapters.aws import client

KEY_TTL_S = 300.0

_lock = threading.Lock()
#: secret id -> (monotonic time read, key)
_keys: dict[str, tuple[float, bytes]] = {}


def unsubscribe_key() -> bytes:
    secret_id = config.require("UNSUBSCRIBE_SECRET_ARN")
    now = time.monotonic()
    with _lock:
        cached = _keys.get(secret_id)
        if cached is not None and now - cached[0] < KEY_TTL_S:
            return cached[1]
    secret = client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    if len(secret) < 32:
        raise config.ConfigurationError("the unsubscribe signing secret is shorter than 32")
    key = secret.encode()
    with _lock:
        _keys[secret_id] = (now, key)
    return key
