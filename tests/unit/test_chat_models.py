"""The chat model adapters: Converse requests validated by botocore's Stubber (tool config,
tool results, system, inference settings), retries and permanent errors, the call timeout,
the OpenAI-compatible mapping over real HTTP, the scripted model and backend selection."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import boto3
import pytest
from botocore.stub import Stubber

from crmjobs import config
from crmjobs.adapters.chat_models import (
    BedrockChatModel,
    InferenceSettings,
    ModelRequestRejected,
    ModelSettingError,
    ModelUnavailable,
    OpenAIChatModel,
    ScriptedChatModel,
    ScriptError,
    ToolSpec,
    bedrock_model_id,
    get_chat_model,
    openai_messages,
)
from crmjobs.errors import PermanentError

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
SEARCH = ToolSpec(
    "search_knowledge",
    "Search the knowledge base.",
    {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)
CONVERSATION = [
    {"role": "user", "content": [{"text": "What does the starter plan cost?"}]},
    {
        "role": "assistant",
        "content": [
            {"text": "Let me look."},
            {"toolUse": {"toolUseId": "tu-1", "name": "search_knowledge", "input": {"query": "x"}}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"toolResult": {"toolUseId": "tu-1", "content": [{"json": {"hits": []}}]}},
        ],
    },
]


def _converse_response(content, stop_reason="end_turn", tokens=(12, 5)):
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason,
        "usage": {
            "inputTokens": tokens[0],
            "outputTokens": tokens[1],
            "totalTokens": sum(tokens),
        },
        "metrics": {"latencyMs": 321},
    }


@pytest.fixture
def bedrock():
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        sleeps: list[float] = []
        model = BedrockChatModel(MODEL, client=client, sleep=sleeps.append, jitter=lambda: 1.0)
        yield model, stubber, sleeps
        stubber.assert_no_pending_responses()


def test_converse_request_carries_system_tools_results_and_settings(bedrock):
    model, stubber, _ = bedrock
    settings = InferenceSettings(
        max_tokens=512, temperature=0.2, top_p=0.9, stop_sequences=("END",)
    )
    expected = {
        "modelId": MODEL,
        "messages": CONVERSATION,
        "system": [{"text": "You are Ava."}],
        "inferenceConfig": {
            "maxTokens": 512,
            "temperature": 0.2,
            "topP": 0.9,
            "stopSequences": ["END"],
        },
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "search_knowledge",
                        "description": "Search the knowledge base.",
                        "inputSchema": {"json": SEARCH.input_schema},
                    }
                }
            ]
        },
    }
    stubber.add_response(
        "converse", _converse_response([{"text": "900 dollars a month."}]), expected
    )
    turn = model.converse(
        system="You are Ava.", messages=CONVERSATION, tools=[SEARCH], settings=settings
    )
    assert turn.content == [{"text": "900 dollars a month."}]
    assert turn.stop_reason == "end_turn" and turn.latency_ms == 321
    assert (turn.usage.input_tokens, turn.usage.output_tokens, turn.usage.total_tokens) == (
        12,
        5,
        17,
    )
    assert turn.model == MODEL


def test_converse_without_tools_or_optional_settings_sends_neither(bedrock):
    model, stubber, _ = bedrock
    messages = CONVERSATION[:1]
    stubber.add_response(
        "converse",
        _converse_response(
            [{"toolUse": {"toolUseId": "tu-9", "name": "search_knowledge", "input": {}}}],
            "tool_use",
        ),
        {"modelId": MODEL, "messages": messages, "inferenceConfig": {"maxTokens": 64}},
    )
    turn = model.converse(
        system="", messages=messages, tools=[], settings=InferenceSettings(max_tokens=64)
    )
    assert turn.stop_reason == "tool_use" and turn.content[0]["toolUse"]["toolUseId"] == "tu-9"


@pytest.mark.parametrize(
    "code", ["ThrottlingException", "ServiceUnavailableException", "ModelNotReadyException"]
)
def test_transient_errors_are_retried_with_backoff(bedrock, code):
    model, stubber, sleeps = bedrock
    stubber.add_client_error("converse", service_error_code=code, http_status_code=429)
    stubber.add_client_error("converse", service_error_code=code, http_status_code=429)
    stubber.add_response("converse", _converse_response([{"text": "ok"}]))
    turn = model.converse(
        system="s", messages=CONVERSATION[:1], tools=[], settings=InferenceSettings(10)
    )
    assert turn.content == [{"text": "ok"}]
    assert sleeps == [0.5, 1.0]  # base 0.5 s doubling, jitter pinned to its maximum


def test_throttling_that_lasts_is_unavailable_not_permanent(bedrock):
    model, stubber, sleeps = bedrock
    for _ in range(4):
        stubber.add_client_error("converse", service_error_code="ThrottlingException")
    with pytest.raises(ModelUnavailable, match="ThrottlingException") as raised:
        model.converse(
            system="s", messages=CONVERSATION[:1], tools=[], settings=InferenceSettings(9)
        )
    assert not isinstance(raised.value, PermanentError) and len(sleeps) == 3


@pytest.mark.parametrize("code", ["ValidationException", "AccessDeniedException"])
def test_validation_and_access_errors_are_permanent_with_the_reason(bedrock, code):
    model, stubber, sleeps = bedrock
    stubber.add_client_error("converse", service_error_code=code, service_message="nope: why")
    with pytest.raises(ModelRequestRejected, match=f"{code}: nope: why") as raised:
        model.converse(
            system="s", messages=CONVERSATION[:1], tools=[], settings=InferenceSettings(9)
        )
    assert isinstance(raised.value, PermanentError) and sleeps == []


def test_model_errors_without_a_retry_rule_fail_the_attempt(bedrock):
    model, stubber, sleeps = bedrock
    stubber.add_client_error("converse", service_error_code="ModelTimeoutException")
    with pytest.raises(ModelUnavailable, match="ModelTimeoutException"):
        model.converse(
            system="s", messages=CONVERSATION[:1], tools=[], settings=InferenceSettings(9)
        )
    assert sleeps == []


def test_a_model_call_that_hangs_times_out(monkeypatch):
    """A real botocore client against a socket that accepts and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    monkeypatch.setenv(
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME", f"http://127.0.0.1:{listener.getsockname()[1]}"
    )
    model = BedrockChatModel(MODEL, timeout=1)
    started = time.monotonic()
    with pytest.raises(ModelUnavailable, match="did not answer within 1 s"):
        model.converse(
            system="s", messages=CONVERSATION[:1], tools=[], settings=InferenceSettings(9)
        )
    assert time.monotonic() - started < 5
    listener.close()


def test_model_names_map_to_enabled_bedrock_ids():
    allowed = (MODEL, "amazon.nova-lite-v1:0")
    assert bedrock_model_id(None, MODEL, allowed) == MODEL
    assert bedrock_model_id("gpt-4", MODEL, allowed) == MODEL
    assert bedrock_model_id("nova-lite", MODEL, allowed) == "amazon.nova-lite-v1:0"
    assert bedrock_model_id("amazon.nova-lite-v1:0", MODEL, allowed) == "amazon.nova-lite-v1:0"
    with pytest.raises(ModelRequestRejected, match="'nova-pro' .* is not enabled"):
        bedrock_model_id("nova-pro", MODEL, allowed)


# --- OpenAI-compatible ------------------------------------------------------------------


class _ChatServer:
    """A real HTTP server answering /chat/completions with queued replies."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.replies: list[tuple[int, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body, "headers": self.headers})
                status, reply = outer.replies.pop(0)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def chat_server():
    server = _ChatServer()
    yield server
    server.server.shutdown()


def _completion(message, finish_reason, usage=(30, 7)):
    return {
        "model": "llama3.1:8b",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]},
    }


def test_openai_request_maps_tools_calls_and_results(chat_server):
    chat_server.replies.append(
        (
            200,
            _completion(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_7",
                            "type": "function",
                            "function": {"name": "search_knowledge", "arguments": '{"query":"p"}'},
                        }
                    ],
                },
                "tool_calls",
            ),
        )
    )
    model = OpenAIChatModel(base_url=chat_server.url, model="llama3.1:8b", api_key="k")
    turn = model.converse(
        system="You are Ava.",
        messages=CONVERSATION,
        tools=[SEARCH],
        settings=InferenceSettings(max_tokens=256, temperature=0.3),
    )
    [sent] = chat_server.requests
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["Authorization"] == "Bearer k"
    assert sent["body"] == {
        "model": "llama3.1:8b",
        "max_tokens": 256,
        "temperature": 0.3,
        "tool_choice": "auto",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "search_knowledge",
                    "description": "Search the knowledge base.",
                    "parameters": SEARCH.input_schema,
                },
            }
        ],
        "messages": [
            {"role": "system", "content": "You are Ava."},
            {"role": "user", "content": "What does the starter plan cost?"},
            {
                "role": "assistant",
                "content": "Let me look.",
                "tool_calls": [
                    {
                        "id": "tu-1",
                        "type": "function",
                        "function": {"name": "search_knowledge", "arguments": '{"query": "x"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "tu-1", "content": '{"hits": []}'},
        ],
    }
    assert turn.stop_reason == "tool_use"
    assert turn.content == [
        {"toolUse": {"toolUseId": "call_7", "name": "search_knowledge", "input": {"query": "p"}}}
    ]
    assert (turn.usage.input_tokens, turn.usage.output_tokens) == (30, 7)


def test_openai_error_results_and_trailing_text_keep_their_order():
    messages = [
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": "a",
                        "content": [{"text": "unknown tool"}],
                        "status": "error",
                    }
                },
                {"text": "Answer now."},
            ],
        }
    ]
    assert openai_messages("", messages) == [
        {"role": "tool", "tool_call_id": "a", "content": "error: unknown tool"},
        {"role": "user", "content": "Answer now."},
    ]


@pytest.mark.parametrize(
    ("message", "finish", "stop_reason"),
    [
        ({"role": "assistant", "content": "Done."}, "stop", "end_turn"),
        ({"role": "assistant", "content": "Cut"}, "length", "max_tokens"),
        ({"role": "assistant", "content": ""}, "content_filter", "content_filtered"),
        (
            {
                "role": "assistant",
                "tool_calls": [{"id": "c", "function": {"name": "x", "arguments": "{bad"}}],
            },
            "tool_calls",
            "malformed_tool_use",
        ),
        (
            # Some servers say "stop" with tool calls; a missing id gets one.
            {"role": "assistant", "tool_calls": [{"function": {"name": "x", "arguments": "{}"}}]},
            "stop",
            "tool_use",
        ),
    ],
)
def test_openai_finish_reasons_map_to_converse_stop_reasons(
    chat_server, message, finish, stop_reason
):
    chat_server.replies.append((200, _completion(message, finish)))
    model = OpenAIChatModel(base_url=chat_server.url, model="m")
    turn = model.converse(
        system="", messages=CONVERSATION[:1], tools=[SEARCH], settings=InferenceSettings(9)
    )
    assert turn.stop_reason == stop_reason
    for block in turn.content:
        if "toolUse" in block:
            assert block["toolUse"]["toolUseId"].startswith("call_")


def test_openai_retries_503_and_rejects_400(chat_server):
    sleeps: list[float] = []
    model = OpenAIChatModel(
        base_url=chat_server.url, model="m", sleep=sleeps.append, jitter=lambda: 1.0
    )
    chat_server.replies += [
        (503, {"error": "loading"}),
        (200, _completion({"content": "hi"}, "stop")),
    ]
    assert model.converse(
        system="", messages=CONVERSATION[:1], tools=[], settings=InferenceSettings(9)
    ).content == [{"text": "hi"}]
    assert sleeps == [0.5]
    chat_server.replies.append((400, {"error": "model 'm' not found"}))
    with pytest.raises(ModelRequestRejected, match="400.*model 'm' not found"):
        model.converse(
            system="", messages=CONVERSATION[:1], tools=[], settings=InferenceSettings(9)
        )
    [without_tools, *_] = chat_server.requests
    assert "tools" not in without_tools["body"] and "tool_choice" not in without_tools["body"]


def test_openai_unreachable_server_is_unavailable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = OpenAIChatModel(base_url=f"http://127.0.0.1:{port}/v1", model="m", sleep=lambda _: None)
    with pytest.raises(ModelUnavailable, match="is the model server running"):
        model.converse(
            system="", messages=CONVERSATION[:1], tools=[], settings=InferenceSettings(9)
        )


# --- scripted -----------------------------------------------------------------------------


def test_scripted_model_plays_turns_by_position_and_resolves_references(tmp_path):
    script = tmp_path / "demo.json"
    booking = {
        "toolUse": {
            "toolUseId": "tu-2",
            "name": "schedule_meeting",
            "input": {"title": "Intro", "prospectId": "{{tu-1.prospectId}}"},
        }
    }
    script.write_text(
        json.dumps(
            {
                "turns": [
                    {"content": CONVERSATION[1]["content"], "stopReason": "tool_use"},
                    {"content": [booking], "usage": {"inputTokens": 100, "outputTokens": 20}},
                    {"content": [{"text": "Booked."}]},
                ]
            }
        )
    )
    model = ScriptedChatModel.from_file(script)
    settings = InferenceSettings(9)
    first = model.converse(system="", messages=CONVERSATION[:1], tools=[], settings=settings)
    assert first.content == CONVERSATION[1]["content"] and first.stop_reason == "tool_use"
    assert first.usage.input_tokens > 0  # estimated without a usage in the script

    created = {"toolResult": {"toolUseId": "tu-1", "content": [{"json": {"prospectId": "p9"}}]}}
    history = [*CONVERSATION[:2], {"role": "user", "content": [created]}]
    second = model.converse(system="", messages=history, tools=[], settings=settings)
    assert second.content[0]["toolUse"]["input"] == {"title": "Intro", "prospectId": "p9"}
    assert second.stop_reason == "tool_use"
    assert (second.usage.input_tokens, second.usage.output_tokens) == (100, 20)
    with pytest.raises(ScriptError, match="matches no earlier tool result"):
        model.converse(system="", messages=CONVERSATION, tools=[], settings=settings)

    answered = [*history, {"role": "assistant", "content": second.content}, history[-1]]
    third = model.converse(system="", messages=answered, tools=[], settings=settings)
    assert third.content == [{"text": "Booked."}] and third.stop_reason == "end_turn"
    assert model.model_id == "scripted:demo" and model.scripted
    with pytest.raises(ScriptError, match="has no turn 4"):
        model.converse(
            system="",
            messages=[*answered, {"role": "assistant", "content": third.content}],
            tools=[],
            settings=settings,
        )


def test_backend_is_chosen_by_configuration_never_by_fallback(tmp_path):
    script = tmp_path / "s.json"
    script.write_text("[]")
    with config.function_environment({"AGENT_MODEL_BACKEND": "scripted"}):
        with pytest.raises(ModelSettingError, match="AGENT_SCRIPT_FILE"):
            get_chat_model(None)
    with config.function_environment(
        {"AGENT_MODEL_BACKEND": "scripted", "AGENT_SCRIPT_FILE": str(script)}
    ):
        assert get_chat_model("gpt-4").scripted
    with config.function_environment({"AGENT_MODEL_BACKEND": "bedrock", "AGENT_MODEL_ID": MODEL}):
        assert get_chat_model(None).model_id == MODEL
        with pytest.raises(ModelRequestRejected, match="not enabled"):
            get_chat_model("nova-pro")
    with config.function_environment(
        {"AGENT_MODEL_BACKEND": "openai", "AGENT_OPENAI_BASE_URL": "http://x/v1"}
    ):
        with pytest.raises(ModelSettingError, match="AGENT_OPENAI_MODEL"):
            get_chat_model(None)
    with config.function_environment({"AGENT_MODEL_BACKEND": "llamafile"}):
        with pytest.raises(ModelSettingError, match="must be one of bedrock, openai, scripted"):
            get_chat_model(None)
