"""Chat models behind one interface: system prompt, messages, tool specs and inference
settings in; the assistant's content blocks, stop reason and token usage out.

Messages and content blocks use the Bedrock Converse shapes (``{"text"}``,
``{"toolUse": {toolUseId, name, input}}``, ``{"toolResult": {toolUseId, content, status}}``),
which is also what an execution's saved transcript holds. Three backends, chosen by
``AGENT_MODEL_BACKEND`` (never a silent fallback):

- ``bedrock``: Amazon Bedrock Runtime ``Converse`` (the deployed default).
- ``openai``: an OpenAI-compatible ``/chat/completions`` endpoint (Ollama, vLLM, LM Studio).
- ``scripted``: plays back a file of turns (the demo and tests); executions record it.
"""

from __future__ import annotations

import functools
import json
import random
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from crmjobs import config
from crmjobs.adapters import aws
from crmjobs.adapters.backoff import Backoff
from crmjobs.errors import PermanentError

#: The stop reasons of Converse; the other backends map theirs onto these.
STOP_REASONS = frozenset(
    {
        "end_turn",
        "tool_use",
        "max_tokens",
        "stop_sequence",
        "guardrail_intervened",
        "content_filtered",
        "malformed_model_output",
        "malformed_tool_use",
        "model_context_window_exceeded",
    }
)
DEFAULT_TIMEOUT_SECONDS = 60
ToolChoice = Literal["auto", "none"]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class InferenceSettings:
    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    stop_sequences: tuple[str, ...] = ()


@dataclass(frozen=True)
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class ModelTurn:
    """One answer of the model: Converse content blocks, stop reason, usage."""

    content: list[dict[str, Any]]
    stop_reason: str
    usage: TokenUsage
    model: str
    latency_ms: int | None = None


class ChatModel(Protocol):
    #: What the execution records as its model (a Bedrock id, a server's model, a script).
    model_id: str
    scripted: bool

    def converse(
        self,
        *,
        system: str,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[ToolSpec],
        settings: InferenceSettings,
        tool_choice: ToolChoice = "auto",
    ) -> ModelTurn:
        """One model call. ``tool_choice="none"`` asks for an answer without tools (Converse
        has no such choice: its tool specs stay, as it requires them once the conversation
        holds tool blocks, and the caller's last message asks for the answer)."""
        ...


class ModelUnavailable(RuntimeError):
    """The model could not answer now (throttled, unavailable, timed out): a later attempt
    may succeed."""


class ModelRequestRejected(PermanentError):
    """The model service refused the request (validation, access, unknown model): retrying
    cannot help."""


class ModelSettingError(config.ConfigurationError):
    """AGENT_MODEL_* settings are missing or invalid: a deployment problem."""


# --------------------------------------------------------------------------------------
# choosing a backend
# --------------------------------------------------------------------------------------

BACKENDS = ("bedrock", "openai", "scripted")

#: Names an agent's config.model may use for a Bedrock model. The original app's OpenAI
#: model names mean "the stack's default model" (documented, not a silent fallback).
BEDROCK_MODEL_ALIASES = {
    "claude-3-haiku": "anthropic.claude-3-haiku-20240307-v1:0",
    "claude-3-5-haiku": "anthropic.claude-3-5-haiku-20241022-v1:0",
    "claude-3-5-sonnet": "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "nova-micro": "amazon.nova-micro-v1:0",
    "nova-lite": "amazon.nova-lite-v1:0",
    "nova-pro": "amazon.nova-pro-v1:0",
}
DEFAULT_MODEL_NAMES = frozenset({"default", "gpt-4", "gpt-4o", "gpt-4o-mini", "gpt-3.5-turbo"})


def bedrock_model_id(requested: str | None, default: str, allowed: Sequence[str]) -> str:
    """The Bedrock model id for an agent's ``config.model``: the stack's default when unset
    or one of the original app's model names, an alias's id, or an id itself. It must be
    one of the stack's allowed models (the function's IAM policy allows only those)."""
    name = (requested or "").strip()
    if not name or name.lower() in DEFAULT_MODEL_NAMES:
        model_id = default
    else:
        model_id = BEDROCK_MODEL_ALIASES.get(name.lower(), name)
    if model_id not in allowed:
        raise ModelRequestRejected(
            f"model {name or model_id!r} ({model_id}) is not enabled in this stack; "
            f"enabled: {', '.join(allowed)}"
        )
    return model_id


def get_chat_model(requested_model: str | None) -> ChatModel:
    """The chat model the environment configures, for an agent asking for ``requested_model``.

    - ``bedrock``: AGENT_MODEL_ID (the default model), AGENT_MODEL_IDS (comma-separated
      enabled models; default: the default model), AGENT_MODEL_TIMEOUT_SECONDS.
    - ``openai``: AGENT_OPENAI_BASE_URL (e.g. http://localhost:11434/v1), AGENT_OPENAI_MODEL,
      AGENT_OPENAI_API_KEY (optional), AGENT_MODEL_TIMEOUT_SECONDS.
    - ``scripted``: AGENT_SCRIPT_FILE.
    """
    backend = (config.env("AGENT_MODEL_BACKEND") or "").strip().lower()
    timeout = config.int_setting("AGENT_MODEL_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)
    if backend == "bedrock":
        default = config.env("AGENT_MODEL_ID")
        if default is None:
            raise ModelSettingError("AGENT_MODEL_ID must name the default Bedrock model")
        allowed_text = config.env("AGENT_MODEL_IDS") or default
        allowed = tuple(part.strip() for part in allowed_text.split(",") if part.strip())
        return _bedrock_model(bedrock_model_id(requested_model, default, allowed), timeout)
    if backend == "openai":
        base_url = config.env("AGENT_OPENAI_BASE_URL")
        model = config.env("AGENT_OPENAI_MODEL")
        if base_url is None or model is None:
            raise ModelSettingError(
                "the openai backend needs AGENT_OPENAI_BASE_URL and AGENT_OPENAI_MODEL"
            )
        return OpenAIChatModel(
            base_url=base_url,
            model=model,
            api_key=config.env("AGENT_OPENAI_API_KEY"),
            timeout=timeout,
        )
    if backend == "scripted":
        path = config.env("AGENT_SCRIPT_FILE")
        if path is None:
            raise ModelSettingError("the scripted backend needs AGENT_SCRIPT_FILE")
        return ScriptedChatModel.from_file(Path(path))
    raise ModelSettingError(
        f"AGENT_MODEL_BACKEND must be one of {', '.join(BACKENDS)}, "
        f"got {config.env('AGENT_MODEL_BACKEND')!r}"
    )


@functools.cache
def _bedrock_model(model_id: str, timeout: int) -> BedrockChatModel:
    return BedrockChatModel(model_id, timeout=timeout)


# --------------------------------------------------------------------------------------
# Bedrock Converse
# --------------------------------------------------------------------------------------

#: Worth sending again a little later, in the same call.
BEDROCK_RETRYABLE = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailableException",
        "ModelNotReadyException",
        "InternalServerException",
    }
)
#: The request itself is wrong or not allowed: the execution fails with the reason.
BEDROCK_PERMANENT = frozenset(
    {"ValidationException", "AccessDeniedException", "ResourceNotFoundException"}
)


class BedrockChatModel:
    """Bedrock Runtime Converse. botocore's retries are off (one attempt per request) so
    that throttling, service-unavailable, model-not-ready and internal errors are retried
    here, with exponential backoff and full jitter; each request is bounded by the client's
    read timeout. A timeout or an error left after the retries raises ModelUnavailable (the
    task's attempt is retried, resuming from its last saved round); validation, access and
    unknown-model errors raise ModelRequestRejected."""

    scripted = False

    def __init__(
        self,
        model_id: str,
        *,
        timeout: int = DEFAULT_TIMEOUT_SECONDS,
        client: Any | None = None,
        max_attempts: int = 4,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.model_id = model_id
        self.timeout = timeout
        self._client = client
        self._client_lock = threading.Lock()
        self._backoff = Backoff(max_attempts, base_delay, max_delay, sleep, jitter)

    @property
    def client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = aws.create_client(
                    "bedrock-runtime",
                    Config(
                        read_timeout=self.timeout,
                        connect_timeout=10,
                        retries={"total_max_attempts": 1},
                    ),
                )
            return self._client

    def request(
        self,
        *,
        system: str,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[ToolSpec],
        settings: InferenceSettings,
    ) -> dict[str, Any]:
        """The Converse request's parameters."""
        inference: dict[str, Any] = {"maxTokens": settings.max_tokens}
        if settings.temperature is not None:
            inference["temperature"] = settings.temperature
        if settings.top_p is not None:
            inference["topP"] = settings.top_p
        if settings.stop_sequences:
            inference["stopSequences"] = list(settings.stop_sequences)
        request: dict[str, Any] = {
            "modelId": self.model_id,
            "messages": list(messages),
            "inferenceConfig": inference,
        }
        if system:
            request["system"] = [{"text": system}]
        if tools:
            request["toolConfig"] = {
                "tools": [
                    {
                        "toolSpec": {
                            "name": tool.name,
                            "description": tool.description,
                            "inputSchema": {"json": tool.input_schema},
                        }
                    }
                    for tool in tools
                ]
            }
        return request

    def converse(
        self,
        *,
        system: str,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[ToolSpec],
        settings: InferenceSettings,
        tool_choice: ToolChoice = "auto",
    ) -> ModelTurn:
        request = self.request(system=system, messages=messages, tools=tools, settings=settings)
        response = self._call_with_backoff(request)
        usage = response.get("usage") or {}
        return ModelTurn(
            content=list(response["output"]["message"]["content"]),
            stop_reason=response["stopReason"],
            usage=TokenUsage(int(usage.get("inputTokens", 0)), int(usage.get("outputTokens", 0))),
            model=self.model_id,
            latency_ms=(response.get("metrics") or {}).get("latencyMs"),
        )

    def _call_with_backoff(self, request: dict[str, Any]) -> dict[str, Any]:
        for last in self._backoff.attempts():
            try:
                return self.client.converse(**request)
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                message = error.response.get("Error", {}).get("Message", "")
                if code in BEDROCK_PERMANENT:
                    raise ModelRequestRejected(
                        f"Bedrock refused the request to {self.model_id}: {code}: {message}"
                    ) from None
                if code not in BEDROCK_RETRYABLE or last:
                    raise ModelUnavailable(
                        f"Bedrock {self.model_id} did not answer: {code}: {message}"
                    ) from error
            except ReadTimeoutError as error:
                raise ModelUnavailable(
                    f"Bedrock {self.model_id} did not answer within {self.timeout} s"
                ) from error
            except BotocoreConnectionError as error:
                if last:
                    raise ModelUnavailable(f"cannot reach Bedrock: {error}") from error
        raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------------------
# OpenAI-compatible chat completions
# --------------------------------------------------------------------------------------

OPENAI_FINISH_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "content_filtered",
}
_RETRYABLE_HTTP = frozenset({408, 429, 500, 502, 503, 504})
_TOOL_USE_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def openai_messages(system: str, messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Converse messages as chat-completions messages: an assistant's toolUse blocks become
    its ``tool_calls``; a user message's toolResult blocks become ``tool`` messages (first,
    as the API wants them right after the assistant's calls), then its text."""
    converted: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in messages:
        texts = [block["text"] for block in message["content"] if "text" in block]
        if message["role"] == "assistant":
            entry: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) or None}
            calls = [
                {
                    "id": block["toolUse"]["toolUseId"],
                    "type": "function",
                    "function": {
                        "name": block["toolUse"]["name"],
                        "arguments": json.dumps(block["toolUse"]["input"]),
                    },
                }
                for block in message["content"]
                if "toolUse" in block
            ]
            if calls:
                entry["tool_calls"] = calls
            converted.append(entry)
            continue
        for block in message["content"]:
            if "toolResult" in block:
                result = block["toolResult"]
                converted.append(
                    {
                        "role": "tool",
                        "tool_call_id": result["toolUseId"],
                        "content": _tool_result_text(result),
                    }
                )
        if texts:
            converted.append({"role": "user", "content": "\n".join(texts)})
    return converted


def _tool_result_text(result: dict[str, Any]) -> str:
    parts = [
        json.dumps(part["json"]) if "json" in part else part.get("text", "")
        for part in result["content"]
    ]
    text = "\n".join(parts)
    return f"error: {text}" if result.get("status") == "error" else text


def openai_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.input_schema,
            },
        }
        for tool in tools
    ]


def turn_from_openai(response: dict[str, Any], model: str) -> ModelTurn:
    """A chat-completions response as a model turn. Tool calls whose arguments are not a
    JSON object make the stop reason ``malformed_tool_use``; a tool call without a usable id
    gets one (the transcript keeps it, so a resumed execution sees the same id)."""
    choice = response["choices"][0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"text": message["content"]})
    malformed = False
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict) or not function.get("name"):
            malformed = True
            continue
        call_id = str(call.get("id") or "")
        if not _TOOL_USE_ID.match(call_id):
            call_id = f"call_{uuid.uuid4().hex}"
        content.append(
            {"toolUse": {"toolUseId": call_id, "name": function["name"], "input": arguments}}
        )
    has_calls = any("toolUse" in block for block in content)
    if malformed:
        stop_reason = "malformed_tool_use"
    elif has_calls:
        # Some servers answer "stop" with tool calls.
        stop_reason = "tool_use"
    else:
        stop_reason = OPENAI_FINISH_REASONS.get(choice.get("finish_reason") or "stop", "end_turn")
        if stop_reason == "tool_use":
            stop_reason = "malformed_tool_use"  # said tool_calls, gave none
    usage = response.get("usage") or {}
    return ModelTurn(
        content=content,
        stop_reason=stop_reason,
        usage=TokenUsage(
            int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        ),
        model=response.get("model") or model,
    )


class OpenAIChatModel:
    """``POST {base_url}/chat/completions`` with the standard library's HTTP client: tools
    as functions, tool calls and results mapped both ways. 408/429/5xx and connection
    errors are retried with backoff and jitter; other 4xx raise ModelRequestRejected."""

    scripted = False

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: int = DEFAULT_TIMEOUT_SECONDS,
        max_attempts: int = 3,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model_id = model
        self._api_key = api_key
        self.timeout = timeout
        self._backoff = Backoff(max_attempts, base_delay, max_delay, sleep, jitter)

    def request(
        self,
        *,
        system: str,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[ToolSpec],
        settings: InferenceSettings,
        tool_choice: ToolChoice = "auto",
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": openai_messages(system, messages),
            "max_tokens": settings.max_tokens,
        }
        if settings.temperature is not None:
            body["temperature"] = settings.temperature
        if settings.top_p is not None:
            body["top_p"] = settings.top_p
        if settings.stop_sequences:
            body["stop"] = list(settings.stop_sequences)
        if tools:
            body["tools"] = openai_tools(tools)
            body["tool_choice"] = tool_choice
        return body

    def converse(
        self,
        *,
        system: str,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[ToolSpec],
        settings: InferenceSettings,
        tool_choice: ToolChoice = "auto",
    ) -> ModelTurn:
        body = self.request(
            system=system,
            messages=messages,
            tools=tools,
            settings=settings,
            tool_choice=tool_choice,
        )
        started = time.monotonic()
        response = self._post_with_backoff(body)
        turn = turn_from_openai(response, self.model_id)
        return ModelTurn(
            turn.content,
            turn.stop_reason,
            turn.usage,
            turn.model,
            int((time.monotonic() - started) * 1000),
        )

    def _post_with_backoff(self, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/chat/completions"
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        data = json.dumps(body).encode()
        for last in self._backoff.attempts():
            request = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                    return json.loads(reply.read())
            except urllib.error.HTTPError as error:
                detail = error.read()[:500].decode(errors="replace")
                if error.code not in _RETRYABLE_HTTP:
                    raise ModelRequestRejected(
                        f"{url} refused the request ({error.code}): {detail}"
                    ) from None
                if last:
                    raise ModelUnavailable(f"{url} answered {error.code}: {detail}") from None
            except TimeoutError as error:
                raise ModelUnavailable(f"{url} did not answer within {self.timeout} s") from error
            except (urllib.error.URLError, ConnectionResetError) as error:
                if last:
                    raise ModelUnavailable(
                        f"cannot reach {url} (is the model server running?): {error}"
                    ) from error
            except ValueError as error:
                raise ModelUnavailable(f"{url} answered with invalid JSON: {error}") from error
        raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------------------
# scripted
# --------------------------------------------------------------------------------------

_REFERENCE = re.compile(r"^\{\{([a-zA-Z0-9_-]+)\.([a-zA-Z0-9_.]+)\}\}$")


class ScriptError(PermanentError):
    """The script does not fit the conversation (no turn left, a bad reference)."""


@dataclass
class ScriptedChatModel:
    """Plays back a script of turns: ``{"turns": [{"content": [...], "stopReason": ...,
    "usage": {"inputTokens", "outputTokens"}}]}``. The turn played is the number of
    assistant messages so far, so a resumed conversation gets the turn it would have got.
    In a tool input, a string ``"{{toolUseId.field}}"`` is replaced by that field of the
    JSON result of an earlier tool call (e.g. the id of the lead a tool created). Without
    ``usage``, tokens are estimated at four characters each."""

    name: str
    turns: list[dict[str, Any]]
    scripted: bool = field(default=True, init=False)

    @classmethod
    def from_file(cls, path: Path) -> ScriptedChatModel:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise ModelSettingError(f"cannot read the agent script {path}: {error}") from None
        turns = data.get("turns") if isinstance(data, dict) else data
        if not isinstance(turns, list) or not all(isinstance(turn, dict) for turn in turns):
            raise ModelSettingError(f"{path}: a script is a list of turns (or {{'turns': [...]}})")
        return cls(name=Path(path).stem, turns=turns)

    @property
    def model_id(self) -> str:
        return f"scripted:{self.name}"

    def converse(
        self,
        *,
        system: str,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[ToolSpec],
        settings: InferenceSettings,
        tool_choice: ToolChoice = "auto",
    ) -> ModelTurn:
        position = sum(1 for message in messages if message["role"] == "assistant")
        if position >= len(self.turns):
            raise ScriptError(f"script {self.name} has no turn {position + 1}")
        turn = self.turns[position]
        results = _tool_results(messages)
        content = [_resolve_block(block, results) for block in turn.get("content", [])]
        stop_reason = turn.get("stopReason") or (
            "tool_use" if any("toolUse" in block for block in content) else "end_turn"
        )
        usage = turn.get("usage") or {}
        return ModelTurn(
            content=content,
            stop_reason=stop_reason,
            usage=TokenUsage(
                int(usage.get("inputTokens", _estimate_tokens([system, messages]))),
                int(usage.get("outputTokens", _estimate_tokens(content))),
            ),
            model=self.model_id,
            latency_ms=0,
        )


def _estimate_tokens(value: Any) -> int:
    return max(1, len(json.dumps(value, default=str)) // 4)


def _tool_results(messages: Sequence[dict[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for message in messages:
        for block in message["content"]:
            result = block.get("toolResult")
            if result:
                for part in result["content"]:
                    if "json" in part:
                        found[result["toolUseId"]] = part["json"]
    return found


def _resolve_block(block: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    if "toolUse" not in block:
        return block
    use = block["toolUse"]
    return {"toolUse": {**use, "input": _resolve(use.get("input", {}), results)}}


def _resolve(value: Any, results: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {key: _resolve(item, results) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, results) for item in value]
    match = _REFERENCE.match(value) if isinstance(value, str) else None
    if not match:
        return value
    tool_use_id, path = match.groups()
    found: Any = results.get(tool_use_id)
    for key in path.split("."):
        if not isinstance(found, dict) or key not in found:
            raise ScriptError(f"script reference {value} matches no earlier tool result")
        found = found[key]
    return found
