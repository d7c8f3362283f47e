"""Agents' pure rules (spec: domain.md, "Agents"): their config, system prompt, tools, the
user message, and every decision of the tool loop. No I/O: the service runs the model and
the tools and saves each round; this module says what happens next.

The loop: a model turn that asks for tools is a tool round; at most MAX_TOOL_ROUNDS of
them, then one last turn asked to answer without tools (a tool call then ends the execution
"stopped after 5 tool rounds"). A call of the same tool with the same input as the call
just before it is not run again (the model is told so). A token budget per execution
stops the loop with a clear output. Every stop reason of the model has its outcome.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crmjobs.domain.agent_tools import CAPABILITIES, TOOLS
from crmjobs.errors import InvalidInput

MAX_TOOL_ROUNDS = 5
#: Tool calls one turn may ask for; the rest are answered with an error.
MAX_TOOL_CALLS_PER_ROUND = 10
DEFAULT_TOKEN_BUDGET = 50_000
DEFAULT_MAX_TOKENS = 1024
TONES = {
    "professional": "Be professional: clear, courteous and precise.",
    "friendly": "Be friendly and warm, and still precise.",
    "concise": "Be concise: short sentences, no filler.",
}
FINAL_ANSWER_REQUEST = (
    f"You have used the {MAX_TOOL_ROUNDS} tool rounds this task allows. Answer now with what "
    "you have; do not call any tool."
)
MALFORMED_TOOL_USE_NOTICE = (
    "Your last tool call could not be read (its input was not valid JSON for the tool). "
    "Call the tool again with valid input, or answer without it."
)
MALFORMED_PLACEHOLDER = "(a tool call that could not be read)"


class AgentSchedule(BaseModel):
    """`config.schedule`: an EventBridge-style expression, its time zone, and the inputs
    of the runs it starts."""

    model_config = ConfigDict(extra="forbid")

    expression: Annotated[str, Field(min_length=6)]
    timezone: str = "UTC"
    inputs: dict[str, Any] = Field(default_factory=dict)


class AgentConfig(BaseModel):
    """An agent's `config` as the app stores it (unknown keys are kept out of the way)."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    temperature: Annotated[float, Field(ge=0, le=1)] | None = None
    maxTokens: Annotated[int, Field(ge=1, le=64_000)] = DEFAULT_MAX_TOKENS
    systemPrompt: str | None = None
    tone: str | None = None
    capabilities: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    tokenBudget: Annotated[int, Field(ge=1)] | None = None
    schedule: AgentSchedule | None = None


def parse_config(raw: dict[str, Any] | None) -> AgentConfig:
    """The agent's config; InvalidInput naming every problem (the agent is misconfigured)."""
    try:
        return AgentConfig.model_validate(raw or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        raise InvalidInput(f"agent config is invalid: {problems}") from None


def system_prompt(
    config: AgentConfig, *, name: str, agent_type: str, description: str | None, now: str
) -> str:
    """config.systemPrompt, else one from the agent's name, type, description and tone."""
    if config.systemPrompt and config.systemPrompt.strip():
        return config.systemPrompt.strip()
    parts = [f"You are {name}, a {agent_type} agent working in one CRM workspace."]
    if description and description.strip():
        parts.append(description.strip())
    parts.append(TONES.get((config.tone or "professional").lower(), TONES["professional"]))
    parts.append(
        "Use the tools to read and change the workspace's CRM data; never invent records, "
        "ids or results. When you have what you need, answer the user directly."
    )
    parts.append(f"The current time is {now}.")
    return " ".join(parts)


def tool_names(config: AgentConfig) -> list[str]:
    """config.tools, else the tools of config.capabilities; unknown names are a
    misconfigured agent (InvalidInput)."""
    if config.tools:
        unknown = [name for name in config.tools if name not in TOOLS]
        if unknown:
            raise InvalidInput(
                f"agent config.tools names unknown tools: {', '.join(unknown)}; "
                f"known: {', '.join(TOOLS)}"
            )
        return list(dict.fromkeys(config.tools))
    unknown = [name for name in config.capabilities if name not in CAPABILITIES]
    if unknown:
        raise InvalidInput(
            f"agent config.capabilities names unknown capabilities: {', '.join(unknown)}; "
            f"known: {', '.join(CAPABILITIES)}"
        )
    return [tool for capability in config.capabilities for tool in CAPABILITIES[capability]]


def user_message(inputs: dict[str, Any]) -> str:
    """inputs.task, else inputs.message, else the inputs as JSON."""
    for key in ("task", "message"):
        value = inputs.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return json.dumps(inputs, sort_keys=True, default=str)


def token_budget(config: AgentConfig, default: int = DEFAULT_TOKEN_BUDGET) -> int:
    return config.tokenBudget or default


# --- the transcript ------------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    """One saved round: the model's turn, and (once its tools ran) the user message that
    answers it (tool results, maybe a notice). `number` counts from 1."""

    number: int
    assistant: list[dict[str, Any]]
    stop_reason: str
    input_tokens: int
    output_tokens: int
    reply: list[dict[str, Any]] | None = None
    #: This round asked for tools (a tool round), or was a malformed call told to retry.
    counts_as_tool_round: bool = False


def conversation(user_text: str, rounds: Sequence[Round]) -> list[dict[str, Any]]:
    """The Converse messages so far: the user's message, then each round's turn and reply."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": [{"text": user_text}]}]
    for saved in rounds:
        messages.append({"role": "assistant", "content": saved.assistant})
        if saved.reply is not None:
            messages.append({"role": "user", "content": saved.reply})
    return messages


def tokens_used(rounds: Sequence[Round]) -> tuple[int, int]:
    return (
        sum(saved.input_tokens for saved in rounds),
        sum(saved.output_tokens for saved in rounds),
    )


def tool_rounds_done(rounds: Sequence[Round]) -> int:
    return sum(1 for saved in rounds if saved.counts_as_tool_round)


def text_of(content: Sequence[dict[str, Any]]) -> str:
    return "\n".join(block["text"] for block in content if "text" in block).strip()


# --- decisions -----------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    tool_use_id: str
    name: str
    input: Any

    @property
    def signature(self) -> str:
        """Same tool, same input (key order aside)."""
        return json.dumps([self.name, self.input], sort_keys=True, default=str)


@dataclass(frozen=True)
class Stop:
    """Why the loop ended before the model's own final answer."""

    code: str
    message: str


@dataclass(frozen=True)
class Finish:
    """The execution completes with this response (and a stop when it ended early)."""

    response: str
    stopped: Stop | None = None


@dataclass(frozen=True)
class Fail:
    """The execution fails with this error; retrying cannot help."""

    code: str
    message: str


@dataclass(frozen=True)
class RunTools:
    calls: list[ToolCall]


@dataclass(frozen=True)
class AskAgain:
    """A malformed tool call: the model is told and may try again (a tool round)."""

    notice: str


Decision = Finish | Fail | RunTools | AskAgain


def tool_calls(content: Sequence[dict[str, Any]]) -> list[ToolCall]:
    return [
        ToolCall(block["toolUse"]["toolUseId"], block["toolUse"]["name"], block["toolUse"]["input"])
        for block in content
        if "toolUse" in block
    ]


def token_budget_stop(budget: int, used: int) -> Stop:
    return Stop(
        "token_budget",
        f"stopped: this execution's token budget of {budget} tokens is spent ({used} used)",
    )


def round_limit_stop() -> Stop:
    return Stop("tool_round_limit", f"stopped after {MAX_TOOL_ROUNDS} tool rounds")


def decide(
    turn: Round, *, previous: Round | None, rounds_done: int, tokens: int, budget: int
) -> Decision:
    """What follows a model turn. `rounds_done` counts the tool rounds before this turn,
    `tokens` the tokens used including it, `previous` is the round before it."""
    reason = turn.stop_reason
    text = text_of(turn.assistant)
    final_turn = rounds_done >= MAX_TOOL_ROUNDS
    if reason in ("end_turn", "stop_sequence"):
        calls = tool_calls(turn.assistant)
        if not calls:
            return Finish(text)
        reason = "tool_use"  # some models end the turn with tool calls in it
    if reason == "tool_use":
        calls = tool_calls(turn.assistant)
        if not calls:
            reason = "malformed_tool_use"
        elif final_turn:
            stop = round_limit_stop()
            return Finish(text or stop.message, stop)
        elif tokens >= budget:
            stop = token_budget_stop(budget, tokens)
            return Finish(text or stop.message, stop)
        else:
            return RunTools(calls)
    if reason == "max_tokens":
        stop = Stop("max_tokens", "the model's answer was cut at its maxTokens limit")
        return Finish(text or stop.message, stop)
    if reason == "malformed_tool_use":
        if final_turn or (previous is not None and previous.stop_reason == "malformed_tool_use"):
            return Fail("malformed_tool_use", "the model's tool calls could not be read, twice")
        if tokens >= budget:
            stop = token_budget_stop(budget, tokens)
            return Finish(text or stop.message, stop)
        return AskAgain(MALFORMED_TOOL_USE_NOTICE)
    failures = {
        "guardrail_intervened": "a guardrail intervened",
        "content_filtered": "the model's content filter blocked the answer",
        "malformed_model_output": "the model's answer could not be read",
        "model_context_window_exceeded": "the conversation no longer fits the model's context",
    }
    if reason in failures:
        detail = f": {text}" if text else ""
        return Fail(reason, f"{failures[reason]}{detail}")
    return Fail("unknown_stop_reason", f"the model stopped for an unknown reason: {reason!r}")


def saved_assistant(turn_content: list[dict[str, Any]], decision: Decision) -> list[dict[str, Any]]:
    """The turn as the transcript keeps it: after a malformed call only its text (its tool
    blocks cannot be answered), never empty (Converse rejects an empty message)."""
    if isinstance(decision, AskAgain):
        kept = [block for block in turn_content if "text" in block and block["text"].strip()]
        return kept or [{"text": MALFORMED_PLACEHOLDER}]
    return turn_content


@dataclass(frozen=True)
class PlannedCall:
    call: ToolCall
    #: Why the call is answered without running it (None: run it).
    refusal: str | None = None


def plan_calls(calls: Sequence[ToolCall], available: Sequence[str], last: ToolCall | None):
    """Which of a turn's calls run: an unknown tool, a call beyond the per-round limit, and
    the same call as the one just before it (also across rounds) are refused with the
    reason; the model gets the reason as the call's result."""
    planned: list[PlannedCall] = []
    for position, call in enumerate(calls):
        if position >= MAX_TOOL_CALLS_PER_ROUND:
            refusal = f"not run: at most {MAX_TOOL_CALLS_PER_ROUND} tool calls per turn"
        elif call.name not in available:
            refusal = f"unknown tool {call.name!r}; available: {', '.join(available) or 'none'}"
        elif last is not None and call.signature == last.signature:
            refusal = (
                f"not run: the same call as the one just before ({call.name} with the same "
                "input); its result is above. Use it, or call with another input."
            )
        else:
            refusal = None
        planned.append(PlannedCall(call, refusal))
        last = call
    return planned


def last_call(rounds: Sequence[Round]) -> ToolCall | None:
    """The most recent tool call in the transcript."""
    for saved in reversed(rounds):
        calls = tool_calls(saved.assistant)
        if calls:
            return calls[-1]
    return None


ResultStatus = Literal["success", "error"]


def tool_result_block(tool_use_id: str, status: ResultStatus, value: Any) -> dict[str, Any]:
    """A toolResult content block: JSON for a success, the message for an error."""
    content = [{"json": value}] if status == "success" else [{"text": str(value)}]
    return {"toolResult": {"toolUseId": tool_use_id, "content": content, "status": status}}
