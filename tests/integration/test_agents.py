"""The agent family on the real path (queue message, task runtime, service, tables), with
the scripted chat model: the execution record, the tool loop's limits, every stop reason,
durability across a crash, cancel, workspace isolation of the tools, process-active-agents
and the health check."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crmjobs import client, ledger, runtime
from crmjobs.adapters.chat_models import ScriptedChatModel
from crmjobs.domain.agents import FINAL_ANSWER_REQUEST, MAX_TOOL_ROUNDS
from crmjobs.models import (
    Agent,
    AgentExecution,
    AgentHealthRecord,
    ExecutionRound,
    Meeting,
    Prospect,
    Workspace,
)
from crmjobs.runtime import RunContext
from crmjobs.schemas import ProcessActiveAgentsPayload
from crmjobs.services import agent_scheduling, agent_tools
from crmjobs.services import agents as agent_service
from crmjobs.stores import executions as execution_store
from crmjobs.stores.executions import hour_of, iso

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def script_file(tmp_path_factory):
    return tmp_path_factory.mktemp("scripts") / "script.json"


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory, script_file):
    """The stack with the scripted chat model, playing back `script_file`."""
    from crmjobs_local.stack import LocalRuntime

    parameters = {"AgentModelBackend": "scripted", "AgentScriptFile": str(script_file)}
    data_dir = tmp_path_factory.mktemp("data")
    with LocalRuntime(
        ROOT / "template.yaml", data_dir=data_dir, in_process=True, parameters=parameters
    ) as local:
        # One run per poll, at once: the template's 1 s batching window would only wait.
        local.source_for_task("execute-agent").batching_window_s = 0
        yield local


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr(runtime, "backoff_seconds", lambda attempt: 0)


def _script(path, *turns):
    path.write_text(json.dumps({"turns": list(turns)}))


def _use(tool_use_id, name, /, **tool_input):
    return {"toolUse": {"toolUseId": tool_use_id, "name": name, "input": tool_input}}


def _tools_turn(*uses, tokens=(50, 10)):
    return {
        "content": list(uses),
        "stopReason": "tool_use",
        "usage": {"inputTokens": tokens[0], "outputTokens": tokens[1]},
    }


def _answer(text, stop_reason="end_turn", tokens=(60, 12)):
    return {
        "content": [{"text": text}],
        "stopReason": stop_reason,
        "usage": {"inputTokens": tokens[0], "outputTokens": tokens[1]},
    }


def _agent(workspace_id, *, status="active", agent_id=None, **config) -> Agent:
    agent = Agent(
        workspace_id,
        agent_id or f"agent-{uuid.uuid4().hex[:6]}",
        name="Ava",
        description="Qualifies inbound leads.",
        type="sales",
        status=status,
        config={"capabilities": ["crm", "calendar", "knowledge"], **config},
        created_by="user-42",
    )
    agent.save()
    return agent


def _execute(stack, agent, polls=1, **payload):
    run = client.trigger(
        "execute-agent",
        {"workspaceId": agent.workspace_id, "agentId": agent.id, **payload},
    )
    source = stack.source_for_task("execute-agent")
    for _ in range(polls):
        source.poll_once()
    return client.retrieve(run.id)


def _execution(run) -> AgentExecution:
    return AgentExecution.get(run.workspaceId, agent_service.execution_id_for(run.id))


def _rounds(execution) -> list[ExecutionRound]:
    return execution_store.rounds_of(execution)


def test_an_execution_completes_with_its_record_transcript_and_stats(stack, workspace, script_file):
    agent = _agent(workspace.id)
    _script(
        script_file,
        _tools_turn(
            {"text": "Adding the lead."},
            _use("tu-lead", "create_lead", name="Grace Hopper", email="grace@navy.mil"),
        ),
        _tools_turn(
            _use(
                "tu-meet",
                "schedule_meeting",
                title="Intro call",
                startsAt=(datetime.now(UTC) + timedelta(days=2)).isoformat(),
                prospectId="{{tu-lead.prospectId}}",
                attendees=["grace@navy.mil"],
            ),
            _use("tu-pipe", "get_pipeline_summary"),
        ),
        _answer("Grace is in the CRM and the intro call is booked."),
    )
    run = _execute(stack, agent, inputs={"task": "Add Grace Hopper and book a call"})
    assert run.status == "COMPLETED", run.error
    execution = _execution(run)
    assert execution.status == "completed" and execution.completed_at is not None
    assert execution.triggered_by == "user-42"  # the agent's creator by default
    assert execution.input == {"task": "Add Grace Hopper and book a call"}
    assert execution.tokens_used == {"input": 160, "output": 32, "total": 192}
    output = execution.output
    assert output["response"] == "Grace is in the CRM and the intro call is booked."
    assert output["toolsUsed"] == ["create_lead", "schedule_meeting", "get_pipeline_summary"]
    assert output["model"] == "scripted:script" and output["scripted"] is True
    assert output["rounds"] == 3 and output["durationMs"] >= 0
    assert execution.duration_ms == output["durationMs"]
    [lead, meeting, pipeline] = output["toolResults"]
    assert lead["status"] == "success" and lead["result"]["name"] == "Grace Hopper"
    prospect_id = lead["result"]["prospectId"]
    assert meeting["result"]["prospectId"] == prospect_id
    assert pipeline["result"]["stages"]["new"]["count"] == 1
    assert run.output["executionId"] == execution.id and run.output["rounds"] == 3

    stored = Meeting.get(workspace.id, meeting["result"]["meetingId"])
    assert stored.created_by == f"agent:{agent.id}" and stored.attendees == ["grace@navy.mil"]
    scoring = client.retrieve(lead["result"]["scoringRunId"])
    assert scoring.task == "score-lead" and scoring.payload["prospectId"] == prospect_id

    rounds = _rounds(execution)
    assert [int(saved.number) for saved in rounds] == [1, 2, 3]
    assert rounds[0].reply[0]["toolResult"]["toolUseId"] == "tu-lead"
    assert rounds[2].reply is None and rounds[2].stop_reason == "end_turn"
    calls = execution_store.tool_calls_of(execution)
    assert {key: record.status for key, record in calls.items()} == {
        "tu-lead": "success",
        "tu-meet": "success",
        "tu-pipe": "success",
    }
    refreshed = Agent.get(workspace.id, agent.id)
    assert refreshed.execution_count == 1 and refreshed.last_executed_at is not None


@pytest.mark.parametrize(
    ("crash_in", "tool_runs"),
    [
        # The lead is written, then the attempt dies before the call is recorded: the
        # retry runs the call again, which finds the lead it created (same id) and the
        # scoring run it triggered (same idempotency key).
        ("record_tool_call", 2),
        # The call is recorded as done, then the attempt dies before the round's reply
        # is saved: the retry reuses the recorded result without running the tool.
        ("save_reply", 1),
    ],
)
def test_crash_after_a_side_effect_then_retry_does_it_exactly_once(
    stack, workspace, script_file, monkeypatch, fast_retries, crash_in, tool_runs
):
    agent = _agent(workspace.id, tools=["create_lead"])
    _script(
        script_file,
        _tools_turn(_use("tu-1", "create_lead", name="Ada Lovelace", email="ada@acme.com")),
        _answer("Ada is in."),
    )
    crashes = [ConnectionError("the attempt died here")]
    original = getattr(execution_store, crash_in)

    def crash_once(*args, **kwargs):
        if crashes:
            raise crashes.pop()
        return original(*args, **kwargs)

    monkeypatch.setattr(execution_store, crash_in, crash_once)
    tool_calls = []
    create_lead = agent_tools.IMPLEMENTATIONS["create_lead"]
    monkeypatch.setitem(
        agent_tools.IMPLEMENTATIONS,
        "create_lead",
        lambda arguments, context: tool_calls.append(1) or create_lead(arguments, context),
    )
    model_calls = []
    converse = ScriptedChatModel.converse
    monkeypatch.setattr(
        ScriptedChatModel,
        "converse",
        lambda self, **request: model_calls.append(1) or converse(self, **request),
    )

    first = _execute(stack, agent)
    assert first.status == "QUEUED" and "the attempt died here" in first.error["message"]
    assert _execution(first).status == "running"
    run = _poll(stack, first)

    assert run.status == "COMPLETED" and run.attempts == 2, run.error
    assert len(tool_calls) == tool_runs
    assert len(model_calls) == 2  # the saved first turn was not asked for again
    [prospect] = Prospect.query(workspace.id)
    assert prospect.name == "Ada Lovelace"
    scoring = client.list_runs(workspace.id, task="score-lead")
    assert [r.payload["prospectId"] for r in scoring] == [prospect.id]
    execution = _execution(run)
    assert execution.status == "completed"
    assert execution.output["toolResults"][0]["result"]["prospectId"] == prospect.id
    assert Agent.get(workspace.id, agent.id).execution_count == 1


def _poll(stack, run):
    stack.source_for_task("execute-agent").poll_once()
    return client.retrieve(run.id)


def test_at_most_five_tool_rounds_then_an_answer_without_tools(stack, workspace, script_file):
    agent = _agent(workspace.id)
    searches = [_tools_turn(_use(f"tu-{n}", "search_leads", query=f"q{n}")) for n in range(1, 7)]
    _script(script_file, *searches)  # the sixth turn still asks for a tool
    run = _execute(stack, agent)
    assert run.status == "COMPLETED", run.error
    execution = _execution(run)
    assert execution.output["stopped"] == {
        "code": "tool_round_limit",
        "message": f"stopped after {MAX_TOOL_ROUNDS} tool rounds",
    }
    assert execution.output["response"] == f"stopped after {MAX_TOOL_ROUNDS} tool rounds"
    assert execution.output["rounds"] == MAX_TOOL_ROUNDS + 1
    assert set(execution_store.tool_calls_of(execution)) == {f"tu-{n}" for n in range(1, 6)}
    rounds = _rounds(execution)
    assert rounds[MAX_TOOL_ROUNDS - 1].reply[-1] == {"text": FINAL_ANSWER_REQUEST}
    assert rounds[-1].reply is None

    _script(script_file, *searches[:5], _answer("Nobody matched."))
    answered = _execution(_execute(stack, agent))
    assert answered.output["response"] == "Nobody matched."
    assert "stopped" not in answered.output


def test_tool_errors_unknown_tools_repeats_and_other_workspaces_go_back_to_the_model(
    stack, workspace, script_file
):
    other = Workspace(id=f"ws-{uuid.uuid4().hex[:8]}", name="Globex")
    other.save()
    Prospect(workspace_id=other.id, id="p-secret", name="Secret Lead", stage="new").save()
    Prospect(workspace_id=workspace.id, id="p-mine", name="Mine", score=90).save()
    agent = _agent(workspace.id)
    _script(
        script_file,
        _tools_turn(
            _use("tu-other", "update_lead_stage", prospectId="p-secret", stage="won"),
            _use("tu-ws", "search_leads", workspaceId=other.id, query="Secret"),
            _use("tu-bad", "update_lead_stage", prospectId="p-mine", stage="sold"),
            _use("tu-none", "delete_all_leads"),
            _use("tu-mail", "send_email", recipientType="prospect", recipientId="p-mine"),
            _use("tu-hot", "get_hot_leads", minScore=80),
        ),
        _tools_turn(_use("tu-hot-again", "get_hot_leads", minScore=80)),
        _answer("Done."),
    )
    run = _execute(stack, agent)
    assert run.status == "COMPLETED", run.error
    results = {entry["toolUseId"]: entry for entry in _execution(run).output["toolResults"]}
    assert results["tu-other"]["status"] == "error"
    assert results["tu-other"]["error"] == "prospect not found"
    assert "workspaceId: Extra inputs are not permitted" in results["tu-ws"]["error"]
    assert "stage" in results["tu-bad"]["error"]
    assert results["tu-none"]["status"] == "refused"
    assert results["tu-none"]["error"].startswith("unknown tool 'delete_all_leads'")
    # send_email is not among this agent's tools (no email capability)
    assert results["tu-mail"]["status"] == "refused"
    assert results["tu-hot"]["result"]["leads"][0]["prospectId"] == "p-mine"
    assert results["tu-hot-again"]["status"] == "refused"
    assert "the same call as the one just before" in results["tu-hot-again"]["error"]
    assert Prospect.get(other.id, "p-secret").stage == "new"  # untouched
    # What the model saw: the errors as tool results with status error.
    replies = [saved.reply for saved in _rounds(_execution(run)) if saved.reply]
    statuses = [block["toolResult"]["status"] for block in replies[0]]
    assert statuses == ["error", "error", "error", "error", "error", "success"]


def test_the_token_budget_stops_the_loop_with_a_clear_output(stack, workspace, script_file):
    agent = _agent(workspace.id, tokenBudget=150)
    _script(
        script_file,
        _tools_turn(_use("tu-1", "search_leads", query="a"), tokens=(80, 20)),
        _tools_turn(
            {"text": "One more."}, _use("tu-2", "search_leads", query="b"), tokens=(90, 10)
        ),
        _answer("never asked"),
    )
    execution = _execution(_execute(stack, agent))
    assert execution.status == "completed"
    assert execution.output["stopped"]["code"] == "token_budget"
    assert "token budget of 150 tokens" in execution.output["stopped"]["message"]
    assert execution.output["response"] == "One more."
    assert set(execution_store.tool_calls_of(execution)) == {"tu-1"}
    assert execution.tokens_used["total"] == 200


@pytest.mark.parametrize(
    ("turns", "status", "code"),
    [
        (
            [_answer("Sorry, I cannot discuss that.", "guardrail_intervened")],
            "failed",
            "guardrail_intervened",
        ),
        ([_answer("", "content_filtered")], "failed", "content_filtered"),
        (
            [_answer("x", "model_context_window_exceeded")],
            "failed",
            "model_context_window_exceeded",
        ),
        ([_answer("The plan costs", "max_tokens")], "completed", "max_tokens"),
        (
            [
                {"content": [{"text": "Let me"}], "stopReason": "malformed_tool_use"},
                {"content": [], "stopReason": "malformed_tool_use"},
            ],
            "failed",
            "malformed_tool_use",
        ),
    ],
)
def test_every_stop_reason_has_its_outcome(stack, workspace, script_file, turns, status, code):
    agent = _agent(workspace.id)
    _script(script_file, *turns)
    run = _execute(stack, agent)
    execution = _execution(run)
    assert execution.status == status
    if status == "failed":
        assert run.status == "FAILED" and run.attempts == 1  # not retried
        assert execution.error["code"] == code
        assert run.error["message"] == execution.error["message"]
        assert Agent.get(workspace.id, agent.id).execution_count == 0  # stats only on success
    else:
        assert execution.output["stopped"]["code"] == code
        assert execution.output["response"] == "The plan costs"
        assert Agent.get(workspace.id, agent.id).execution_count == 1


def test_a_malformed_tool_call_is_told_and_may_be_fixed(stack, workspace, script_file):
    agent = _agent(workspace.id)
    _script(
        script_file,
        {"content": [], "stopReason": "malformed_tool_use"},
        _tools_turn(_use("tu-1", "get_hot_leads")),
        _answer("No hot leads."),
    )
    execution = _execution(_execute(stack, agent))
    assert execution.status == "completed" and execution.output["response"] == "No hot leads."
    [first, *_] = _rounds(execution)
    assert first.assistant == [{"text": "(a tool call that could not be read)"}]
    assert "could not be read" in first.reply[0]["text"]


def test_cancel_is_honoured_between_rounds(stack, workspace, script_file, monkeypatch):
    agent = _agent(workspace.id)
    _script(
        script_file,
        _tools_turn(_use("tu-1", "get_pipeline_summary")),
        _tools_turn(_use("tu-2", "get_hot_leads")),
        _answer("never reached"),
    )
    summary = agent_tools.IMPLEMENTATIONS["get_pipeline_summary"]

    def cancel_meanwhile(arguments, context):
        [executing] = client.list_runs(workspace.id, task="execute-agent", status="EXECUTING")
        ledger.request_cancel(ledger.get(executing.id))
        return summary(arguments, context)

    monkeypatch.setitem(agent_tools.IMPLEMENTATIONS, "get_pipeline_summary", cancel_meanwhile)
    run = _execute(stack, agent)
    assert run.status == "CANCELED" and run.attempts == 1
    execution = _execution(run)
    assert execution.status == "cancelled" and execution.error["code"] == "cancelled"
    assert len(_rounds(execution)) == 1  # the second round never started
    assert set(execution_store.tool_calls_of(execution)) == {"tu-1"}
    assert Agent.get(workspace.id, agent.id).execution_count == 0


def test_inactive_or_missing_agents_fail_at_once_and_test_runs_skip_the_check(
    stack, workspace, script_file
):
    paused = _agent(workspace.id, status="paused")
    run = _execute(stack, paused)
    assert run.status == "FAILED" and run.attempts == 1
    assert run.error["message"] == f"agent {paused.id} is paused, not active"
    assert (
        AgentExecution.get_in_workspace(workspace.id, agent_service.execution_id_for(run.id))
        is None
    )

    missing = Agent(workspace.id, "agent-missing", name="x")
    run = _execute(stack, missing)
    assert run.status == "FAILED" and run.error["message"] == "agent not found"

    other = Workspace(id=f"ws-{uuid.uuid4().hex[:8]}", name="Other")
    other.save()
    foreign = _agent(other.id)
    run = _execute(stack, Agent(workspace.id, foreign.id, name="x"))
    assert run.status == "FAILED" and run.error["message"] == "agent not found"

    draft = _agent(workspace.id, status="draft")
    _script(script_file, _answer("Test answer."))
    run = _execute(stack, draft, testRun=True, triggeredBy="user-7")
    assert run.status == "COMPLETED", run.error
    execution = _execution(run)
    assert execution.test_run and execution.triggered_by == "user-7"
    assert execution.output["response"] == "Test answer."
    refreshed = Agent.get(workspace.id, draft.id)
    assert refreshed.execution_count == 0 and refreshed.last_executed_at is None


def test_a_script_without_turns_fails_the_execution_at_once(stack, workspace, script_file):
    agent = _agent(workspace.id)
    _script(script_file)
    run = _execute(stack, agent)
    assert run.status == "FAILED" and run.attempts == 1
    execution = _execution(run)
    assert execution.status == "failed" and execution.error["code"] == "ScriptError"
    assert "has no turn 1" in execution.error["message"]


def test_an_attempt_near_its_timeout_stops_before_a_model_call_and_the_next_resumes(
    stack, workspace, script_file
):
    from crmjobs import config
    from crmjobs.schemas import ExecuteAgentPayload
    from crmjobs_local.context import LambdaContext

    agent = _agent(workspace.id)
    _script(script_file, _tools_turn(_use("tu-1", "get_hot_leads")), _answer("None hot."))
    payload = ExecuteAgentPayload(workspaceId=workspace.id, agentId=agent.id)
    run_id = f"run_{uuid.uuid4().hex}"
    function = stack.function("ExecuteAgentFunction")
    short = LambdaContext("f", "arn:f", 512, timeout_seconds=30)  # less than a model call
    with config.function_environment({**function.environment, **stack.settings}):
        with pytest.raises(agent_service.OutOfTime, match="resumes at round 1"):
            agent_service.execute_agent(
                payload, RunContext(run_id, "execute-agent", workspace.id, 1, 2, short)
            )
        execution = AgentExecution.get(workspace.id, agent_service.execution_id_for(run_id))
        assert execution.status == "running" and _rounds(execution) == []
        output = agent_service.execute_agent(
            payload, RunContext(run_id, "execute-agent", workspace.id, 2, 2)
        )
    assert output["status"] == "completed" and output["response"] == "None hot."


def test_search_knowledge_finds_the_workspace_documents_only(stack, workspace, script_file):
    from crmjobs.models import KnowledgeItem
    from crmjobs.services.documents import index_item

    other = Workspace(id=f"ws-{uuid.uuid4().hex[:8]}", name="Other")
    other.save()
    for workspace_id, text in (
        (workspace.id, "The starter plan costs 900 dollars a month per robot."),
        (other.id, "Secret pricing: the starter plan costs 1 dollar."),
    ):
        item = KnowledgeItem(workspace_id=workspace_id, id="pricing", title="Pricing", content=text)
        item.save()
        index_item(item, force=True)
    agent = _agent(workspace.id)
    _script(
        script_file,
        _tools_turn(_use("tu-s", "search_knowledge", query="how much is the starter plan")),
        _answer("900 dollars a month."),
    )
    execution = _execution(_execute(stack, agent))
    [found] = execution.output["toolResults"]
    passages = [hit["passage"] for hit in found["result"]["results"]]
    assert passages and all("900 dollars" in passage for passage in passages)


def test_crm_calendar_and_knowledge_tools_work_in_the_agent_workspace(
    stack, workspace, script_file
):
    from crmjobs.models import Contact, KnowledgeItem

    other = Workspace(id=f"ws-{uuid.uuid4().hex[:8]}", name="Other")
    other.save()
    Prospect(workspace_id=workspace.id, id="p-kim", name="Kim Park", company="Initech").save()
    Prospect(workspace_id=other.id, id="p-far", name="Far Away").save()
    Contact(workspace.id, "c-out", email="out@example.com", email_opt_out=True).save()
    now = datetime.now(UTC)
    soon, later = now + timedelta(days=1), now + timedelta(days=3)
    Meeting(other.id, "m-theirs", title="Theirs", starts_at=iso(soon), ends_at=iso(soon)).save()
    agent = _agent(workspace.id, capabilities=["crm", "email", "calendar", "knowledge"])
    _script(
        script_file,
        _tools_turn(
            _use("tu-stage", "update_lead_stage", prospectId="p-kim", stage="qualified"),
            _use("tu-contact", "create_contact", email="Mo@Example.com", firstName="Mo"),
            _use("tu-late", "schedule_meeting", title="Later", startsAt=later.isoformat()),
            _use("tu-soon", "schedule_meeting", title="Soon", startsAt=soon.isoformat()),
            _use("tu-past", "schedule_meeting", title="Past", startsAt=now.isoformat()),
            _use(
                "tu-far",
                "schedule_meeting",
                title="X",
                startsAt=soon.isoformat(),
                prospectId="p-far",
            ),
            _use("tu-doc", "create_document", title="Call notes", content="Kim wants two R5."),
            _use(
                "tu-draft",
                "draft_email",
                recipientType="contact",
                recipientId="c-out",
                subject="Hi",
                body="Hello {{firstName}}",
            ),
        ),
        _tools_turn(_use("tu-events", "get_upcoming_events", days=7)),
        _answer("Done."),
    )
    run = _execute(stack, agent)
    assert run.status == "COMPLETED", run.error
    results = {r["toolUseId"]: r for r in _execution(run).output["toolResults"]}
    stage = results["tu-stage"]["result"]
    assert stage["previousStage"] == "new" and stage["stage"] == "qualified"
    assert Prospect.get(workspace.id, "p-kim").stage == "qualified"
    assert client.retrieve(stage["scoringRunId"]).payload["prospectId"] == "p-kim"
    contact = Contact.get(workspace.id, results["tu-contact"]["result"]["contactId"])
    assert contact.email == "mo@example.com" and contact.first_name == "Mo"
    assert "not in the future" in results["tu-past"]["error"]
    assert results["tu-far"]["error"] == "prospect not found"
    item = KnowledgeItem.get(workspace.id, results["tu-doc"]["result"]["itemId"])
    assert item.status == "processing" and item.content == "Kim wants two R5."
    indexing = client.retrieve(results["tu-doc"]["result"]["indexingRunId"])
    assert indexing.task == "index-document" and indexing.payload["itemId"] == item.id
    draft = results["tu-draft"]["result"]
    assert draft["canSend"] is False and draft["cannotSendBecause"] == "opted out"
    listed = [m["title"] for m in results["tu-events"]["result"]["meetings"]]
    assert listed == ["Soon", "Later"]  # soonest first, this workspace's only


def _sent_to(address):
    from moto.ses.models import ses_backends

    return [
        message
        for message in ses_backends["123456789012"]["us-east-1"].sent_messages
        if address in (getattr(message, "destinations", None) or [])
        or address in str(getattr(message, "raw_data", ""))
    ]


def test_send_email_respects_opt_outs_and_mails_once_across_a_retry(
    stack, workspace, script_file, monkeypatch, fast_retries
):
    from crmjobs.models import Contact

    other = Workspace(id=f"ws-{uuid.uuid4().hex[:8]}", name="Other")
    other.save()
    address = f"lin-{uuid.uuid4().hex[:6]}@example.com"
    Prospect(workspace_id=workspace.id, id="p-lin", name="Lin Wei", email=address).save()
    Contact(workspace.id, "c-out", email="out@example.com", email_opt_out=True).save()
    Prospect(workspace_id=other.id, id="p-theirs", name="Theirs", email="t@example.com").save()
    agent = _agent(workspace.id, capabilities=["email"])
    mail = {"subject": "Hello {{firstName}}", "body": "Hi {{firstName}}, the R5 is in stock."}
    _script(
        script_file,
        _tools_turn(
            _use("tu-lin", "send_email", recipientType="prospect", recipientId="p-lin", **mail),
            _use("tu-out", "send_email", recipientType="contact", recipientId="c-out", **mail),
            _use("tu-x", "send_email", recipientType="prospect", recipientId="p-theirs", **mail),
        ),
        _answer("Sent what could be sent."),
    )
    crashes = [ConnectionError("died after the send")]
    record = execution_store.record_tool_call

    def crash_after_the_first_send(*args, **kwargs):
        if crashes:
            raise crashes.pop()
        return record(*args, **kwargs)

    monkeypatch.setattr(execution_store, "record_tool_call", crash_after_the_first_send)
    first = _execute(stack, agent)
    assert first.status == "QUEUED"
    run = _poll(stack, first)
    assert run.status == "COMPLETED", run.error
    results = {r["toolUseId"]: r for r in _execution(run).output["toolResults"]}
    assert results["tu-lin"]["result"]["status"] == "sent", results["tu-lin"]
    assert results["tu-out"]["result"] == {
        "status": "skipped",
        "reason": "opted out",
        "messageId": None,
    }
    assert results["tu-x"]["status"] == "error" and "not found" in results["tu-x"]["error"]
    assert len(_sent_to(address)) == 1  # the retry ran the call again: one email all the same
    assert _sent_to("t@example.com") == []


# --- process-active-agents --------------------------------------------------------------


def _context(task):
    return RunContext(f"run_{uuid.uuid4().hex}", task, "_system", 1, 3)


def test_process_active_agents_lists_through_the_index_and_starts_due_schedules_once(
    stack, workspace
):
    other = Workspace(id=f"ws-{uuid.uuid4().hex[:8]}", name="Other")
    other.save()
    daily = {
        "expression": "cron(0 9 * * ? *)",
        "timezone": "Europe/Paris",
        "inputs": {"task": "Morning pipeline review"},
    }
    due = _agent(workspace.id, schedule=daily)
    _agent(workspace.id, schedule={**daily, "expression": "cron(0 12 * * ? *)"})
    _agent(workspace.id, status="paused", schedule=daily)
    broken = _agent(workspace.id, schedule={"expression": "cron(61 * * * ? *)"})
    elsewhere = _agent(other.id)

    now = datetime(2026, 12, 1, 8, 3, tzinfo=UTC)  # 09:03 in Paris
    payload = ProcessActiveAgentsPayload(workspaceId=workspace.id)
    first = agent_scheduling.process_active_agents(payload, _context("process-active-agents"), now)
    assert first["count"] == 3 and {a["workspaceId"] for a in first["agents"]} == {workspace.id}
    assert elsewhere.id not in {a["id"] for a in first["agents"]}
    [started] = first["scheduledRuns"]
    assert started["agentId"] == due.id and started["scheduledTime"] == "2026-12-01T08:00:00Z"
    assert first["started"] == 1 and not started["deduplicated"]
    assert [error["agentId"] for error in first["scheduleErrors"]] == [broken.id]
    run = client.retrieve(started["runId"])
    assert (
        run.task == "execute-agent"
        and run.idempotencyKey == f"agent-schedule:{due.id}:2026-12-01T08:00:00Z"
    )
    assert run.payload["inputs"] == {
        "task": "Morning pipeline review",
        "scheduledTime": "2026-12-01T08:00:00Z",
    }

    later = agent_scheduling.process_active_agents(
        payload, _context("process-active-agents"), now + timedelta(minutes=5)
    )
    assert later["started"] == 0 and later["scheduledRuns"][0]["deduplicated"]
    assert later["scheduledRuns"][0]["runId"] == started["runId"]

    everyone = agent_scheduling.process_active_agents(
        ProcessActiveAgentsPayload(), _context("process-active-agents"), now + timedelta(hours=2)
    )
    ids = {agent["id"] for agent in everyone["agents"]}
    assert {due.id, elsewhere.id} <= ids and everyone["started"] == 0


def test_process_active_agents_runs_on_the_real_path(stack, workspace):
    agent = _agent(workspace.id)
    run = client.trigger("process-active-agents", {"workspaceId": workspace.id})
    stack.source_for_task("process-active-agents").poll_once()
    done = client.retrieve(run.id)
    assert done.status == "COMPLETED", done.error
    assert done.output["count"] == 1 and done.output["agents"][0]["id"] == agent.id
    assert done.output["agents"][0]["executionCount"] == 0


# --- the health check ---------------------------------------------------------------------


def _past_execution(agent, started, status, *, duration=None, tokens=None, code=None):
    execution = AgentExecution(
        agent.workspace_id,
        f"ex-{uuid.uuid4().hex[:12]}",
        agent_id=agent.id,
        agent_key=AgentExecution.key_of_agent(agent.workspace_id, agent.id),
        status=status,
        started_at=iso(started),
        started_hour=hour_of(started),
        running_shard="running" if status == "running" else None,
        duration_ms=duration,
        tokens_used={"input": tokens, "output": 0, "total": tokens} if tokens else None,
        error={"message": "model unavailable", "code": code} if code else None,
    )
    execution.save()
    return execution


def test_the_health_check_marks_stuck_runs_pauses_failing_agents_and_records_figures(
    stack, workspace
):
    now = datetime.now(UTC).replace(microsecond=0)
    failing = _agent(workspace.id)
    recovering = _agent(workspace.id)
    healthy = _agent(workspace.id)
    for minutes in (50, 40, 30, 20):
        _past_execution(
            failing, now - timedelta(minutes=minutes), "failed", code="ModelUnavailable"
        )
        _past_execution(recovering, now - timedelta(minutes=minutes + 1), "failed", code="x")
    stuck = _past_execution(failing, now - timedelta(minutes=11), "running")
    _past_execution(recovering, now - timedelta(minutes=5), "completed", duration=1200, tokens=300)
    _past_execution(healthy, now - timedelta(minutes=9), "completed", duration=800, tokens=100)
    fresh = _past_execution(healthy, now - timedelta(minutes=2), "running")

    run = client.trigger("scheduled-agent-health-check", {"scheduledTime": now.isoformat()})
    stack.source_for_task("scheduled-agent-health-check").poll_once()
    done = client.retrieve(run.id)
    assert done.status == "COMPLETED", done.error
    figures = done.output

    assert AgentExecution.get(workspace.id, stuck.id).status == "failed"
    assert AgentExecution.get(workspace.id, stuck.id).error["code"] == "stuck"
    assert AgentExecution.get(workspace.id, fresh.id).status == "running"
    assert {e["executionId"] for e in figures["stuckMarkedFailed"]} >= {stuck.id}
    assert fresh.id not in {e["executionId"] for e in figures["stuckMarkedFailed"]}

    paused = Agent.get(workspace.id, failing.id)
    assert paused.status == "paused" and "last 5 executions failed" in paused.status_reason
    assert Agent.get(workspace.id, recovering.id).status == "active"
    assert [p["agentId"] for p in figures["autoPaused"] if p["workspaceId"] == workspace.id] == [
        failing.id
    ]

    hour = figures["lastHour"]
    assert hour["byStatus"]["failed"] >= 9 and hour["byStatus"]["completed"] >= 2
    assert hour["byStatus"]["running"] >= 1
    assert figures["agentsByStatus"]["paused"] >= 1 and figures["agentsByStatus"]["active"] >= 2
    record = AgentHealthRecord.get("agents", figures["checkedAt"])
    assert record.figures == figures
