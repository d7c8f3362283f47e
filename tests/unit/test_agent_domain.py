"""Agents' pure rules: config, system prompt, tools, user message, and the tool loop's
decisions (round cap, repeated calls, token budget, every stop reason)."""

from __future__ import annotations

import pytest

from crmjobs.domain.agent_tools import CAPABILITIES, TOOL_NAME, TOOLS
from crmjobs.domain.agents import (
    FINAL_ANSWER_REQUEST,
    MAX_TOOL_CALLS_PER_ROUND,
    MAX_TOOL_ROUNDS,
    AskAgain,
    Fail,
    Finish,
    Round,
    RunTools,
    ToolCall,
    conversation,
    decide,
    last_call,
    parse_config,
    plan_calls,
    saved_assistant,
    system_prompt,
    tokens_used,
    tool_names,
    tool_rounds_done,
    user_message,
)
from crmjobs.errors import InvalidInput

NOW = "2026-12-01T10:00:00Z"


def _use(tool_use_id: str, name: str = "search_leads", **tool_input) -> dict:
    return {"toolUse": {"toolUseId": tool_use_id, "name": name, "input": tool_input}}


def _turn(content, stop_reason="end_turn", number=1, tokens=(10, 5)) -> Round:
    return Round(number, content, stop_reason, *tokens)


def test_the_twelve_tools_have_valid_names_and_schemas_from_their_models():
    assert len(TOOLS) == 12
    for name, tool in TOOLS.items():
        assert TOOL_NAME.match(name) and tool.name == name
        schema = tool.input_schema
        assert schema == tool.input_model.model_json_schema()
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert "workspaceId" not in schema.get("properties", {})
    assert CAPABILITIES == {
        "crm": (
            "create_lead",
            "search_leads",
            "update_lead_stage",
            "create_contact",
            "get_hot_leads",
            "get_pipeline_summary",
        ),
        "email": ("draft_email", "send_email"),
        "calendar": ("schedule_meeting", "get_upcoming_events"),
        "knowledge": ("search_knowledge", "create_document"),
    }


def test_a_workspace_in_a_tool_input_is_rejected():
    with pytest.raises(ValueError, match="workspaceId"):
        TOOLS["search_leads"].input_model.model_validate({"workspaceId": "ws-other"})


def test_system_prompt_is_the_configured_one_or_built_from_the_agent():
    configured = parse_config({"systemPrompt": "  You only answer in haiku. "})
    assert (
        system_prompt(configured, name="Ava", agent_type="sales", description=None, now=NOW)
        == "You only answer in haiku."
    )
    built = system_prompt(
        parse_config({"tone": "friendly"}),
        name="Ava",
        agent_type="sales",
        description="Qualifies inbound leads.",
        now=NOW,
    )
    assert built.startswith("You are Ava, a sales agent")
    assert "Qualifies inbound leads." in built and "friendly" in built and NOW in built
    concise = system_prompt(
        parse_config({"tone": "concise"}), name="B", agent_type="t", description="", now=NOW
    )
    assert "concise" in concise and "professional" not in concise


def test_tools_come_from_config_tools_else_capabilities():
    assert tool_names(parse_config({"tools": ["send_email", "create_lead", "send_email"]})) == [
        "send_email",
        "create_lead",
    ]
    assert tool_names(parse_config({"capabilities": ["calendar", "knowledge"]})) == [
        "schedule_meeting",
        "get_upcoming_events",
        "search_knowledge",
        "create_document",
    ]
    assert tool_names(parse_config({})) == []
    with pytest.raises(InvalidInput, match="unknown tools: delete_everything"):
        tool_names(parse_config({"tools": ["delete_everything"]}))
    with pytest.raises(InvalidInput, match="unknown capabilities: telepathy"):
        tool_names(parse_config({"capabilities": ["crm", "telepathy"]}))


def test_invalid_config_names_its_problems():
    with pytest.raises(InvalidInput, match="temperature.*maxTokens"):
        parse_config({"temperature": 3, "maxTokens": 0})


def test_user_message_rule():
    assert user_message({"task": "Find hot leads", "message": "x"}) == "Find hot leads"
    assert user_message({"task": "  ", "message": "Hello"}) == "Hello"
    assert user_message({"b": 1, "a": [2]}) == '{"a": [2], "b": 1}'


def test_conversation_and_totals_rebuild_from_saved_rounds():
    rounds = [
        Round(
            1, [_use("t1")], "tool_use", 100, 20, reply=[{"text": "r1"}], counts_as_tool_round=True
        ),
        Round(2, [{"text": "done"}], "end_turn", 150, 30),
    ]
    assert conversation("hi", rounds) == [
        {"role": "user", "content": [{"text": "hi"}]},
        {"role": "assistant", "content": [_use("t1")]},
        {"role": "user", "content": [{"text": "r1"}]},
        {"role": "assistant", "content": [{"text": "done"}]},
    ]
    assert tokens_used(rounds) == (250, 50) and tool_rounds_done(rounds) == 1
    assert last_call(rounds) == ToolCall("t1", "search_leads", {})


def test_an_answer_finishes_and_tool_calls_run():
    assert decide(
        _turn([{"text": "All done."}]), previous=None, rounds_done=0, tokens=15, budget=100
    ) == Finish("All done.")
    assert decide(
        _turn([{"text": "x"}], "stop_sequence"), previous=None, rounds_done=0, tokens=1, budget=9
    ) == Finish("x")
    ask = _turn([{"text": "Looking."}, _use("t1", query="acme")], "tool_use")
    assert decide(ask, previous=None, rounds_done=0, tokens=15, budget=100) == RunTools(
        [ToolCall("t1", "search_leads", {"query": "acme"})]
    )


def test_the_turn_after_the_last_tool_round_may_not_call_tools():
    ask = _turn([_use("t9")], "tool_use")
    decision = decide(ask, previous=None, rounds_done=MAX_TOOL_ROUNDS, tokens=1, budget=100)
    assert isinstance(decision, Finish)
    assert decision.stopped.code == "tool_round_limit"
    assert decision.response == f"stopped after {MAX_TOOL_ROUNDS} tool rounds"
    assert str(MAX_TOOL_ROUNDS) in FINAL_ANSWER_REQUEST


def test_the_token_budget_stops_before_more_tools():
    ask = _turn([{"text": "One more search."}, _use("t2")], "tool_use")
    decision = decide(ask, previous=None, rounds_done=1, tokens=5_000, budget=5_000)
    assert isinstance(decision, Finish) and decision.stopped.code == "token_budget"
    assert decision.response == "One more search."
    assert "5000 tokens" in decision.stopped.message
    # An answer over budget is still the answer.
    assert decide(
        _turn([{"text": "Answer."}]), previous=None, rounds_done=1, tokens=9_999, budget=10
    ) == Finish("Answer.")


def test_max_tokens_keeps_the_cut_answer_and_says_so():
    decision = decide(
        _turn([{"text": "The pricing is"}], "max_tokens"),
        previous=None,
        rounds_done=0,
        tokens=9,
        budget=99,
    )
    assert decision.response == "The pricing is" and decision.stopped.code == "max_tokens"


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("guardrail_intervened", "a guardrail intervened: Sorry, I can't help with that."),
        ("content_filtered", "content filter"),
        ("malformed_model_output", "could not be read"),
        ("model_context_window_exceeded", "no longer fits"),
        ("something_new", "unknown reason: 'something_new'"),
    ],
)
def test_stop_reasons_that_fail_the_execution(reason, message):
    turn = _turn([{"text": "Sorry, I can't help with that."}], reason)
    decision = decide(turn, previous=None, rounds_done=0, tokens=1, budget=9)
    expected_code = reason if reason != "something_new" else "unknown_stop_reason"
    assert isinstance(decision, Fail) and decision.code == expected_code
    assert message in decision.message


def test_a_malformed_tool_call_is_retried_once_then_fails():
    malformed = _turn([_use("bad")], "malformed_tool_use")
    first = decide(malformed, previous=None, rounds_done=0, tokens=1, budget=9)
    assert isinstance(first, AskAgain)
    # Its tool blocks cannot be answered: only text is kept, never an empty message.
    assert saved_assistant(malformed.assistant, first) == [
        {"text": "(a tool call that could not be read)"}
    ]
    again = decide(malformed, previous=malformed, rounds_done=1, tokens=1, budget=9)
    assert isinstance(again, Fail) and again.code == "malformed_tool_use"
    # tool_use without any tool call is malformed too
    assert isinstance(
        decide(_turn([], "tool_use"), previous=None, rounds_done=0, tokens=1, budget=9), AskAgain
    )


def test_repeated_unknown_and_excess_calls_are_refused_with_the_reason():
    available = ["search_leads", "create_lead"]
    previous = ToolCall("t0", "search_leads", {"query": "acme", "limit": 5})
    calls = [
        ToolCall("t1", "search_leads", {"limit": 5, "query": "acme"}),  # same as the last round's
        ToolCall("t2", "search_leads", {"query": "globex"}),
        ToolCall("t3", "search_leads", {"query": "globex"}),  # same as the one just before
        ToolCall("t4", "drop_tables", {}),
        ToolCall("t5", "search_leads", {"query": "acme"}),  # not the same as t4
    ]
    planned = plan_calls(calls, available, previous)
    refusals = [p.refusal for p in planned]
    assert "the same call as the one just before" in refusals[0]
    assert refusals[1] is None
    assert "the same call" in refusals[2]
    assert refusals[3] == "unknown tool 'drop_tables'; available: search_leads, create_lead"
    assert refusals[4] is None
    many = [ToolCall(f"t{n}", "create_lead", {"name": f"L{n}"}) for n in range(12)]
    over = plan_calls(many, available, None)
    assert [p.refusal is None for p in over] == [True] * MAX_TOOL_CALLS_PER_ROUND + [False] * 2
