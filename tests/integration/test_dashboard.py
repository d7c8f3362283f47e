"""The run dashboard through Flask's test client: listing with filters and pages, a run's
page, cancel and replay, the Trigger form, dead letters and schedules, and the scoping by
a workspace token (no page shows another workspace's data)."""

from __future__ import annotations

import html
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import botocore.client
import pytest

from crmjobs import client, runtime
from crmjobs.models import Prospect, Workspace
from crmjobs.schemas import payload_schema
from crmjobs_local.dashboard import Access, create_app
from crmjobs_local.dashboard.runs import RunFilter, list_runs_page
from crmjobs_local.http_api import LocalJwtAuthorizer

EVENTS = Path(__file__).resolve().parents[2] / "events"
RUN_ID = re.compile(r"run_[0-9a-f]{32}")


@pytest.fixture
def dashboard(stack):
    app = create_app(events_dir=EVENTS, fire_schedule=stack.scheduler.fire_now)
    return app.test_client()


@pytest.fixture
def tokens(tmp_path) -> LocalJwtAuthorizer:
    return LocalJwtAuthorizer.in_data_dir(tmp_path)


@pytest.fixture
def scoped(stack, tokens):
    """A dashboard scoped by token, and a function signing a visitor in for a workspace."""
    app = create_app(access=Access(tokens=tokens), events_dir=EVENTS)
    visitor = app.test_client()

    def sign_in(workspace_id: str):
        response = visitor.post("/signin", data={"token": tokens.issue(workspace_id)})
        assert response.status_code == 302
        return visitor

    return visitor, sign_in


@pytest.fixture
def other(workspace) -> Workspace:
    ws = Workspace(id=f"{workspace.id}-b", name="Beta", subscription_tier="starter")
    ws.save()
    return ws


def _prospect(workspace_id: str, prospect_id: str = "p-1") -> None:
    Prospect(
        workspace_id=workspace_id, id=prospect_id, name="Ada", email="ada@acme.com", stage="new"
    ).save()


def _drain(stack, task: str = "score-lead") -> None:
    while stack.source_for_task(task).poll_once() is not None:
        pass


def _listed(html: str) -> list[str]:
    return re.findall(r'data-run="(run_[0-9a-f]{32})"', html)


def _score(workspace_id: str, prospect_id: str = "p-1", **options):
    return client.trigger(
        "score-lead", {"workspaceId": workspace_id, "prospectId": prospect_id}, **options
    )


# --- runs list -----------------------------------------------------------------------


def test_list_filters_by_task_status_tag_and_time(stack, dashboard, workspace):
    tagged = _score(workspace.id, tags=["import"])
    plain = _score(workspace.id, "p-2")
    bulk = client.trigger("bulk-score-leads", {"workspaceId": workspace.id})
    client.cancel(plain.id)

    def listed(**filters: str) -> list[str]:
        response = dashboard.get("/runs", query_string={"workspace": workspace.id, **filters})
        assert response.status_code == 200
        return _listed(response.text)

    assert listed() == [bulk.id, plain.id, tagged.id]
    assert listed(task="score-lead") == [plain.id, tagged.id]
    assert listed(status="CANCELED") == [plain.id]
    assert listed(task="score-lead", status="QUEUED") == [tagged.id]
    assert listed(tag="import") == [tagged.id]
    later = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    earlier = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    assert listed(since=later) == []
    assert listed(since=earlier, until=later) == [bulk.id, plain.id, tagged.id]


def test_list_pages_through_every_run_once(stack, workspace):
    created = [_score(workspace.id, f"p-{n}").id for n in range(7)]
    seen, cursor, pages = [], None, 0
    while True:
        page = list_runs_page(RunFilter(workspace.id), cursor=cursor, limit=3)
        seen.extend(run.id for run in page.runs)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == created[::-1] and pages == 3


def test_pages_follow_the_older_link_and_refresh_as_a_fragment(stack, dashboard, workspace):
    for n in range(27):
        _score(workspace.id, f"p-{n}")
    first = dashboard.get("/runs", query_string={"workspace": workspace.id})
    assert len(_listed(first.text)) == 25 and 'id="older"' in first.text
    older = re.search(r'href="([^"]+)"[^>]*id="older"', first.text).group(1)
    second = dashboard.get(older.replace("&amp;", "&"))
    assert len(_listed(second.text)) == 2 and 'id="older"' not in second.text
    assert not set(_listed(first.text)) & set(_listed(second.text))
    fragment = dashboard.get(
        "/runs", query_string={"workspace": workspace.id}, headers={"HX-Request": "true"}
    )
    assert fragment.text.lstrip().startswith('<section id="runs"')
    assert 'hx-trigger="every 2s"' in fragment.text and "<nav>" not in fragment.text


def test_a_refresh_of_the_list_is_one_query_of_the_runs_index(
    stack, dashboard, workspace, monkeypatch
):
    _score(workspace.id)
    operations = []
    original = botocore.client.BaseClient._make_api_call

    def noted(self, operation, parameters):
        operations.append((operation, parameters.get("IndexName")))
        return original(self, operation, parameters)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", noted)
    dashboard.get("/runs", query_string={"workspace": workspace.id}, headers={"HX-Request": "true"})
    monkeypatch.undo()
    assert operations == [("Query", "workspace-index")]


def test_a_cursor_cannot_lead_into_another_workspace(stack, workspace, other):
    for n in range(3):
        _score(other.id, f"p-{n}")
    theirs = list_runs_page(RunFilter(other.id), limit=1).next_cursor
    assert theirs is not None
    with pytest.raises(Exception, match="cursor belongs to another listing"):
        list_runs_page(RunFilter(workspace.id), cursor=theirs)


def test_bad_filters_are_a_400_with_the_reason(stack, dashboard, workspace):
    response = dashboard.get("/runs", query_string={"workspace": workspace.id, "since": "noon"})
    assert response.status_code == 400 and "not a time" in response.text
    response = dashboard.get("/runs", query_string={"workspace": workspace.id, "task": "nope"})
    assert response.status_code == 400 and "unknown task" in response.text


# --- a run's page, cancel, replay -----------------------------------------------------


def test_run_page_shows_payload_output_attempts_and_timestamps(stack, dashboard, workspace):
    _prospect(workspace.id)
    run = _score(workspace.id, tags=["vip"])
    page = dashboard.get(f"/runs/{run.id}")
    assert 'hx-trigger="every 2s"' in page.text  # live while it has not finished
    _drain(stack)
    page = dashboard.get(f"/runs/{run.id}")
    assert page.status_code == 200
    assert ">COMPLETED<" in page.text and "1 of 3" in page.text and "vip" in page.text
    shown = html.unescape(page.text)
    assert '"prospectId": "p-1"' in shown and '"score":' in shown
    done = client.retrieve(run.id)
    assert done.startedAt in page.text and done.finishedAt in page.text
    assert 'hx-trigger="every 2s"' not in page.text and 'id="cancel"' not in page.text


def test_cancel_a_delayed_run_from_its_page(stack, dashboard, workspace):
    run = _score(workspace.id, delay=600)
    page = dashboard.get(f"/runs/{run.id}")
    assert ">DELAYED<" in page.text and 'id="cancel"' in page.text
    response = dashboard.post(f"/runs/{run.id}/cancel")
    assert response.status_code == 303
    assert client.retrieve(run.id).status == "CANCELED"
    again = dashboard.post(f"/runs/{run.id}/cancel")
    assert again.status_code == 400 and "only QUEUED or DELAYED" in again.text


def test_an_executing_run_can_be_asked_to_stop_from_its_page(stack, dashboard, workspace):
    from crmjobs import ledger

    run = _score(workspace.id)
    ledger.start_attempt(ledger.get(run.id))  # a delivery is executing it
    page = dashboard.get(f"/runs/{run.id}")
    assert ">EXECUTING<" in page.text and 'id="cancel"' in page.text
    assert dashboard.post(f"/runs/{run.id}/cancel").status_code == 303
    assert client.retrieve(run.id).cancelRequested
    assert 'id="cancel"' not in dashboard.get(f"/runs/{run.id}").text  # asked once


def test_replay_a_failed_run_opens_the_new_run(stack, dashboard, workspace):
    failed = _score(workspace.id, "missing")
    _drain(stack)
    page = dashboard.get(f"/runs/{failed.id}")
    assert ">FAILED<" in page.text and "not found" in page.text
    response = dashboard.post(f"/runs/{failed.id}/replay")
    assert response.status_code == 303
    new_id = RUN_ID.search(response.headers["Location"]).group(0)
    replayed = client.retrieve(new_id)
    assert replayed.replayOf == failed.id and replayed.payload == failed.payload


def test_unknown_run_is_404(stack, dashboard):
    assert dashboard.get("/runs/run_missing").status_code == 404


# --- trigger ----------------------------------------------------------------------------


def test_trigger_form_starts_from_the_schema_and_sample_event(stack, dashboard):
    page = dashboard.get("/trigger", query_string={"task": "score-lead"})
    assert page.status_code == 200
    schema = re.search(r'id="payload-schema">(.*?)</script>', page.text, re.S).group(1)
    assert json.loads(schema) == payload_schema("score-lead")
    start = re.search(r'id="payload" rows="6">(.*?)</textarea>', page.text, re.S).group(1)
    # The sample event's payload (events/score_lead.json) is where the form starts.
    assert json.loads(html.unescape(start)) == {"workspaceId": "ws-demo", "prospectId": "p-0001"}


def test_trigger_from_the_form_with_key_delay_and_tags(stack, dashboard, workspace):
    form = {
        "task": "score-lead",
        "payload": f'{{"workspaceId": "{workspace.id}", "prospectId": "p-1"}}',
        "idempotency_key": "form-1",
        "delay": "120",
        "tags": "manual, vip",
    }
    response = dashboard.post("/trigger", data=form)
    assert response.status_code == 303
    run = client.retrieve(RUN_ID.search(response.headers["Location"]).group(0))
    assert (run.status, run.source, run.idempotencyKey) == ("DELAYED", "dashboard", "form-1")
    assert run.tags == ["manual", "vip"]
    again = dashboard.post("/trigger", data=form)
    assert RUN_ID.search(again.headers["Location"]).group(0) == run.id


@pytest.mark.parametrize(
    ("payload", "delay", "expected"),
    [
        ('{"workspaceId": "ws-1", "prospectId": "p 1"}', "", "invalid score-lead payload"),
        ('{"workspaceId": ', "", "payload is not JSON"),
        ('{"workspaceId": "ws-1", "prospectId": "p-1"}', "soon", "delay must be a number"),
    ],
    ids=["invalid-payload", "not-json", "bad-delay"],
)
def test_bad_trigger_is_a_400_and_records_nothing(stack, dashboard, payload, delay, expected):
    before = client.list_runs("ws-1")
    response = dashboard.post(
        "/trigger", data={"task": "score-lead", "payload": payload, "delay": delay}
    )
    assert response.status_code == 400 and expected in response.text
    assert client.list_runs("ws-1") == before


# --- dead letters and schedules ----------------------------------------------------------


def test_dead_letters_are_listed_and_redriven_as_replays(stack, dashboard, workspace, monkeypatch):
    _prospect(workspace.id)

    def unreachable(prospect, now):
        raise ConnectionError("database unreachable")

    monkeypatch.setattr("crmjobs.services.scoring.score_and_store", unreachable)
    monkeypatch.setattr(runtime, "backoff_seconds", lambda attempt: 0)
    run = _score(workspace.id)
    deadline = time.monotonic() + 30
    while client.retrieve(run.id).status != "FAILED" and time.monotonic() < deadline:
        _drain(stack)
    monkeypatch.undo()
    page = dashboard.get("/dead-letters")
    assert run.id in page.text and "database unreachable" in page.text
    response = dashboard.post("/dead-letters/score-lead/redrive")
    assert response.status_code == 303
    assert run.id not in dashboard.get("/dead-letters").text
    _drain(stack)
    [replayed] = [r for r in client.list_runs(workspace.id) if r.replayOf == run.id]
    assert replayed.status == "COMPLETED"


def test_schedules_show_their_next_firing_and_fire_now(stack, dashboard, workspace):
    page = dashboard.get("/schedules")
    assert page.status_code == 200
    row = re.search(
        r'<tr data-schedule="([^"]*ScheduledLeadScoringSchedule)">(.*?)</tr>', page.text, re.S
    )
    name, cells = row.groups()
    now = datetime.now(UTC)
    nightly = now.replace(hour=2, minute=0, second=0, microsecond=0)
    nightly += timedelta(days=1) if nightly <= now else timedelta(0)
    assert "cron(0 2 * * ? *)" in cells and nightly.strftime("%Y-%m-%d %H:%M:%S") in cells
    group = re.search(rf'action="/schedules/([^/]+)/{re.escape(name)}/fire"', cells).group(1)
    fired = dashboard.post(f"/schedules/{group}/{name}/fire", follow_redirects=True)
    assert fired.status_code == 200 and f"Fired {name}: message " in fired.text
    # Its message reached the nightly job's queue, which starts a run per active workspace.
    _drain(stack, "scheduled-lead-scoring")
    assert [r.task for r in client.list_runs(workspace.id)] == ["bulk-score-leads"]


# --- scoped by a workspace token -----------------------------------------------------------


def test_without_a_valid_token_every_page_asks_to_sign_in(stack, scoped, tokens):
    visitor, _ = scoped
    for path in ("/runs", "/runs/run_any", "/trigger", "/dead-letters"):
        response = visitor.get(path)
        assert response.status_code == 302 and "/signin" in response.headers["Location"]
    refused = visitor.post("/signin", data={"token": "not-a-token"})
    assert refused.status_code == 401 and "token refused" in refused.text
    foreign = LocalJwtAuthorizer(key="another-local-key-of-32-bytes-or-more").issue("ws-1")
    assert visitor.post("/signin", data={"token": foreign}).status_code == 401


def test_a_token_shows_its_workspace_only(stack, scoped, workspace, other):
    visitor, sign_in = scoped
    mine = _score(workspace.id)
    theirs = _score(other.id)
    sign_in(workspace.id)
    listing = visitor.get("/runs", query_string={"workspace": other.id})
    assert _listed(listing.text) == [mine.id]
    assert visitor.get(f"/runs/{mine.id}").status_code == 200
    for method, path in (
        ("get", f"/runs/{theirs.id}"),
        ("post", f"/runs/{theirs.id}/cancel"),
        ("post", f"/runs/{theirs.id}/replay"),
    ):
        response = getattr(visitor, method)(path)
        assert response.status_code == 404 and theirs.id in response.text, path
    assert client.retrieve(theirs.id).status == "QUEUED"
    assert [r.id for r in client.list_runs(other.id)] == [theirs.id]
    assert visitor.get("/schedules").status_code == 403


def test_a_token_triggers_for_its_workspace_only(stack, scoped, workspace, other):
    visitor, sign_in = scoped
    sign_in(workspace.id)
    form = visitor.get("/trigger").text
    start = re.search(r'id="payload" rows="6">(.*?)</textarea>', form, re.S).group(1)
    assert json.loads(html.unescape(start))["workspaceId"] == workspace.id
    payload = f'{{"workspaceId": "{other.id}", "prospectId": "p-1"}}'
    response = visitor.post("/trigger", data={"task": "score-lead", "payload": payload})
    assert response.status_code == 403 and "scoped to workspace" in response.text
    system = visitor.post("/trigger", data={"task": "scheduled-lead-scoring", "payload": "{}"})
    assert system.status_code == 403
    assert client.list_runs(other.id) == []


def test_a_token_sees_and_redrives_only_its_dead_letters(stack, scoped, workspace, other):
    from crmjobs import config, ledger
    from crmjobs.adapters.aws import client as aws_client

    visitor, sign_in = scoped
    letters = {}
    for ws in (workspace, other):
        run = _score(ws.id, "missing")
        _drain(stack)
        letters[ws.id] = run.id
        # What the runtime sends to a DLQ when a run's attempts are spent.
        aws_client("sqs").send_message(
            QueueUrl=config.dead_letter_queue_url("score-lead"),
            MessageBody=json.dumps({"runId": run.id, "payload": ledger.get(run.id).payload}),
            MessageAttributes={
                "runId": {"DataType": "String", "StringValue": run.id},
                "error": {"DataType": "String", "StringValue": "attempts spent"},
            },
        )
    sign_in(workspace.id)
    page = visitor.get("/dead-letters").text
    assert letters[workspace.id] in page and letters[other.id] not in page
    visitor.post("/dead-letters/score-lead/redrive")
    assert [r.replayOf for r in client.list_runs(other.id) if r.replayOf] == []
    assert [r.replayOf for r in client.list_runs(workspace.id) if r.replayOf] == [
        letters[workspace.id]
    ]
    # The other workspace's message is still there for its own people.
    assert (
        letters[other.id] in create_app(events_dir=EVENTS).test_client().get("/dead-letters").text
    )


# --- only here, only from here ------------------------------------------------------------


def test_other_host_names_and_cross_site_posts_are_refused(stack, dashboard, workspace):
    run = _score(workspace.id, delay=600)
    assert dashboard.get("/runs", headers={"Host": "evil.example"}).status_code == 421
    cross = dashboard.post(f"/runs/{run.id}/cancel", headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    assert client.retrieve(run.id).status == "DELAYED"
    same = dashboard.post(f"/runs/{run.id}/cancel", headers={"Origin": "http://localhost"})
    assert same.status_code == 303


def test_every_page_renders_for_a_new_workspace(stack, dashboard):
    fresh = f"ws-{uuid.uuid4().hex[:8]}"
    for path in ("/runs?workspace=" + fresh, "/trigger?task=execute-agent", "/dead-letters"):
        assert dashboard.get(path).status_code == 200, path
