"""Campaigns on a runtime started as `crmjobs dev` starts it (moto server, the template's
parameters with the local defaults, the HTTP API on the runtime's api_port): the template
alone provides the signing secret, the send rate and the unsubscribe link's URL."""

from __future__ import annotations

import email
import email.policy
import re
import time
import uuid
from pathlib import Path

import pytest
import requests

from crmjobs import client
from crmjobs.models import Campaign, Contact, Workspace
from crmjobs.models.campaigns import CampaignContent

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dev_runtime(tmp_path_factory):
    from crmjobs_local.http_api import BackgroundServer, LocalHttpApi
    from crmjobs_local.stack import LOCAL_PARAMETERS, LocalRuntime

    runtime = LocalRuntime(ROOT / "template.yaml", data_dir=tmp_path_factory.mktemp("dev"),
                           api_port=0)
    with runtime:
        assert runtime.parameters["MaxSendRate"] == LOCAL_PARAMETERS["MaxSendRate"]
        api = BackgroundServer(LocalHttpApi.for_stack(runtime), runtime.api_port).start()
        try:
            with runtime.serving():
                yield runtime
        finally:
            api.stop()


def test_a_sent_campaigns_unsubscribe_link_is_served_by_the_local_http_api(dev_runtime):
    ws = f"ws-{uuid.uuid4().hex[:8]}"
    Workspace(id=ws, name="Acme", subscription_tier="starter").save()
    for n in range(3):
        Contact(workspace_id=ws, id=f"c-{n}", first_name=f"Ada{n}",
                email=f"ada{n}@{ws}.example.com").save()
    Campaign(workspace_id=ws, id="camp-1", name="Hello", audience="all_contacts",
             content=CampaignContent(subject="Hi {{firstName}}", body="Hello there")).save()

    run = client.trigger("send-campaign", {"workspaceId": ws, "campaignId": "camp-1"})
    finished = client.wait(run.id, timeout=120)
    assert (finished.status, finished.output["status"]) == ("COMPLETED", "completed")

    leaving = _outbox_message(dev_runtime.outbox.folder, f"ada1@{ws}.example.com")
    link = re.search(r"<(http[^>]+)>", leaving["List-Unsubscribe"]).group(1)
    assert link.startswith(f"{dev_runtime.api_url}/unsubscribe")

    page = requests.get(link, timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert Contact.get(ws, "c-1").email_opt_out is not True  # a GET only asks
    one_click = requests.post(link, data="List-Unsubscribe=One-Click", timeout=30,
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert one_click.status_code == 200, one_click.text
    assert Contact.get(ws, "c-1").email_opt_out is True
    assert Contact.get(ws, "c-0").email_opt_out is not True
    assert Campaign.get(ws, "camp-1").counters.as_dict()["unsubscribed"] == 1


def _outbox_message(folder: Path, address: str, timeout_s: float = 10):
    """The .eml the serving runtime wrote for `address` (it writes the outbox each second)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for path in sorted(folder.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if message["To"] == address:
                return message
        time.sleep(0.2)
    raise AssertionError(f"no message to {address} in {folder}")
