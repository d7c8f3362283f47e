"""execute-agent: run an agent's tool loop on its chat model, durably.

The execution is keyed by the run, so every attempt of a run works on the same execution.
What it runs with (prompt, user message, tools, limits) is fixed on the record when it
starts. Each round is saved as it happens: the model's turn first, then, once its tools
ran, the reply with their results; every tool call is recorded by its toolUseId as soon as
it returns. A retry after a crash rebuilds the conversation from the saved rounds, never
asks the model again for a saved turn, and reuses the result of every recorded call (a
call the crash cut before its record is run again: the tools are idempotent by toolUseId).
A cancel request is honoured between rounds; an attempt near its timeout stops before a
model call and the next one resumes there.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from crmjobs import config
from crmjobs.adapters.chat_models import (
    DEFAULT_TIMEOUT_SECONDS,
    ChatModel,
    InferenceSettings,
    ToolSpec,
    get_chat_model,
)
from crmjobs.domain import agents as rules
from crmjobs.domain.agent_tools import TOOLS
from crmjobs.errors import Conflict, InvalidInput, NotFound, PermanentError, RunCanceled
from crmjobs.models import Agent, AgentExecution, ExecutionRound, ToolCallRecord
from crmjobs.observability import logger
from crmjobs.runtime import RunContext
from crmjobs.schemas import ExecuteAgentPayload
from crmjobs.services.agent_tools import ToolContext, ToolError, run_tool
from crmjobs.stores import agents as agent_store
from crmjobs.stores import executions as store

#: Time kept, beyond a model call's timeout, to save what the call returned.
SAVE_MARGIN_SECONDS = 10
#: A tool result larger than this (JSON characters) goes back to the model as an error.
MAX_RESULT_CHARS = 32_000
#: Each tool result in the execution's output is cut to this many characters (the
#: transcript keeps it whole).
OUTPUT_RESULT_CHARS = 2_000


class OutOfTime(RuntimeError):
    """Too little of the attempt is left for another model call."""


class AgentFailed(PermanentError):
    """The loop ended in a way retrying cannot change (a guardrail, a filter, ...)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def execution_id_for(run_id: str) -> str:
    """The execution of a run: the same for each of its attempts."""
    return f"ex-{run_id.removeprefix('run_')}"


def _now() -> datetime:
    return datetime.now(UTC)


def execute_agent(payload: ExecuteAgentPayload, context: RunContext) -> dict[str, Any]:
    execution_id = execution_id_for(context.run_id)
    execution = store.find(payload.workspaceId, execution_id)
    if execution is not None and execution.status != "running":
        return _finished_already(execution)
    try:
        agent = agent_store.get(payload.workspaceId, payload.agentId)
    except NotFound:
        if execution is not None:  # deleted while its execution ran
            _fail(execution, "agent not found", "NotFound")
        raise
    resumed = execution is not None
    if execution is None:
        execution, resumed = _start(agent, payload, context, execution_id)
    try:
        model = get_chat_model(execution.plan.get("model"))
        return AgentLoop(agent, execution, model, context, resumed=resumed).run()
    except (AgentFailed, RunCanceled):
        raise  # the execution is recorded failed or cancelled already
    except PermanentError as exc:
        _fail(execution, str(exc), type(exc).__name__)
        raise
    except Exception as exc:
        if context.attempt >= context.max_attempts:
            _fail(execution, f"{type(exc).__name__}: {exc}", type(exc).__name__)
        raise


def _start(
    agent: Agent, payload: ExecuteAgentPayload, context: RunContext, execution_id: str
) -> tuple[AgentExecution, bool]:
    """A new execution, recorded as running with its plan (and False: nothing saved yet);
    an inactive agent fails at once (a test run may skip that check)."""
    if not payload.testRun and agent.status != "active":
        raise InvalidInput(f"agent {agent.id} is {agent.status}, not active")
    agent_config = rules.parse_config(agent.config)
    started = _now()
    plan = {
        "system": rules.system_prompt(
            agent_config,
            name=agent.name,
            agent_type=agent.type,
            description=agent.description,
            now=store.iso(started),
        ),
        "userMessage": rules.user_message(payload.inputs),
        "tools": rules.tool_names(agent_config),
        "model": agent_config.model,
        "maxTokens": agent_config.maxTokens,
        "temperature": agent_config.temperature,
        "tokenBudget": rules.token_budget(
            agent_config, config.int_setting("AGENT_TOKEN_BUDGET", rules.DEFAULT_TOKEN_BUDGET)
        ),
    }
    execution = AgentExecution(
        payload.workspaceId,
        execution_id,
        agent_id=agent.id,
        agent_key=AgentExecution.key_of_agent(agent.workspace_id, agent.id),
        run_id=context.run_id,
        triggered_by=payload.triggeredBy or agent.created_by,
        test_run=payload.testRun,
        input=payload.inputs,
        plan=plan,
        tokens_used={"input": 0, "output": 0, "total": 0},
    )
    try:
        store.create_running(execution, started)
    except Conflict:
        return store.find(payload.workspaceId, execution_id), True  # a concurrent start won
    return execution, False


def _finished_already(execution: AgentExecution) -> dict[str, Any]:
    """A delivery of a run whose execution ended: the same outcome again."""
    if execution.status == "completed":
        return _run_output(execution, execution.output or {})
    error = execution.error or {}
    if execution.status == "cancelled":
        raise RunCanceled(error.get("message", "cancelled"))
    raise AgentFailed(error.get("message", f"execution {execution.status}"), error.get("code", ""))


def _fail(execution: AgentExecution, message: str, code: str, **fields: Any) -> None:
    try:
        store.finish(
            execution, "failed", _now(), error={"message": message, "code": code}, **fields
        )
    except Conflict:
        logger.info("execution was no longer running", extra={"execution": execution.id})


def _run_output(execution: AgentExecution, output: dict[str, Any]) -> dict[str, Any]:
    """What the run records: the execution, its response and its figures."""
    summary = {
        "executionId": execution.id,
        "agentId": execution.agent_id,
        "status": "completed",
        "response": output.get("response"),
        "rounds": output.get("rounds"),
        "tokensUsed": execution.tokens_used,
        "model": output.get("model"),
    }
    if output.get("stopped"):
        summary["stopped"] = output["stopped"]
    return summary


def _as_round(saved: ExecutionRound) -> rules.Round:
    return rules.Round(
        number=int(saved.number),
        assistant=saved.assistant,
        stop_reason=saved.stop_reason,
        input_tokens=int(saved.input_tokens),
        output_tokens=int(saved.output_tokens),
        reply=saved.reply,
        counts_as_tool_round=bool(saved.tool_round),
    )


class AgentLoop:
    def __init__(
        self,
        agent: Agent,
        execution: AgentExecution,
        model: ChatModel,
        context: RunContext,
        *,
        resumed: bool,
    ) -> None:
        self.agent = agent
        self.execution = execution
        self.model = model
        self.context = context
        self.plan = execution.plan
        self.tools = [
            ToolSpec(name, TOOLS[name].description, TOOLS[name].input_schema)
            for name in self.plan["tools"]
        ]
        #: The attempt time a model call may need.
        self.call_seconds = (
            config.int_setting("AGENT_MODEL_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)
            + SAVE_MARGIN_SECONDS
        )
        # What earlier attempts saved (a new execution has nothing to read).
        self.saved = store.rounds_of(execution) if resumed else []
        self.calls = store.tool_calls_of(execution) if resumed else {}

    @property
    def rounds(self) -> list[rules.Round]:
        return [_as_round(saved) for saved in self.saved]

    def run(self) -> dict[str, Any]:
        budget = int(self.plan["tokenBudget"])
        while True:
            rounds = self.rounds
            used = sum(rules.tokens_used(rounds))
            if rounds and rounds[-1].reply is None:
                decision = rules.decide(
                    rounds[-1],
                    previous=rounds[-2] if len(rounds) > 1 else None,
                    rounds_done=rules.tool_rounds_done(rounds[:-1]),
                    tokens=used,
                    budget=budget,
                )
                if isinstance(decision, rules.Finish):
                    return self._complete(decision)
                if isinstance(decision, rules.Fail):
                    self._stop_failed(decision)
                self._answer(decision)
                continue
            if self.context.cancel_requested():
                self._cancel()
            if used >= budget:
                return self._complete(
                    rules.Finish(
                        rules.text_of(rounds[-1].assistant) if rounds else "",
                        rules.token_budget_stop(budget, used),
                    )
                )
            if self.context.remaining_seconds() < self.call_seconds:
                # Stop before the function's timeout cuts a model call: the retry comes
                # after its backoff (not after the queue's visibility timeout) and resumes
                # from this round.
                raise OutOfTime(
                    f"{self.context.remaining_seconds():.0f} s left, a model call may take "
                    f"{self.call_seconds:.0f} s; the next attempt resumes at round "
                    f"{len(rounds) + 1}"
                )
            self._ask_model(rounds, budget - used)

    # --- one model turn ------------------------------------------------------------------

    def _ask_model(self, rounds: list[rules.Round], tokens_left: int) -> None:
        rounds_done = rules.tool_rounds_done(rounds)
        settings = InferenceSettings(
            max_tokens=max(1, min(int(self.plan["maxTokens"]), tokens_left)),
            temperature=self.plan.get("temperature"),
        )
        turn = self.model.converse(
            system=self.plan["system"],
            messages=rules.conversation(self.plan["userMessage"], rounds),
            tools=self.tools,
            settings=settings,
            tool_choice="none" if rounds_done >= rules.MAX_TOOL_ROUNDS else "auto",
        )
        number = len(rounds) + 1
        candidate = rules.Round(
            number,
            turn.content,
            turn.stop_reason,
            turn.usage.input_tokens,
            turn.usage.output_tokens,
        )
        decision = rules.decide(
            candidate,
            previous=rounds[-1] if rounds else None,
            rounds_done=rounds_done,
            tokens=sum(rules.tokens_used(rounds)) + turn.usage.total_tokens,
            budget=int(self.plan["tokenBudget"]),
        )
        saved = ExecutionRound(
            number=number,
            assistant=rules.saved_assistant(turn.content, decision),
            stop_reason=turn.stop_reason,
            input_tokens=turn.usage.input_tokens,
            output_tokens=turn.usage.output_tokens,
            tool_round=isinstance(decision, rules.RunTools | rules.AskAgain),
            model=turn.model,
            latency_ms=turn.latency_ms,
        )
        store.save_turn(self.execution, saved)
        self.saved.append(saved)

    # --- the reply to a turn: tool results ------------------------------------------------

    def _answer(self, decision: rules.RunTools | rules.AskAgain) -> None:
        current = self.saved[-1]
        if isinstance(decision, rules.AskAgain):
            reply: list[dict[str, Any]] = [{"text": decision.notice}]
        else:
            earlier = rules.last_call(self.rounds[:-1])
            reply = [
                self._result_of(planned, int(current.number))
                for planned in rules.plan_calls(decision.calls, self.plan["tools"], earlier)
            ]
        if rules.tool_rounds_done(self.rounds) >= rules.MAX_TOOL_ROUNDS:
            reply.append({"text": rules.FINAL_ANSWER_REQUEST})
        store.save_reply(current, reply)
        current.reply = reply

    def _result_of(self, planned: rules.PlannedCall, round_number: int) -> dict[str, Any]:
        call = planned.call
        if planned.refusal is not None:
            return rules.tool_result_block(call.tool_use_id, "error", planned.refusal)
        record = self.calls.get(call.tool_use_id)
        if record is not None and int(record.round_number) != round_number:
            return rules.tool_result_block(
                call.tool_use_id, "error", f"toolUseId {call.tool_use_id} was used before"
            )
        if record is None:
            record = self._run(call, round_number)
            self.calls[call.tool_use_id] = record
        if record.status == "success":
            return rules.tool_result_block(call.tool_use_id, "success", record.result)
        return rules.tool_result_block(call.tool_use_id, "error", record.error)

    def _run(self, call: rules.ToolCall, round_number: int) -> ToolCallRecord:
        """Run the call and record what it gave (a call recorded meanwhile by another
        delivery is taken as recorded)."""
        tool_context = ToolContext(
            workspace_id=self.execution.workspace_id,
            agent_id=self.execution.agent_id,
            execution_id=self.execution.id,
            tool_use_id=call.tool_use_id,
            now=_now(),
        )
        started = time.monotonic()
        try:
            result = run_tool(call.name, call.input, tool_context)
            if len(json.dumps(result, default=str)) > MAX_RESULT_CHARS:
                raise ToolError(f"the result is larger than {MAX_RESULT_CHARS} characters")
        except (ToolError, PermanentError) as exc:
            status, result, error = "error", None, str(exc) or type(exc).__name__
        else:
            status, error = "success", None
        try:
            return store.record_tool_call(
                self.execution,
                round_number,
                call.tool_use_id,
                call.name,
                call.input,
                status=status,
                duration_ms=int((time.monotonic() - started) * 1000),
                now=_now(),
                result=result,
                error=error,
            )
        except Conflict:
            return store.tool_calls_of(self.execution)[call.tool_use_id]

    # --- the end ----------------------------------------------------------------------------

    def _tokens(self) -> dict[str, int]:
        tokens_in, tokens_out = rules.tokens_used(self.rounds)
        return {"input": tokens_in, "output": tokens_out, "total": tokens_in + tokens_out}

    def _output(self, response: str, stopped: rules.Stop | None) -> dict[str, Any]:
        results = []
        for saved in self.rounds:
            outcomes = {
                block["toolResult"]["toolUseId"]: block["toolResult"]
                for block in saved.reply or []
                if "toolResult" in block
            }
            for call in rules.tool_calls(saved.assistant):
                outcome = outcomes.get(call.tool_use_id)
                if outcome is None:
                    continue
                record = self.calls.get(call.tool_use_id)
                entry = {
                    "toolUseId": call.tool_use_id,
                    "name": call.name,
                    "status": outcome["status"] if record is not None else "refused",
                }
                [part] = outcome["content"]
                value = part.get("json", part.get("text"))
                text = value if isinstance(value, str) else json.dumps(value, default=str)
                entry["result" if outcome["status"] == "success" else "error"] = (
                    value if len(text) <= OUTPUT_RESULT_CHARS else text[:OUTPUT_RESULT_CHARS] + "…"
                )
                results.append(entry)
        started = datetime.fromisoformat(self.execution.started_at.replace("Z", "+00:00"))
        output = {
            "response": response,
            "toolsUsed": list(
                dict.fromkeys(entry["name"] for entry in results if entry["status"] != "refused")
            ),
            "toolResults": results,
            "durationMs": int((_now() - started).total_seconds() * 1000),
            "model": self.model.model_id,
            "scripted": self.model.scripted,
            "rounds": len(self.saved),
        }
        if stopped is not None:
            output["stopped"] = {"code": stopped.code, "message": stopped.message}
        return output

    def _complete(self, decision: rules.Finish) -> dict[str, Any]:
        output = self._output(decision.response, decision.stopped)
        tokens = self._tokens()
        self.execution.tokens_used = tokens
        try:
            if self.execution.test_run:
                store.finish(
                    self.execution,
                    "completed",
                    _now(),
                    output=output,
                    tokens=tokens,
                    rounds=len(self.saved),
                )
            else:
                store.complete_and_count(
                    self.execution,
                    self.agent,
                    _now(),
                    output=output,
                    tokens=tokens,
                    rounds=len(self.saved),
                )
        except Conflict:
            current = store.find(self.execution.workspace_id, self.execution.id)
            if current is not None and current.status == "completed":
                return _run_output(current, current.output or {})
            raise AgentFailed(
                f"execution {self.execution.id} was "
                f"{current.status if current else 'deleted'} meanwhile",
                "conflict",
            ) from None
        return _run_output(self.execution, output)

    def _stop_failed(self, decision: rules.Fail) -> None:
        output = self._output(rules.text_of(self.rounds[-1].assistant), None)
        _fail(
            self.execution,
            decision.message,
            decision.code,
            output=output,
            tokens=self._tokens(),
            rounds=len(self.saved),
        )
        raise AgentFailed(decision.message, decision.code)

    def _cancel(self) -> None:
        message = f"cancelled by request after {len(self.saved)} rounds"
        try:
            store.finish(
                self.execution,
                "cancelled",
                _now(),
                output=self._output(
                    rules.text_of(self.saved[-1].assistant) if self.saved else "", None
                ),
                error={"message": message, "code": "cancelled"},
                tokens=self._tokens(),
                rounds=len(self.saved),
            )
        except Conflict:
            pass
        raise RunCanceled(message)
