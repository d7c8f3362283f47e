"""A moto server on 127.0.0.1 for the tests of the local runtime's parts that speak to an
endpoint (event sources, schedules, outbox)."""

from __future__ import annotations

import urllib.request

import boto3
import pytest
from moto.server import ThreadedMotoServer

from crmjobs_local.stack import free_port

REGION = "us-east-1"


@pytest.fixture(scope="module")
def endpoint():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def moto_clients(endpoint):
    """A factory of clients on the server, after a reset so no test sees another's state."""
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))

    def make(*services: str):
        return tuple(
            boto3.client(
                service,
                endpoint_url=endpoint,
                region_name=REGION,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            for service in services
        )

    return make
