"""The dashboard's campaign progress and agent transcript pages, over records written with
the families' models: what they show, their live refresh, and their workspace scoping."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crmjobs import ledger
from crmjobs.domain.campaigns import empty_counters
from crmjobs.models import (
    Agent,
    AgentExecution,
    AudienceEntry,
    Campaign,
    Delivery,
    ExecutionRound,
    ToolCallRecord,
)
from crmjobs.stores import executions
from crmjobs_local.dashboard import Access, create_app
from crmjobs_local.http_api import LocalJwtAuthorizer

EVENTS = Path(__file__).resolve().parents[2] / "events"


@pytest.fixture
def dashboard(stack):
    return create_app(events_dir=EVENTS).test_client()


@pytest.fixture
def sending_campaign(workspace) -> Campaign:
    """A campaign half sent by a run that started a minute ago."""
    run = ledger.create(
        ledger.new_run(
            run_id=ledger.new_run_id(),
            task="send-campaign",
            workspace_id=workspace.id,
            payload={"workspaceId": workspace.id, "campaignId": "cmp-1"},
        )
    )
    ledger.start_attempt(run)
    run.update(
        actions=[type(run).started_at.set(ledger.iso(datetime.now(UTC) - timedelta(seconds=60)))]
    )
    counters = empty_counters()
    counters.update(recipients=4, pending=1, sent=3, delivered=2)
    counters["excluded"]["suppressed"] = 1
    campaign = Campaign(
        workspace_id=workspace.id,
        id="cmp-1",
        name="Spring launch",
        status="active",
        counters=counters,
        sending_run=run.id,
    )
    campaign.save()
    for n, status in enumerate(["sent", "sent", "sent", "pending"]):
        AudienceEntry(
            audience_key=AudienceEntry.key_for(workspace.id, "cmp-1"),
            email=f"person{n}@acme.com",
            recipient=f"prospect:p-{n}",
            name=f"Person {n}",
        ).save()
        if status == "sent":  # the pending one's send was never claimed: it has no row
            Delivery(
                campaign_key=Delivery.key_for(workspace.id, "cmp-1"),
                email=f"person{n}@acme.com",
                workspace_id=workspace.id,
                campaign_id="cmp-1",
                name=f"Person {n}",
                status=status,
                sent_at=datetime.now(UTC),
            ).save()
    return campaign


@pytest.fixture
def finished_execution(workspace) -> AgentExecution:
    """An agent execution of two rounds: a search tool call, then the answer."""
    now = datetime.now(UTC)
    Agent(workspace_id=workspace.id, id="agent-1", name="Pricing helper", status="active").save()
    execution = AgentExecution(
        workspace_id=workspace.id,
        id="exe-1",
        agent_id="agent-1",
        agent_key=AgentExecution.key_of_agent(workspace.id, "agent-1"),
        status="completed",
        input={"question": "what does it cost?"},
        output={"response": "It costs 49 per seat."},
        tokens_used={"input": 310, "output": 42, "total": 352},
        rounds=2,
        started_at=executions.iso(now),
        started_hour=executions.hour_of(now),
        completed_at=now,
    )
    execution.save()
    key = executions.execution_key(execution)
    ExecutionRound(
        execution_key=key,
        step=ExecutionRound.step_of(1),
        number=1,
        assistant=[
            {"text": "Let me look that up."},
            {
                "toolUse": {
                    "toolUseId": "tu-1",
                    "name": "search_knowledge",
                    "input": {"query": "pricing"},
                }
            },
        ],
        stop_reason="tool_use",
        input_tokens=200,
        output_tokens=30,
        tool_round=True,
    ).save()
    ToolCallRecord(
        execution_key=key,
        step=ToolCallRecord.step_of("tu-1"),
        tool_use_id="tu-1",
        round_number=1,
        name="search_knowledge",
        input={"query": "pricing"},
        status="success",
        result={"hits": [{"title": "Pricing", "chunk": "49 per seat"}]},
        duration_ms=12,
        completed_at=now,
    ).save()
    ExecutionRound(
        execution_key=key,
        step=ExecutionRound.step_of(2),
        number=2,
        assistant=[{"text": "It costs 49 per seat."}],
        stop_reason="end_turn",
        input_tokens=110,
        output_tokens=12,
    ).save()
    return execution


def test_campaign_progress_shows_counters_rate_and_recipients(
    stack, dashboard, workspace, sending_campaign
):
    page = dashboard.get(f"/campaigns/{workspace.id}/cmp-1")
    assert page.status_code == 200
    counts = dict(re.findall(r'data-count="(\w+)">(\d+)<', page.text))
    assert counts == {"pending": "1", "sent": "3", "failed": "0", "unconfirmed": "0"}
    rate = float(re.search(r'id="send-rate">([\d.]+)/s', page.text).group(1))
    assert 0.04 <= rate <= 0.06  # 3 sent over the run's 60 s
    assert "excluded: suppressed</th><td>1" in page.text
    assert page.text.count("@acme.com") == 4
    assert 'hx-trigger="every 2s"' in page.text  # live while it is sending
    listed = dashboard.get("/campaigns", query_string={"workspace": workspace.id})
    assert 'data-campaign="cmp-1"' in listed.text and "Spring launch" in listed.text


def test_a_send_campaign_run_links_to_its_campaign(stack, dashboard, sending_campaign):
    page = dashboard.get(f"/runs/{sending_campaign.sending_run}")
    link = re.search(r'href="([^"]+)" id="campaign-link"', page.text).group(1)
    assert dashboard.get(link).status_code == 200


def test_agent_transcript_shows_rounds_tool_calls_and_tokens(
    stack, dashboard, workspace, finished_execution
):
    page = dashboard.get(f"/agents/executions/{workspace.id}/exe-1")
    assert page.status_code == 200
    shown = html.unescape(page.text)
    assert re.findall(r'data-round="(\d+)"', page.text) == ["1", "2"]
    assert "Let me look that up." in shown and "It costs 49 per seat." in shown
    assert 'data-tool="search_knowledge"' in page.text and "success" in shown
    assert '"chunk": "49 per seat"' in shown  # the recorded result
    assert "tokens: 310 in, 42 out, 352 total" in shown
    assert "200 in / 30 out tokens" in shown
    assert 'hx-trigger="every 2s"' not in page.text  # finished: no refresh
    listed = dashboard.get("/agents", query_string={"workspace": workspace.id})
    assert 'data-agent="agent-1"' in listed.text and "Pricing helper" in listed.text
    assert f'href="/agents/executions/{workspace.id}/exe-1"' in listed.text
    chooser = dashboard.get("/agents")
    assert chooser.status_code == 200 and 'name="workspace"' in chooser.text


def test_pages_of_another_workspace_are_not_found(
    stack, dashboard, workspace, sending_campaign, finished_execution
):
    other = f"{workspace.id}-b"
    assert dashboard.get(f"/campaigns/{other}/cmp-1").status_code == 404
    assert dashboard.get(f"/agents/executions/{other}/exe-1").status_code == 404


def test_a_token_reaches_its_own_workspaces_records_only(
    stack, workspace, sending_campaign, finished_execution, tmp_path
):
    tokens = LocalJwtAuthorizer.in_data_dir(tmp_path)
    visitor = create_app(access=Access(tokens=tokens), events_dir=EVENTS).test_client()
    visitor.post("/signin", data={"token": tokens.issue(f"{workspace.id}-b")})
    assert visitor.get(f"/campaigns/{workspace.id}/cmp-1").status_code == 403
    assert visitor.get(f"/agents/executions/{workspace.id}/exe-1").status_code == 403
    listed = visitor.get("/campaigns", query_string={"workspace": workspace.id})
    assert "cmp-1" not in listed.text  # the list is of the token's workspace
    owner = create_app(access=Access(tokens=tokens), events_dir=EVENTS).test_client()
    owner.post("/signin", data={"token": tokens.issue(workspace.id)})
    assert owner.get(f"/campaigns/{workspace.id}/cmp-1").status_code == 200
