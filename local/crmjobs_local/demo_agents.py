"""The agents' part of `crmjobs demo`: a sales agent with the crm, knowledge, email and
calendar capabilities, on the scripted chat model, searches the knowledge base, creates a
lead, schedules a meeting with it and drafts an email; the demo prints its transcript and
the execution's figures, then runs process-active-agents and the hourly health check.

The script is written when the demo runs (the meeting is two days ahead); the stack plays
it back because it starts with `stack_parameters(data_dir)`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

AGENT_ID = "agent-ava"
SCRIPT_NAME = "demo-agent.json"
TASK = (
    "A VP of Operations at Brightline Foods, Morgan Reyes (morgan.reyes@brightlinefoods.com), "
    "asked what an R5 costs. Find the price, add Morgan as a lead, book an intro call and "
    "draft a reply."
)


def stack_parameters(data_dir: Path) -> dict[str, str]:
    """The template parameters that put execute-agent on the scripted model."""
    return {
        "AgentModelBackend": "scripted",
        "AgentScriptFile": str(Path(data_dir).resolve() / SCRIPT_NAME),
    }


def _use(tool_use_id: str, name: str, /, **tool_input: Any) -> dict[str, Any]:
    return {"toolUse": {"toolUseId": tool_use_id, "name": name, "input": tool_input}}


def _turn(text: str, *uses: dict[str, Any], tokens: tuple[int, int]) -> dict[str, Any]:
    return {
        "content": [{"text": text}, *uses],
        "stopReason": "tool_use" if uses else "end_turn",
        "usage": {"inputTokens": tokens[0], "outputTokens": tokens[1]},
    }


def demo_script(now: datetime) -> dict[str, Any]:
    """The turns the scripted model plays: four tool rounds, then the answer."""
    meeting = (now + timedelta(days=2)).replace(hour=15, minute=0, second=0, microsecond=0)
    lead = "{{tu-lead.prospectId}}"
    return {
        "turns": [
            _turn(
                "Let me check the R5 pricing first.",
                _use("tu-search", "search_knowledge", query="R5 price per month", limit=3),
                tokens=(1180, 42),
            ),
            _turn(
                "The R5 is $1,450 per month on a 36-month plan. Adding Morgan as a lead.",
                _use(
                    "tu-lead",
                    "create_lead",
                    name="Morgan Reyes",
                    email="morgan.reyes@brightlinefoods.com",
                    company="Brightline Foods",
                    title="VP Operations",
                    estimatedValue=5_220_000,
                ),
                tokens=(1420, 61),
            ),
            _turn(
                "Booking a 30-minute intro call.",
                _use(
                    "tu-meeting",
                    "schedule_meeting",
                    title="Acme R5 intro call with Brightline Foods",
                    startsAt=meeting.isoformat(),
                    durationMinutes=30,
                    attendees=["morgan.reyes@brightlinefoods.com"],
                    prospectId=lead,
                    notes="Asked about R5 pricing; palletising line.",
                ),
                tokens=(1610, 74),
            ),
            _turn(
                "Drafting the reply.",
                _use(
                    "tu-draft",
                    "draft_email",
                    recipientType="prospect",
                    recipientId=lead,
                    subject="Acme R5 pricing for {{company}}",
                    body=(
                        "Hi {{firstName}},\n"
                        "Thanks for asking about the R5. It is $1,450 per month on a 36-month "
                        "plan, including the controller, Acme Studio, cloud monitoring and "
                        "support; paying annually takes 8% off.\n"
                        f"I booked a short intro call on {meeting:%A %d %B at %H:%M} UTC to "
                        "look at your palletising line. Does that time work for you?"
                    ),
                ),
                tokens=(1790, 120),
            ),
            _turn(
                "Morgan Reyes is in the CRM as a new lead, the intro call is booked and a reply "
                "quoting $1,450 per month for the R5 is drafted (not sent).",
                tokens=(2050, 48),
            ),
        ]
    }


def _short(value: Any, limit: int = 150) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _describe_block(block: dict[str, Any]) -> str:
    if "text" in block:
        return block["text"]
    if "toolUse" in block:
        use = block["toolUse"]
        return f"-> {use['name']}({_short(use['input'])})"
    result = block["toolResult"]
    [part] = result["content"]
    return f"<- {result['status']}: {_short(part.get('json', part.get('text')))}"


def run_agents_demo(console: Any, stack: Any, workspace_id: str, problems: list[str]) -> None:
    """Run the agent scenario; what goes wrong is appended to `problems`."""
    from crmjobs import client
    from crmjobs.models import Agent, AgentExecution
    from crmjobs.services.agents import execution_id_for
    from crmjobs.stores import executions
    from crmjobs_local.demo import await_run

    script = Path(stack.parameters["AgentScriptFile"])
    script.write_text(json.dumps(demo_script(datetime.now(UTC)), indent=2))
    Agent(
        workspace_id,
        AGENT_ID,
        name="Ava",
        description="Answers inbound questions from prospects and books intro calls.",
        type="sales",
        status="active",
        config={"capabilities": ["crm", "knowledge", "email", "calendar"], "tone": "friendly"},
        created_by="user-demo",
    ).save()

    console.rule("[bold]execute-agent: Ava, on the scripted model")
    console.print(f"  task: {TASK}")
    run = client.trigger(
        "execute-agent",
        {"workspaceId": workspace_id, "agentId": AGENT_ID, "inputs": {"task": TASK}},
        tags=["demo"],
    )
    view = await_run(console, "execute-agent Ava", run.id)
    execution = AgentExecution.get(workspace_id, execution_id_for(run.id))
    for saved in executions.rounds_of(execution):
        console.print(f"  [bold]round {int(saved.number)}[/] ({saved.stop_reason})")
        for block in saved.assistant:
            console.print(f"    assistant {_describe_block(block)}")
        for block in saved.reply or []:
            console.print(f"    tools     {_describe_block(block)}")
    output = execution.output or {}
    tokens = execution.tokens_used or {}
    console.print(f"  execution {execution.id}: [bold]{execution.status}[/]")
    console.print(
        f"  {output.get('rounds')} rounds, {tokens.get('total')} tokens ({tokens.get('input')} "
        f"in, {tokens.get('output')} out), {output.get('durationMs')} ms"
    )
    console.print(f"  tools {', '.join(output.get('toolsUsed', []))}")
    console.print(f"  model {output.get('model')} (scripted: {output.get('scripted')})")
    console.print(f"  response: {output.get('response')}")
    expected = ["search_knowledge", "create_lead", "schedule_meeting", "draft_email"]
    if view.status != "COMPLETED" or output.get("toolsUsed") != expected:
        problems.append(f"the agent run ended {view.status} with tools {output.get('toolsUsed')}")
    failed_tools = [r for r in output.get("toolResults", []) if r["status"] != "success"]
    if failed_tools:
        problems.append(f"agent tool calls failed: {failed_tools}")
    agent = Agent.get(workspace_id, AGENT_ID)
    console.print(
        f"  agent: executionCount {agent.execution_count}, lastExecutedAt {agent.last_executed_at}"
    )
    for result in output.get("toolResults", []):
        for key in ("scoringRunId", "indexingRunId"):
            run_id = (result.get("result") or {}).get(key)
            if run_id:
                triggered = await_run(console, f"{result['name']} -> {key}", run_id)
                console.print(f"  {result['name']} triggered {triggered.task}: {triggered.status}")

    console.rule("[bold]process-active-agents")
    run = client.trigger("process-active-agents", {}, tags=["demo"])
    view = await_run(console, "process-active-agents", run.id)
    listed = (view.output or {}).get("agents", [])
    console.print(f"  {(view.output or {}).get('count')} active agent(s):")
    for entry in listed:
        console.print(
            f"    {entry['workspaceId']}/{entry['id']} {entry['name']} ({entry['type']}): "
            f"{entry['executionCount']} executions, last {entry['lastExecutedAt']}"
        )

    console.rule("[bold]scheduled-agent-health-check: the hourly schedule, fired now")
    schedule = stack.resources.schedules["ScheduledAgentHealthCheckSchedule"]
    record = stack.scheduler.fire_now(schedule.name, schedule.group_name)
    from crmjobs import ledger

    run_id = ledger.run_id_for_message("scheduled-agent-health-check", record.message_id)
    view = await_run(console, "health check", run_id)
    figures = view.output or {}
    console.print(
        f"  agents by status {figures.get('agentsByStatus')}, total executions "
        f"{figures.get('totalExecutions')}"
    )
    console.print(f"  last hour: {figures.get('lastHour')}")
    console.print(
        f"  stuck marked failed: {len(figures.get('stuckMarkedFailed', []))}, "
        f"auto-paused: {len(figures.get('autoPaused', []))}"
    )
