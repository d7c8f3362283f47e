"""AWS clients, created on first use (never at import time) from one botocore session.

botocore, not boto3: importing boto3 imports s3transfer too, 50-100 ms of every cold start
for a library no function uses (bench/cold_start.py).
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

import botocore.session
from botocore.config import Config

from crmjobs import config

_lock = threading.Lock()
#: Regional endpoints (not account-based ones), which the in-process emulation also serves.
DEFAULT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5}, account_id_endpoint_mode="disabled"
)


@cache
def _session() -> botocore.session.Session:
    """One session, so clients share its loaded service models."""
    return botocore.session.get_session()


def endpoint_url(service: str) -> str | None:
    """The configured endpoint of `service` (moto's when local), else AWS's."""
    suffix = service.upper().replace("-", "_")
    return config.env(f"AWS_ENDPOINT_URL_{suffix}") or config.env("AWS_ENDPOINT_URL")


def _new_client(service: str, region: str, endpoint: str | None, settings: Config) -> Any:
    # botocore sessions are not thread-safe (their clients are): creation holds a lock.
    with _lock:
        return _session().create_client(
            service, region_name=region, endpoint_url=endpoint, config=settings
        )


def create_client(service: str, settings: Config = DEFAULT_CONFIG) -> Any:
    """A new client for `service` in the configured region and endpoint, for a caller that
    needs its own settings (timeouts, retries)."""
    return _new_client(service, config.region(), endpoint_url(service), settings)


@cache
def _shared_client(service: str, region: str, endpoint: str | None, settings: Config) -> Any:
    return _new_client(service, region, endpoint, settings)


def client(service: str, settings: Config = DEFAULT_CONFIG) -> Any:
    """The process's shared client for `service` with `settings` (one per region and
    endpoint; `settings` a module-level Config, so it is one object)."""
    return _shared_client(service, config.region(), endpoint_url(service), settings)


def credentials() -> Any:
    """The default credential chain's (refreshable) credentials, or None when there are none."""
    return _session().get_credentials()


def forget_clients() -> None:
    """Drop the shared clients (the local runtime and tests point them at a new endpoint)."""
    _shared_client.cache_clear()
