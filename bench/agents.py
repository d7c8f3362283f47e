"""What an agent execution costs beyond its model: execute-agent on the scripted model
(whose turns take no time), measured two ways, interleaved.

- service: `execute_agent` called with a run context (the loop, its saved rounds and tool
  calls, the tools, the final transaction);
- runtime: `client.trigger` then one poll of execute-agent's queue (ledger, slot,
  idempotency, handler, service).

Each execution plays the same script: `--rounds` tool rounds of `--calls-per-round` calls
(the tools taken in turn: search_leads, get_hot_leads, get_pipeline_summary, create_lead,
create_contact, schedule_meeting, get_upcoming_events, update_lead_stage, draft_email),
then an answer. Figures: time per execution and per round with the model's and the tools'
time taken out (the loop's own overhead), DynamoDB requests per round by table, and each
tool's latency. moto runs in-process: a request costs moto's Python work, not a network
round trip. search_knowledge (embedding on CPU), send_email and create_document (they start
other runs) are left out of the rotation.

Run: python bench/agents.py [--executions 30] [--rounds 5] [--calls-per-round 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aws_requests import counting_aws_requests

from crmjobs import client, config
from crmjobs.adapters.chat_models import ScriptedChatModel
from crmjobs.models import Agent, Prospect, Workspace
from crmjobs.runtime import RunContext
from crmjobs.schemas import ExecuteAgentPayload
from crmjobs.services import agent_tools
from crmjobs.services.agents import execute_agent
from crmjobs_local.stack import LocalRuntime

WORKSPACE = "ws-bench-agents"
AGENT = "agent-bench"
MODES = ("service", "runtime")
WARM_UP = 2


def _use(n: int, name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {"toolUse": {"toolUseId": f"tu-{n}", "name": name, "input": tool_input}}


def rotation(now: datetime) -> list[tuple[str, dict[str, Any]]]:
    starts = (now + timedelta(days=3)).isoformat()
    return [
        ("search_leads", {"query": "acme", "limit": 10}),
        ("get_hot_leads", {"minScore": 50}),
        ("get_pipeline_summary", {}),
        ("create_lead", {"name": "Bench Lead", "email": "lead@bench.example"}),
        ("create_contact", {"email": "contact@bench.example", "firstName": "Bench"}),
        ("schedule_meeting", {"title": "Bench call", "startsAt": starts}),
        ("get_upcoming_events", {"days": 7}),
        ("update_lead_stage", {"prospectId": "p-0001", "stage": "contacted"}),
        (
            "draft_email",
            {
                "recipientType": "prospect",
                "recipientId": "p-0002",
                "subject": "Hello {{firstName}}",
                "body": "Hi {{firstName}}",
            },
        ),
    ]


def write_script(path: Path, rounds: int, calls_per_round: int, now: datetime) -> list[str]:
    tools = rotation(now)
    turns, used = [], []
    for n in range(rounds):
        uses = []
        for k in range(calls_per_round):
            name, tool_input = tools[(n * calls_per_round + k) % len(tools)]
            used.append(name)
            uses.append(_use(n * calls_per_round + k, name, tool_input))
        turns.append(
            {
                "content": uses,
                "stopReason": "tool_use",
                "usage": {"inputTokens": 500, "outputTokens": 40},
            }
        )
    turns.append({"content": [{"text": "Done."}], "usage": {"inputTokens": 600, "outputTokens": 9}})
    path.write_text(json.dumps({"turns": turns}))
    return used


def seed(prospects: int) -> None:
    Workspace(id=WORKSPACE, name="Bench", subscription_tier="enterprise").save()
    with Prospect.batch_write() as batch:
        for n in range(prospects):
            batch.save(
                Prospect(
                    workspace_id=WORKSPACE,
                    id=f"p-{n:04d}",
                    name=f"Prospect {n} Acme" if n % 3 == 0 else f"Prospect {n}",
                    email=f"p{n}@example.com",
                    score=n % 100,
                    stage="new",
                    estimated_value=100_000 + n,
                )
            )
    Agent(
        WORKSPACE,
        AGENT,
        name="Bench",
        type="sales",
        status="active",
        config={"capabilities": ["crm", "email", "calendar"], "tokenBudget": 1_000_000},
        created_by="bench",
    ).save()


class Timers:
    """Time spent in the model and in each tool, by wrapping both."""

    def __init__(self) -> None:
        self.model = 0.0
        self.tools: dict[str, list[float]] = defaultdict(list)

    def install(self) -> None:
        converse = ScriptedChatModel.converse

        def timed_converse(model, **request):
            started = time.perf_counter()
            try:
                return converse(model, **request)
            finally:
                self.model += time.perf_counter() - started

        ScriptedChatModel.converse = timed_converse
        for name, implementation in list(agent_tools.IMPLEMENTATIONS.items()):

            def timed(arguments, context, _name=name, _implementation=implementation):
                started = time.perf_counter()
                try:
                    return _implementation(arguments, context)
                finally:
                    self.tools[_name].append(time.perf_counter() - started)

            agent_tools.IMPLEMENTATIONS[name] = timed

    def tool_total(self) -> float:
        return sum(sum(times) for times in self.tools.values())


def one_execution(stack: LocalRuntime, mode: str) -> None:
    payload = {"workspaceId": WORKSPACE, "agentId": AGENT, "inputs": {"task": "bench"}}
    if mode == "service":
        function = stack.function("ExecuteAgentFunction")
        with config.function_environment({**function.environment, **stack.settings}):
            execute_agent(
                ExecuteAgentPayload.model_validate(payload),
                RunContext(f"run_{uuid.uuid4().hex}", "execute-agent", WORKSPACE, 1, 2),
            )
        return
    run = client.trigger("execute-agent", payload)
    stack.source_for_task("execute-agent").poll_once()
    done = client.retrieve(run.id)
    if done.status != "COMPLETED":
        raise RuntimeError(f"run {run.id} ended {done.status}: {done.error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5, help="tool rounds (at most 5)")
    parser.add_argument("--calls-per-round", type=int, default=2)
    parser.add_argument("--prospects", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data_dir:
        script = Path(data_dir) / "bench-script.json"
        parameters = {"AgentModelBackend": "scripted", "AgentScriptFile": str(script)}
        with LocalRuntime(data_dir=Path(data_dir), in_process=True, parameters=parameters) as stack:
            source = stack.source_for_task("execute-agent")
            source.batching_window_s = 0  # the runtime's own work, not the window
            seed(args.prospects)
            tools_used = write_script(script, args.rounds, args.calls_per_round, datetime.now(UTC))
            timers = Timers()
            timers.install()
            for mode in MODES:
                for _ in range(WARM_UP):
                    one_execution(stack, mode)
            samples: dict[str, list[float]] = defaultdict(list)
            requests: dict[str, Counter[str]] = {mode: Counter() for mode in MODES}
            timers.tools.clear()
            for _ in range(args.executions):
                for mode in MODES:
                    timers.model = 0.0
                    tools_before = timers.tool_total()
                    with counting_aws_requests() as counts:
                        started = time.perf_counter()
                        one_execution(stack, mode)
                        elapsed = time.perf_counter() - started
                    overhead = elapsed - timers.model - (timers.tool_total() - tools_before)
                    samples[mode].append(overhead)
                    requests[mode].update(counts)

    rounds = args.rounds + 1  # the tool rounds and the answer
    print(
        f"execute-agent, scripted model: {args.executions} executions per mode, "
        f"{args.rounds} tool rounds of {args.calls_per_round} calls + 1 answer each, "
        f"{args.prospects} prospects"
    )
    print(f"tools in turn: {', '.join(tools_used)}")
    for mode in MODES:
        median = statistics.median(samples[mode]) * 1000
        p90 = statistics.quantiles(samples[mode], n=10)[-1] * 1000
        print(
            f"{mode:8s} overhead (model and tool time taken out): {median:.1f} ms per execution "
            f"(p90 {p90:.1f}), {median / rounds:.1f} ms per round"
        )
    for mode in MODES:
        dynamodb = {
            key: count for key, count in requests[mode].items() if key.startswith("dynamodb:")
        }
        total = sum(dynamodb.values()) / args.executions
        print(
            f"{mode:8s} DynamoDB requests: {total:.1f} per execution, "
            f"{total / rounds:.2f} per round"
        )
        for key, count in sorted(dynamodb.items(), key=lambda item: -item[1]):
            print(f"           {key:45s} {count / args.executions / rounds:.2f} per round")
    print("tool latency (ms, both modes):")
    for name, times in sorted(timers.tools.items()):
        ms = sorted(t * 1000 for t in times)
        print(
            f"  {name:22s} median {statistics.median(ms):6.1f}  max {ms[-1]:6.1f}"
            f"  ({len(ms)} calls)"
        )


if __name__ == "__main__":
    main()
