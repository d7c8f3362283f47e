"""The run dashboard in a real browser: headless Debian chromium driven by Playwright,
against the dashboard served on 127.0.0.1 over the local runtime (in-process moto).

Runs are executed by polling their queue in the test's thread, so each step is
deterministic; the pages refresh themselves (htmx, every half second here) and the tests
wait for what they show.
"""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from crmjobs import client, runtime
from crmjobs.models import Prospect, Workspace
from crmjobs_local.dashboard import create_app
from crmjobs_local.http_api import BackgroundServer

EVENTS = Path(__file__).resolve().parents[2] / "events"
CHROMIUM = "/usr/bin/chromium"
#: Debian's chromium, without the sandbox (root in CI) and without its background services.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 5000


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (make browser)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def dashboard_url(local_stack):
    app = create_app(
        events_dir=EVENTS, fire_schedule=local_stack.scheduler.fire_now, refresh="every 0.5s"
    )
    with BackgroundServer(app) as server:
        yield server.url


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(WAIT_MS)
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    yield opened
    context.close()
    assert problems == [], f"JavaScript errors: {problems}"


@pytest.fixture
def crm(stack):
    """A fresh workspace with two prospects."""
    workspace = Workspace(id=f"ws-{uuid.uuid4().hex[:8]}", name="Acme", subscription_tier="pro")
    workspace.save()
    for prospect_id, name in (("p-1", "Ada Lovelace"), ("p-2", "Grace Hopper")):
        Prospect(
            workspace_id=workspace.id, id=prospect_id, name=name, email="x@acme.com", stage="new"
        ).save()
    return workspace.id


def _drain(stack, task: str = "score-lead") -> None:
    while stack.source_for_task(task).poll_once() is not None:
        pass


def _row(page, run_id: str):
    return page.locator(f'tr[data-run="{run_id}"]')


def test_list_filters_and_updates_while_runs_move(stack, page, dashboard_url, crm):
    done = client.trigger("score-lead", {"workspaceId": crm, "prospectId": "p-1"}, tags=["import"])
    failed = client.trigger("score-lead", {"workspaceId": crm, "prospectId": "missing"})
    _drain(stack)
    client.trigger("bulk-score-leads", {"workspaceId": crm}, delay=900, tags=["nightly"])
    page.goto(f"{dashboard_url}/runs?workspace={crm}")
    expect(page.locator("tr[data-run]")).to_have_count(3)
    expect(_row(page, failed.id)).to_contain_text("FAILED")

    page.select_option('select[name="status"]', "FAILED")
    page.click("#apply")
    expect(page).to_have_url(re.compile(r"status=FAILED"))
    expect(page.locator("tr[data-run]")).to_have_count(1)
    expect(_row(page, failed.id)).to_be_visible()

    page.select_option('select[name="status"]', "")
    page.fill('input[name="tag"]', "import")
    page.click("#apply")
    expect(page.locator("tr[data-run]")).to_have_count(1)
    expect(_row(page, done.id)).to_contain_text("COMPLETED")

    # A new run appears, then moves on, with no reload of the page.
    page.fill('input[name="tag"]', "")
    page.click("#apply")
    moving = client.trigger("score-lead", {"workspaceId": crm, "prospectId": "p-2"})
    expect(_row(page, moving.id)).to_contain_text("QUEUED")
    _drain(stack)
    expect(_row(page, moving.id)).to_contain_text("COMPLETED")


def test_trigger_a_task_from_the_form_and_watch_it_finish(stack, page, dashboard_url, crm):
    page.goto(f"{dashboard_url}/trigger?task=score-lead")
    workspace_field = page.locator('[name="root[workspaceId]"]')
    expect(workspace_field).to_have_value("ws-demo")  # the sample event's payload
    workspace_field.fill(crm)
    page.locator('[name="root[prospectId]"]').fill("p-2")
    page.fill("#tags", "browser, manual")
    page.click("#run")
    expect(page).to_have_url(re.compile(r"/runs/run_[0-9a-f]{32}$"))
    run_id = page.url.rsplit("/", 1)[1]
    run = client.retrieve(run_id)
    assert run.payload == {"workspaceId": crm, "prospectId": "p-2"}
    assert (run.tags, run.source) == (["browser", "manual"], "dashboard")
    _drain(stack)
    expect(page.locator("#status")).to_have_text("COMPLETED")
    expect(page.locator("#output")).to_contain_text('"score"')


def test_a_bad_payload_from_the_form_is_refused_with_the_reason(stack, page, dashboard_url, crm):
    page.goto(f"{dashboard_url}/trigger?task=score-lead")
    page.locator('[name="root[workspaceId]"]').fill(crm)
    page.locator('[name="root[prospectId]"]').fill("not an id")
    page.click("#run")
    expect(page.locator("#problem")).to_contain_text("invalid score-lead payload: prospectId")
    assert client.list_runs(crm) == []


def test_open_a_run_and_cancel_it_while_delayed(stack, page, dashboard_url, crm):
    run = client.trigger("score-lead", {"workspaceId": crm, "prospectId": "p-1"}, delay=600)
    page.goto(f"{dashboard_url}/runs?workspace={crm}")
    _row(page, run.id).locator("a").click()
    expect(page.locator("#status")).to_have_text("DELAYED")
    expect(page.locator("#payload")).to_contain_text('"prospectId": "p-1"')
    page.click("#cancel")
    expect(page.locator("#status")).to_have_text("CANCELED")
    expect(page.locator("#cancel")).to_have_count(0)
    assert client.retrieve(run.id).status == "CANCELED"


def test_replay_a_failed_run(stack, page, dashboard_url, crm):
    failed = client.trigger("score-lead", {"workspaceId": crm, "prospectId": "p-gone"})
    _drain(stack)
    page.goto(f"{dashboard_url}/runs/{failed.id}")
    expect(page.locator("#status")).to_have_text("FAILED")
    expect(page.locator("#error")).to_contain_text("not found")
    page.click("#replay")
    expect(page).not_to_have_url(re.compile(failed.id + "$"))
    expect(page.get_by_role("link", name=failed.id)).to_be_visible()  # "Replay of"
    replay_id = page.url.rsplit("/", 1)[1]
    assert client.retrieve(replay_id).replayOf == failed.id


def test_redrive_a_dead_letter(stack, page, dashboard_url, crm, monkeypatch):
    def unreachable(prospect, now):
        raise ConnectionError("database unreachable")

    monkeypatch.setattr("crmjobs.services.scoring.score_and_store", unreachable)
    monkeypatch.setattr(runtime, "backoff_seconds", lambda attempt: 0)
    run = client.trigger("score-lead", {"workspaceId": crm, "prospectId": "p-1"})
    for _ in range(20):
        _drain(stack)
        if client.retrieve(run.id).status == "FAILED":
            break
    monkeypatch.undo()
    page.goto(f"{dashboard_url}/dead-letters")
    expect(page.get_by_text(run.id)).to_be_visible()
    expect(page.locator("td.error", has_text="database unreachable").first).to_be_visible()
    page.click("#redrive-score-lead")
    expect(page.locator("#notice")).to_contain_text("Redrove")
    expect(page.get_by_text(run.id)).to_have_count(0)
    _drain(stack)
    [replayed] = [r for r in client.list_runs(crm) if r.replayOf == run.id]
    assert replayed.status == "COMPLETED"
