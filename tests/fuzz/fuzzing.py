"""The fuzz suite's machinery, shared by tests/fuzz and bench/fuzz.py: inputs drawn from
each registered task's payload JSON Schema (hypothesis-jsonschema) and mutated, sent
through the three ways in (a plain message on the task's queue, the client, the HTTP
API) of a local runtime provisioned from template.yaml, and what became of each input.

Every input ends in one outcome (a short label that bench/fuzz.py counts) and a list of
broken properties, empty when all hold:

- no unhandled error: the handler never fails its batch, the client raises only
  InvalidInput, the HTTP API answers no 5xx;
- bad input is never retried: its message is not left on the queue, its run has at most
  one attempt, and input that is certainly bad (an unknown field, a wrong type, a missing
  field, a naive timestamp) never completes;
- every message ends acknowledged or dead-lettered with a reason (the `error` attribute);
- no run is left non-terminal;
- records of another workspace are never changed (checked by `Tenants.unchanged`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from werkzeug.test import Client

from crmjobs import client, envelope, ledger, limits
from crmjobs.adapters.aws import client as aws_client
from crmjobs.config import dead_letter_queue_url, queue_url
from crmjobs.errors import InvalidInput
from crmjobs.models import Agent, Campaign, KnowledgeItem, Prospect, TriggerKey, Workspace
from crmjobs.schemas import payload_schema
from crmjobs.tasks import SYSTEM_WORKSPACE, TASKS, UnknownTask
from crmjobs_local.http_api import LocalHttpApi

TASK_NAMES = tuple(TASKS)
#: Mutations every task gets; the others apply only where the schema has what they change.
KINDS = ("valid", "valid_in_workspace", "unknown_field", "wrong_type", "huge_string",
         "odd_unicode")
#: Kinds whose input no task may accept.
CERTAINLY_BAD = {"unknown_field", "wrong_type", "missing_field", "naive_timestamp"}
#: How long a run may take to finish after its message was handled (a bulk run's state
#: machine goes on in moto's executor).
SETTLE_SECONDS = 30

ODD_STRINGS = (
    "", " ", "\x00", "\u200b", "\u202e-rtl", "e\u0301", "\U0001f600", "\ud800", "x" * 3000,
    "../../etc", "ws:1", "_system", "\n", "NaN", "null", "<script>",
)
NAIVE_TIMESTAMPS = (
    "2026-11-30T10:00:00", "2026-11-30", "1795917600", 1795917600, "30/11/2026 10:00",
    "2026-13-45T99:00:00Z", "not a date",
)
NON_OBJECT_BODIES = (
    "", "not json", "[]", "null", "42", '"text"', "{", '{"runId": "", "payload": {}}',
)
HUGE_SIZES = (70_000, 200_000)


@dataclass(frozen=True)
class Tenants:
    """Workspace `mine` (enterprise: slots never make a run wait) and another one whose
    records carry the ids the "other workspace" inputs name: no input may change them."""

    mine: str
    theirs: str
    #: payload field -> id of the other workspace's record of that kind
    their_ids: dict[str, str] = field(default_factory=dict)

    @classmethod
    def seed(cls, prefix: str) -> Tenants:
        mine, theirs = f"{prefix}-a", f"{prefix}-b"
        Workspace(id=mine, name="Fuzz A", subscription_tier="enterprise").save()
        # Inactive, so the system-wide jobs (the nightly scoring) leave its records alone.
        Workspace(id=theirs, name="Fuzz B", subscription_tier="enterprise", is_active=False).save()
        Prospect(workspace_id=theirs, id="p-b", name="Theirs", email="b@example.com").save()
        KnowledgeItem(workspace_id=theirs, id="k-b", title="Theirs", content="secret").save()
        Campaign(workspace_id=theirs, id="c-b", name="Theirs").save()
        Agent(workspace_id=theirs, id="a-b", name="Theirs").save()
        ids = {"prospectId": "p-b", "itemId": "k-b", "campaignId": "c-b", "agentId": "a-b"}
        return cls(mine, theirs, ids)

    def snapshot(self) -> dict[str, Any]:
        records = (
            Prospect.get(self.theirs, "p-b"),
            KnowledgeItem.get(self.theirs, "k-b"),
            Campaign.get(self.theirs, "c-b"),
            Agent.get(self.theirs, "a-b"),
        )
        return {type(r).__name__: r.serialize() for r in records}


# --- inputs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FuzzInput:
    task: str
    kind: str
    payload: Any
    #: plain path: the raw body when it is not the payload's JSON
    raw_body: str | None = None
    #: plain path: message attributes; client and HTTP: trigger options
    options: dict[str, Any] = field(default_factory=dict)

    def body(self) -> str:
        return self.raw_body if self.raw_body is not None else json.dumps(self.payload)


def _schema(task: str) -> dict[str, Any]:
    return payload_schema(task)


def _string_fields(schema: dict[str, Any]) -> list[str]:
    def is_string(prop: dict[str, Any]) -> bool:
        options = prop.get("anyOf", [prop])
        return any(option.get("type") == "string" for option in options)

    return [name for name, prop in schema["properties"].items() if is_string(prop)]


def _timestamp_fields(schema: dict[str, Any]) -> list[str]:
    return [
        name
        for name, prop in schema["properties"].items()
        if any(o.get("format") == "date-time" for o in prop.get("anyOf", [prop]))
    ]


def _wrong_value(prop: dict[str, Any]) -> st.SearchStrategy[Any]:
    types = {option.get("type") for option in prop.get("anyOf", [prop])}
    pool = {
        "string": st.text(max_size=5),
        "integer": st.integers(-5, 5),
        "number": st.floats(allow_nan=False, allow_infinity=False),
        "boolean": st.booleans(),
        "object": st.just({"a": 1}),
        "array": st.just(["x"]),
    }
    wrong = [strategy for name, strategy in pool.items() if name not in types]
    if "integer" in types or "number" in types:  # a number is not a boolean in JSON
        wrong = [s for s in wrong if s is not pool["boolean"]]
    return st.one_of(wrong)


def kinds_for(task: str) -> tuple[str, ...]:
    schema = _schema(task)
    kinds = list(KINDS)
    if schema.get("required"):
        kinds.append("missing_field")
    if _timestamp_fields(schema):
        kinds.append("naive_timestamp")
    if "workspaceId" in schema["properties"] and set(schema["properties"]) - {"workspaceId"}:
        kinds.append("other_workspace")
    return tuple(kinds)


@st.composite
def payloads(draw: st.DrawFn, task: str, tenants: Tenants) -> tuple[str, dict[str, Any]]:
    """(kind, payload): one drawn from the task's JSON Schema, mutated by one kind."""
    schema = _schema(task)
    properties = schema["properties"]
    payload = dict(draw(from_schema(schema)))
    kind = draw(st.sampled_from(kinds_for(task)))
    if kind == "valid_in_workspace" and "workspaceId" in properties:
        payload["workspaceId"] = tenants.mine
    elif kind == "unknown_field":
        name = draw(st.text(min_size=1, max_size=20).filter(lambda n: n not in properties))
        payload[name] = draw(st.one_of(st.none(), st.integers(), st.text(max_size=10)))
    elif kind == "wrong_type":
        name = draw(st.sampled_from(sorted(properties)))
        payload[name] = draw(_wrong_value(properties[name]))
    elif kind == "missing_field":
        payload.pop(draw(st.sampled_from(schema["required"])), None)
    elif kind == "huge_string":
        strings = _string_fields(schema)
        name = draw(st.sampled_from(strings)) if strings else "padding"
        payload[name] = "x" * draw(st.sampled_from(HUGE_SIZES))
    elif kind == "odd_unicode":
        strings = _string_fields(schema)
        if strings:
            payload[draw(st.sampled_from(strings))] = draw(st.sampled_from(ODD_STRINGS))
    elif kind == "naive_timestamp":
        payload[draw(st.sampled_from(_timestamp_fields(schema)))] = draw(
            st.sampled_from(NAIVE_TIMESTAMPS)
        )
    elif kind == "other_workspace":
        payload["workspaceId"] = tenants.mine
        for name, their_id in tenants.their_ids.items():
            if name in properties:
                payload[name] = their_id
    return kind, payload


_IDEMPOTENCY_KEYS = st.one_of(
    st.sampled_from(["fuzz-key-1", "fuzz-key-2"]), st.just(""), st.just("k" * 3000)
)


@st.composite
def plain_messages(draw: st.DrawFn, task: str, tenants: Tenants) -> FuzzInput:
    """A producer's message: a (mutated) payload, or a body that is not one, sometimes
    with an idempotencyKey attribute."""
    if draw(st.integers(0, 9)) == 0:
        kind, payload = "not_a_payload", None
        raw = draw(st.sampled_from(NON_OBJECT_BODIES + ('{"runId": "' + "r" * 3000 + '"}',)))
        raw = raw if "runId\": \"r" not in raw else raw[:-1] + ', "payload": {}}'
    else:
        (kind, payload), raw = draw(payloads(task, tenants)), None
    options: dict[str, Any] = {}
    if draw(st.integers(0, 4)) == 0:
        options[envelope.IDEMPOTENCY_KEY_ATTRIBUTE] = draw(_IDEMPOTENCY_KEYS)
    return FuzzInput(task, kind, payload, raw, options)


@st.composite
def triggers(draw: st.DrawFn, task: str, tenants: Tenants) -> FuzzInput:
    """A trigger of the client or the HTTP API: a (mutated) payload and options, some of
    them out of their documented limits."""
    kind, payload = draw(payloads(task, tenants))
    options: dict[str, Any] = {}
    option = draw(st.sampled_from(["none", "tags", "delay", "key"]))
    if option == "tags":
        options["tags"] = draw(
            st.one_of(
                st.lists(st.text(min_size=1, max_size=20), max_size=3),
                st.just("import"),
                st.just([""]),
                st.just(["t" * 450_000]),
                st.just([f"t{n}" for n in range(11)]),
            )
        )
    elif option == "delay":
        options["delay"] = draw(st.sampled_from([0, 0.4, -1, "10", 10**10, True]))
    elif option == "key":
        options["idempotency_key"] = draw(_IDEMPOTENCY_KEYS)
    return FuzzInput(task, kind, payload, options=options)


# --- sending and settling ------------------------------------------------------------------


@dataclass
class Result:
    outcome: str
    broken: list[str] = field(default_factory=list)


def _receive(url: str) -> list[dict[str, Any]]:
    return aws_client("sqs").receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=0,
        MessageSystemAttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])


def _drain_once(stack: Any, task: str, broken: list[str]) -> list[Any]:
    """One receive of the task's queue, handled by its function as Lambda would."""
    messages = _receive(queue_url(task))
    if not messages:
        return []
    outcome = stack.source_for_task(task).process(messages)
    if outcome.failure_reason:
        broken.append(f"unhandled error in the handler: {outcome.failure_reason}")
    return [outcome]


def _take_dead_letters(task: str) -> list[dict[str, Any]]:
    sqs = aws_client("sqs")
    url = dead_letter_queue_url(task)
    taken = []
    while batch := _receive(url):
        taken.extend(batch)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in
                     enumerate(batch)],
        )
    return taken


def settle(stack: Any, task: str, run_id: str, broken: list[str]) -> Any:
    """The run once finished, handling the task's queue meanwhile (slot waits, a state
    machine's retry); a run still unfinished after SETTLE_SECONDS is a broken property."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        run = ledger.get(run_id)
        if run is None or run.status in ledger.FINISHED:
            return run
        if time.monotonic() > deadline:
            broken.append(f"run {run_id} left {run.status}")
            return run
        if not _drain_once(stack, task, broken):
            time.sleep(0.05)


def _run_outcome(run: Any, item: FuzzInput, broken: list[str]) -> str:
    if run.status == "FAILED":
        kind = (run.error or {}).get("type", "?")
        if int(run.attempts or 0) > 1 and kind in ("InvalidInput", "NotFound"):
            broken.append(f"bad input retried: {int(run.attempts)} attempts ({kind})")
        label = f"FAILED {kind}"
    else:
        label = str(run.status)
    if item.kind in CERTAINLY_BAD and run.status == "COMPLETED":
        broken.append(f"{item.kind} input completed: {item.payload!r:.300}")
    return label


def _run_of_key(item: FuzzInput) -> Any:
    """The run an earlier message with the same idempotencyKey attribute recorded."""
    key = item.options.get(envelope.IDEMPOTENCY_KEY_ATTRIBUTE)
    payload = item.payload if isinstance(item.payload, dict) else {}
    workspace = payload.get("workspaceId")
    workspace = workspace if limits.is_entity_id(workspace) else SYSTEM_WORKSPACE
    if not key:
        return None
    try:
        guard = TriggerKey.get(TriggerKey.key_for(item.task, workspace, key))
    except TriggerKey.DoesNotExist:
        return None
    return ledger.get(guard.run_id)


def send_plain(stack: Any, item: FuzzInput) -> Result:
    """A producer's message on the task's queue, handled until it is acknowledged or
    dead-lettered and its run finished."""
    broken: list[str] = []
    attributes = {
        name: {"DataType": "String", "StringValue": value}
        for name, value in item.options.items()
        if value  # SQS refuses an empty attribute value: the producer cannot send it
    }
    try:
        message_id = aws_client("sqs").send_message(
            QueueUrl=queue_url(item.task), MessageBody=item.body(), MessageAttributes=attributes
        )["MessageId"]
    except ClientError as error:
        return Result(f"refused by SQS ({error.response['Error']['Code']})")
    deadline = time.monotonic() + SETTLE_SECONDS
    handled = None
    while handled is None:
        for outcome in _drain_once(stack, item.task, broken):
            ids = [record["messageId"] for record in outcome.event["Records"]]
            if message_id in ids:
                handled = outcome
        if handled is None and time.monotonic() > deadline:
            return Result("never received", [*broken, "message never received"])
    if message_id in handled.retried:
        broken.append("message left on the queue for another attempt")
    run_id = ledger.run_id_for_message(item.task, message_id)
    dead = [
        m
        for m in _take_dead_letters(item.task)
        if m.get("MessageAttributes", {}).get(envelope.DEAD_LETTER_RUN_ATTRIBUTE, {}).get(
            "StringValue"
        )
        == run_id
        or m["Body"] == item.body()
    ]
    run = settle(stack, item.task, run_id, broken)
    if dead:
        reason = dead[0].get("MessageAttributes", {}).get(envelope.DEAD_LETTER_ERROR_ATTRIBUTE)
        if not (reason and reason.get("StringValue")):
            broken.append("dead-lettered without a reason")
        rejected = reason and reason.get("StringValue", "").startswith("rejected")
        if run is not None and run.status != "FAILED":
            broken.append(f"dead-lettered message's run is {run.status}")
        return Result("dead-lettered (rejected)" if rejected else "dead-lettered", broken)
    if run is None:
        if _run_of_key(item) is not None:  # a repeat of a key an earlier message took
            return Result("acknowledged duplicate", broken)
        return Result("no run, not dead-lettered", [*broken, "acknowledged without a run"])
    return Result(_run_outcome(run, item, broken), broken)


def _finish_accepted(stack: Any, item: FuzzInput, run_id: str, broken: list[str]) -> str:
    run = ledger.get(run_id)
    if run is not None and run.status == "DELAYED":
        client.cancel(run_id)  # a fuzz run is not waited for for hours
        return "accepted DELAYED, canceled"
    run = settle(stack, item.task, run_id, broken)
    return _run_outcome(run, item, broken) if run is not None else "accepted, no run"


def send_client(stack: Any, item: FuzzInput) -> Result:
    broken: list[str] = []
    try:
        view = client.trigger(item.task, item.payload, **item.options)
    except InvalidInput:
        return Result("rejected InvalidInput")
    except UnknownTask:
        return Result("rejected UnknownTask", ["a registered task is unknown"])
    except Exception as error:  # the property: nothing else escapes
        return Result(f"unhandled {type(error).__name__}", [f"client raised {error!r:.300}"])
    if view.deduplicated:
        return Result("deduplicated")
    return Result(_finish_accepted(stack, item, view.id, broken), broken)


def http_client(stack: Any) -> Client:
    return Client(LocalHttpApi.for_stack(stack))


_HTTP_OPTIONS = {"tags": "tags", "delay": "delaySeconds", "idempotency_key": "idempotencyKey"}


def send_http(stack: Any, api: Client, item: FuzzInput) -> Result:
    broken: list[str] = []
    body = {"payload": item.payload, **{_HTTP_OPTIONS[k]: v for k, v in item.options.items()}}
    response = api.post(f"/tasks/{item.task}/runs", json=body)
    if response.status_code >= 500:
        return Result(f"HTTP {response.status_code}", [f"5xx: {response.get_data()[:300]!r}"])
    answer = response.get_json()
    if response.status_code in (200, 202):
        if response.status_code == 200:
            return Result("HTTP 200 deduplicated")
        return Result(f"HTTP 202, {_finish_accepted(stack, item, answer['id'], broken)}", broken)
    if not (isinstance(answer, dict) and answer.get("message")):
        broken.append(f"a {response.status_code} without a message")
    return Result(f"HTTP {response.status_code}", broken)
