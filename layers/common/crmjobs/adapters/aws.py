"""boto3 clients, created on first use and shared per process (never at import time)."""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from crmjobs import config

_lock = threading.Lock()
#: Regional endpoints (not account-based ones), which the in-process emulation also serves.
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5}, account_id_endpoint_mode="disabled"
)


@cache
def _session() -> boto3.session.Session:
    """One session, so clients share its loaded service models."""
    return boto3.session.Session()


@cache
def _client(service: str, region: str, endpoint_url: str | None) -> Any:
    return _session().client(service, region_name=region, endpoint_url=endpoint_url, config=_CONFIG)


def client(service: str) -> Any:
    """The client for `service` in the configured region and endpoint (moto when local)."""
    suffix = service.upper().replace("-", "_")
    endpoint = config.env(f"AWS_ENDPOINT_URL_{suffix}") or config.env("AWS_ENDPOINT_URL")
    with _lock:
        return _client(service, config.region(), endpoint)
