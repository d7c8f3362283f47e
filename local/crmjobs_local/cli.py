"""The `crmjobs` command line: run the app locally, trigger tasks, manage runs and DLQs.

    crmjobs dev                       # the whole app locally, until Ctrl-C
    crmjobs demo                      # seed a demo CRM and run every built task
    crmjobs trigger score-lead --payload '{"workspaceId": "w1", "prospectId": "p1"}' --wait
    crmjobs runs list --workspace w1 --status FAILED
    crmjobs dlq redrive score-lead --stack crmjobs-prod --profile prod

Where the commands act: moto keeps its state in memory, so local state lives only in the
process of a running `crmjobs dev`. That process writes `<data-dir>/endpoint.json` (its
endpoint and the environment the functions get) and the one-shot commands read it. With
`--stack NAME` they act on a deployed stack instead: the same environment is built from
template.yaml's Globals, resolved against the stack's resources in CloudFormation.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crmjobs.tasks import TASKS
from crmjobs_local.project import (
    ENDPOINT_FILE,
    ProjectNotFound,
    default_data_dir,
    dev_server_endpoint_file,
    find_template,
)
from crmjobs_local.stack import reset_cached_clients

NO_DEV_SERVER = "start `crmjobs dev` first or pass --stack"
#: Settings of every local process the CLI starts: no metric lines, no request log.
QUIET_SETTINGS = {"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING"}
_STATUS_STYLES = {
    "QUEUED": "cyan",
    "DELAYED": "blue",
    "EXECUTING": "yellow",
    "COMPLETED": "green",
    "FAILED": "red",
    "CANCELED": "magenta",
}
_SQS_RECEIVE_LIMIT = 10


class CliError(Exception):
    """A problem the user can fix (no dev server, bad arguments); printed without a trace."""


# --------------------------------------------------------------------------- targets


@dataclass
class Target:
    """Where a command acts: the environment to apply, and for a dev server its details."""

    environment: dict[str, str]
    description: str
    dev_server: dict[str, Any] | None = None
    unresolved: list[str] = field(default_factory=list)


def local_environment(stack: Any) -> dict[str, str]:
    """What a process needs to act on a running LocalRuntime: endpoint, names and settings."""
    from crmjobs_local.stack import LOCAL_CREDENTIALS

    assert stack.resources is not None and stack.endpoint_url is not None
    return {
        **LOCAL_CREDENTIALS,
        "AWS_ENDPOINT_URL": stack.endpoint_url,
        **stack.resources.environment(),
        **stack.settings,
        **QUIET_SETTINGS,
    }


def endpoint_document(stack: Any) -> dict[str, Any]:
    """The contents of endpoint.json for a started LocalRuntime (server mode)."""
    resources = stack.resources
    return {
        "endpoint": stack.endpoint_url,
        "pid": os.getpid(),
        "dataDir": str(stack.data_dir),
        "startedAt": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": local_environment(stack),
        "functions": {
            function.logical_id: {
                "name": function.name,
                "arn": function.arn,
                "handlerFile": str(function.handler_file),
                "handlerName": function.handler_name,
                "timeoutSeconds": function.timeout_seconds,
                "memoryMb": function.memory_mb,
                "environment": {**function.environment, **stack.settings},
            }
            for function in resources.functions.values()
        },
        "schedules": {
            schedule.logical_id: {"name": schedule.name, "group": schedule.group_name}
            for schedule in resources.schedules.values()
        },
    }


def write_endpoint_file(stack: Any) -> Path:
    path = Path(stack.data_dir) / ENDPOINT_FILE
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(endpoint_document(stack), indent=2))
    temporary.replace(path)
    return path


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=3):
            return True
    except (urllib.error.URLError, OSError):
        return False


def dev_server_target(data_dir: Path | None) -> Target:
    """The dev server whose endpoint.json is in `data_dir` (default: this project's)."""
    try:
        path = Path(data_dir) / ENDPOINT_FILE if data_dir else dev_server_endpoint_file()
    except ProjectNotFound as error:
        raise CliError(f"{error}; {NO_DEV_SERVER}") from None
    if not path.is_file():
        raise CliError(f"no {path}: {NO_DEV_SERVER}")
    document = json.loads(path.read_text())
    if not _answers(document["endpoint"]):
        raise CliError(
            f"no dev server answers at {document['endpoint']} ({path} is stale): {NO_DEV_SERVER}"
        )
    return Target(
        environment=document["environment"],
        description=f"dev server {document['endpoint']}",
        dev_server=document,
    )


def _resource_attributes(
    resource_type: str, physical_id: str, region: str, account_id: str
) -> dict[str, str]:
    """The GetAtt values the template's Globals use, derived from a physical id."""
    if resource_type == "AWS::SQS::Queue":
        name = physical_id.rstrip("/").rsplit("/", 1)[-1]
        return {
            "Arn": f"arn:aws:sqs:{region}:{account_id}:{name}",
            "QueueName": name,
            "QueueUrl": physical_id,
        }
    if resource_type == "AWS::IAM::Role":
        return {"Arn": f"arn:aws:iam::{account_id}:role/{physical_id}"}
    if resource_type == "AWS::DynamoDB::Table":
        return {"Arn": f"arn:aws:dynamodb:{region}:{account_id}:table/{physical_id}"}
    if resource_type == "AWS::StepFunctions::StateMachine":
        return {"Arn": physical_id, "Name": physical_id.rsplit(":", 1)[-1]}
    if resource_type == "AWS::Scheduler::ScheduleGroup":
        return {"Arn": f"arn:aws:scheduler:{region}:{account_id}:schedule-group/{physical_id}"}
    return {}


def deployed_environment(
    session: Any, stack_name: str, template_path: Path
) -> tuple[dict[str, str], list[str]]:
    """The environment the deployed functions get, resolved from the stack's resources.

    Every variable of template.yaml's Globals (and the functions' own variables, such as
    the state machine ARNs) is resolved against the stack's parameters and physical ids;
    returns (environment, names that could not be resolved).
    """
    from crmjobs_local.template import NO_VALUE, Template, UnresolvedReference, resolve

    cloudformation = session.client("cloudformation")
    [stack] = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    region = session.region_name
    account_id = stack["StackId"].split(":")[4]
    template = Template.load(template_path)
    declared = template.document.get("Parameters") or {}
    parameters = {
        parameter["ParameterKey"]: parameter["ParameterValue"]
        for parameter in stack.get("Parameters", [])
        if parameter["ParameterKey"] in declared
    }
    context = template.context(
        region=region, account_id=account_id, stack_name=stack_name, parameters=parameters
    )
    paginator = cloudformation.get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=stack_name):
        for resource in page["StackResourceSummaries"]:
            logical_id, physical_id = (
                resource["LogicalResourceId"],
                resource.get("PhysicalResourceId"),
            )
            if not physical_id:
                continue
            context.references[logical_id] = physical_id
            attributes = _resource_attributes(
                resource["ResourceType"], physical_id, region, account_id
            )
            for attribute, value in attributes.items():
                context.attributes[(logical_id, attribute)] = value
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    if outputs.get("OpenSearchEndpoint"):
        context.attributes[("OpenSearchDomain", "DomainEndpoint")] = outputs[
            "OpenSearchEndpoint"
        ].removeprefix("https://")

    variables: dict[str, Any] = {}
    for logical_id, resource in template.resources.items():
        if resource.get("Type") == "AWS::Serverless::Function":
            variables.update(template.function(logical_id).environment)
    environment: dict[str, str] = {}
    unresolved: list[str] = []
    for name, value in variables.items():
        try:
            resolved = resolve(value, context)
        except UnresolvedReference:
            unresolved.append(name)
            continue
        if resolved is not NO_VALUE:
            environment[name] = str(resolved)
    environment.update({"AWS_REGION": region, "AWS_DEFAULT_REGION": region})
    return environment, unresolved


def deployed_target(args: argparse.Namespace) -> Target:
    import boto3

    session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
    if session.region_name is None:
        raise CliError("no AWS region: pass --region or configure one for the profile")
    template = args.template or find_template()
    environment, unresolved = deployed_environment(session, args.stack, template)
    if args.profile:
        environment["AWS_PROFILE"] = args.profile
    return Target(
        environment=environment,
        description=f"stack {args.stack} ({session.region_name})",
        unresolved=unresolved,
    )


def resolve_target(args: argparse.Namespace) -> Target:
    return deployed_target(args) if args.stack else dev_server_target(args.data_dir)


@contextmanager
def applied(target: Target) -> Iterator[Target]:
    """The target's environment in os.environ while the command runs (restored after)."""
    saved = dict(os.environ)
    os.environ.update(target.environment)
    for name in target.unresolved:  # not in this stack: no leftover from the shell applies
        os.environ.pop(name, None)
    reset_cached_clients()
    try:
        yield target
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_cached_clients()


# --------------------------------------------------------------------------- output helpers


def _console(stream: Any = None) -> Any:
    from rich.console import Console

    stream = stream or sys.stdout
    # Piped output is not wrapped at 80 columns, so ids stay whole.
    return Console(file=stream, width=None if stream.isatty() else 200)


def _status_text(status: str) -> str:
    return f"[{_STATUS_STYLES.get(status, 'white')}]{status}[/]"


def _duration(view: Any) -> str:
    if not (view.startedAt and view.finishedAt):
        return ""
    started = datetime.fromisoformat(view.startedAt.replace("Z", "+00:00"))
    finished = datetime.fromisoformat(view.finishedAt.replace("Z", "+00:00"))
    return f"{(finished - started).total_seconds():.2f}s"


def runs_table(views: list[Any], title: str | None = None) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for column in ("run", "task", "status", "attempts", "tags", "created", "took", "error"):
        table.add_column(column, no_wrap=column in ("run", "created"))
    for view in views:
        table.add_row(
            view.id,
            view.task,
            _status_text(view.status),
            f"{view.attempts}/{view.maxAttempts}",
            ", ".join(view.tags),
            view.createdAt,
            _duration(view),
            (view.error or {}).get("message", "") if view.status == "FAILED" else "",
        )
    return table


def _load_json_argument(text: str) -> Any:
    """A JSON value given inline or as @file."""
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise CliError(f"no such file: {path}")
        text = path.read_text()
    try:
        return json.loads(text)
    except ValueError as error:
        raise CliError(f"not valid JSON: {error}") from None


def wait_for_run(console: Any, run_id: str, timeout: float) -> Any:
    """Poll the run until it finishes, with a live status line; the final view."""
    from crmjobs import client, ledger

    deadline = time.monotonic() + timeout
    with console.status(f"waiting for {run_id}") as status:
        while True:
            view = client.retrieve(run_id)
            status.update(f"{run_id}: {view.status} (attempt {view.attempts}/{view.maxAttempts})")
            if view.status in ledger.FINISHED or time.monotonic() >= deadline:
                return view
            time.sleep(0.25)


# --------------------------------------------------------------------------- dev


def _silence_request_logs() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)


def _batch_line(console: Any, function: str, outcome: Any) -> None:
    records = len(outcome.event.get("Records", []))
    state = "[green]ok[/]" if outcome.succeeded else f"[red]failed: {outcome.failure_reason}[/]"
    console.print(
        f"{datetime.now():%H:%M:%S} [bold]{function}[/] {records} record(s), "
        f"{len(outcome.deleted)} deleted, {len(outcome.retried)} retried, "
        f"{outcome.duration_s * 1000:.0f} ms {state}"
    )


def _fire_line(console: Any, record: Any) -> None:
    result = f"[red]{record.error}[/]" if record.error else f"message {record.message_id}"
    console.print(
        f"{datetime.now():%H:%M:%S} [bold]schedule {record.schedule_name}[/] fired for "
        f"{record.scheduled_time:%Y-%m-%dT%H:%M:%SZ}: {result}"
    )


class _Interrupted(Exception):
    pass


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise _Interrupted


def cmd_dev(args: argparse.Namespace, console: Any) -> int:
    from crmjobs_local.outbox import Outbox
    from crmjobs_local.stack import LocalRuntime

    _silence_request_logs()
    template = args.template or find_template()
    data_dir = args.data_dir or default_data_dir(template)
    try:
        running = dev_server_target(data_dir)
    except CliError:
        running = None
    if running is not None:
        raise CliError(f"a {running.description} already serves {data_dir}")
    os.environ.update(QUIET_SETTINGS)
    stack = LocalRuntime(
        template,
        data_dir=data_dir,
        on_invoke=lambda function, outcome: _batch_line(console, function, outcome),
        on_fire=lambda record: _fire_line(console, record),
    )
    # Explicit handlers: a background process may have inherited an ignored SIGINT.
    previous_handlers = {
        number: signal.signal(number, _raise_interrupt)
        for number in (signal.SIGINT, signal.SIGTERM)
    }
    endpoint_path: Path | None = None
    try:
        with console.status("provisioning template.yaml into moto"):
            stack.start()
        assert stack.resources is not None
        endpoint_path = write_endpoint_file(stack)
        console.print(f"[bold green]crmjobs dev[/] serving at [bold]{stack.endpoint_url}[/]")
        console.print(f"data dir {stack.data_dir}; endpoint file {endpoint_path}")
        console.print(
            f"{len(stack.resources.functions)} functions, {len(stack.resources.queues)} queues, "
            f"{len(stack.resources.tables)} tables, "
            f"{len(stack.resources.state_machines)} state machines, "
            f"schedules: {', '.join(s.name for s in stack.resources.schedules.values())}"
        )
        if stack.resources.unsupported:
            console.print("[yellow]not emulated locally:[/]")
            for missing in stack.resources.unsupported:
                console.print(f"  {missing}")
        outbox = Outbox(stack.data_dir / "outbox")
        stack.serve()
        console.print("polling queues, streams and schedules; Ctrl-C stops")
        while True:
            time.sleep(1)
            for path in outbox.sync():
                console.print(f"{datetime.now():%H:%M:%S} [bold]mail[/] {path}")
    except (KeyboardInterrupt, _Interrupted):
        console.print("stopping")
    finally:
        for number, handler in previous_handlers.items():
            signal.signal(number, handler)
        if endpoint_path is not None:
            endpoint_path.unlink(missing_ok=True)
        stack.stop()
    return 0


# --------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace, console: Any) -> int:
    from crmjobs_local.demo import run_demo

    _silence_request_logs()
    if args.prospects < 1:
        raise CliError("--prospects must be at least 1")
    if args.data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="crmjobs-demo-"))
    else:
        data_dir = Path(args.data_dir)
        if data_dir.exists() and any(data_dir.iterdir()):
            raise CliError(f"{data_dir} is not empty; the demo needs a fresh data dir")
    os.environ.update(QUIET_SETTINGS)
    template = args.template or find_template()
    return run_demo(console, prospects=args.prospects, data_dir=data_dir, template=template)


# --------------------------------------------------------------------------- runs


def cmd_trigger(args: argparse.Namespace, console: Any) -> int:
    from crmjobs import client

    payload = _load_json_argument(args.payload)
    with applied(resolve_target(args)):
        view = client.trigger(
            args.task,
            payload,
            idempotency_key=args.idempotency_key,
            delay=args.delay,
            tags=args.tag or (),
        )
        note = " (an earlier run with this idempotency key)" if view.deduplicated else ""
        console.print(f"{view.id} {_status_text(view.status)}{note}")
        if not args.wait:
            return 0
        final = wait_for_run(console, view.id, args.timeout)
        console.print_json(final.model_dump_json())
        return 0 if final.status == "COMPLETED" else 1


def cmd_runs_list(args: argparse.Namespace, console: Any) -> int:
    from crmjobs import client

    with applied(resolve_target(args)):
        views = client.list_runs(
            args.workspace, task=args.task, status=args.status, tag=args.tag, limit=args.limit
        )
    console.print(runs_table(views, title=f"runs of {args.workspace} (newest first)"))
    return 0


def cmd_runs_show(args: argparse.Namespace, console: Any) -> int:
    from crmjobs import client

    with applied(resolve_target(args)):
        view = client.retrieve(args.run_id)
    console.print_json(view.model_dump_json())
    return 0


def cmd_runs_cancel(args: argparse.Namespace, console: Any) -> int:
    from crmjobs import client

    with applied(resolve_target(args)):
        view = client.cancel(args.run_id)
    console.print(f"{view.id} {_status_text(view.status)}")
    return 0


def cmd_runs_replay(args: argparse.Namespace, console: Any) -> int:
    from crmjobs import client

    with applied(resolve_target(args)):
        view = client.replay(args.run_id)
    console.print(f"{view.id} {_status_text(view.status)} (replay of {view.replayOf})")
    return 0


# --------------------------------------------------------------------------- dead letters


#: SQS's query-protocol code for a missing queue (the JSON protocol says QueueDoesNotExist).
_NON_EXISTENT_QUEUE = "AWS.SimpleQueueService.NonExistentQueue"


def _dead_letter_tasks(task: str | None) -> list[str]:
    """The tasks whose DLQ exists in the target (a deployed stack may predate some)."""
    from botocore.exceptions import ClientError

    from crmjobs import config
    from crmjobs.adapters.aws import client as aws_client

    def exists(name: str) -> bool:
        try:
            aws_client("sqs").get_queue_attributes(QueueUrl=config.dead_letter_queue_url(name))
        except ClientError as error:
            if error.response["Error"]["Code"] in ("QueueDoesNotExist", _NON_EXISTENT_QUEUE):
                return False
            raise
        return True

    names = [task] if task else list(TASKS)
    present = [name for name in names if exists(name)] if config.env("QUEUE_URL_PREFIX") else []
    if task and not present:
        raise CliError(f"no dead-letter queue is configured for {task}")
    return present


def _receive_all(sqs: Any, url: str, hide_seconds: int) -> list[dict[str, Any]]:
    """Every visible message of a queue, each hidden for `hide_seconds` once received."""
    messages: dict[str, dict[str, Any]] = {}
    while True:
        batch = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=_SQS_RECEIVE_LIMIT,
            VisibilityTimeout=hide_seconds,
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
        ).get("Messages", [])
        if not batch:
            return list(messages.values())
        messages.update({message["MessageId"]: message for message in batch})


def _make_visible(sqs: Any, url: str, messages: list[dict[str, Any]]) -> None:
    for start in range(0, len(messages), _SQS_RECEIVE_LIMIT):
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0}
                for n, message in enumerate(messages[start : start + _SQS_RECEIVE_LIMIT])
            ],
        )


def _attribute(message: dict[str, Any], name: str) -> str | None:
    value = message.get("MessageAttributes", {}).get(name)
    return value["StringValue"] if value else None


def cmd_dlq_list(args: argparse.Namespace, console: Any) -> int:
    from rich.table import Table

    from crmjobs import config
    from crmjobs.adapters.aws import client as aws_client

    table = Table(title="dead-lettered messages")
    for column in ("task", "message", "run", "error", "sent", "body"):
        table.add_column(column, no_wrap=column in ("message", "run"))
    with applied(resolve_target(args)):
        sqs = aws_client("sqs")
        for task in _dead_letter_tasks(args.task):
            url = config.dead_letter_queue_url(task)
            messages = _receive_all(sqs, url, hide_seconds=30)
            _make_visible(sqs, url, messages)
            for message in messages:
                sent = int(message.get("Attributes", {}).get("SentTimestamp", 0)) / 1000
                table.add_row(
                    task,
                    message["MessageId"],
                    _attribute(message, "runId") or "(plain message)",
                    _attribute(message, "error") or "",
                    f"{datetime.fromtimestamp(sent, UTC):%Y-%m-%d %H:%M:%S}" if sent else "",
                    message["Body"][:120],
                )
    console.print(table)
    console.print(f"{table.row_count} message(s)")
    return 0


def cmd_dlq_redrive(args: argparse.Namespace, console: Any) -> int:
    """Redrive is replay: the dead-lettered run is FAILED in the ledger, so re-sending its
    message would be skipped by the runtime. Each message with a runId becomes a new run
    (replayOf = the original); a plain message without one is sent to the queue again."""
    from crmjobs import client, config
    from crmjobs.adapters.aws import client as aws_client

    redriven = 0
    with applied(resolve_target(args)):
        sqs = aws_client("sqs")
        url = config.dead_letter_queue_url(args.task)
        for message in _receive_all(sqs, url, hide_seconds=300):
            run_id = _attribute(message, "runId")
            if run_id:
                view = client.replay(run_id)
                console.print(f"{run_id} -> replayed as {view.id} {_status_text(view.status)}")
            else:
                sent = sqs.send_message(
                    QueueUrl=config.queue_url(args.task), MessageBody=message["Body"]
                )
                console.print(f"{message['MessageId']} -> re-sent as message {sent['MessageId']}")
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            redriven += 1
    console.print(f"redrove {redriven} message(s) of {args.task}")
    return 0


# --------------------------------------------------------------------------- the rest


def cmd_schema(args: argparse.Namespace, console: Any) -> int:
    from crmjobs.schemas import schema_text

    sys.stdout.write(schema_text(args.task) + "\n")
    return 0


def cmd_search(args: argparse.Namespace, console: Any) -> int:
    from rich.table import Table

    from crmjobs.services.documents import search_knowledge

    with applied(resolve_target(args)):
        hits = search_knowledge(args.workspace, args.query, k=args.k)
    table = Table(title=f"{args.workspace}: {args.query!r}")
    for column in ("#", "score", "title", "item", "chunk"):
        table.add_column(column)
    for rank, hit in enumerate(hits, 1):
        table.add_row(
            str(rank), f"{hit.score:.3f}", hit.title, hit.item_id, " ".join(hit.chunk.split())
        )
    console.print(table)
    return 0


def _schedule_for(document: dict[str, Any], name: str) -> tuple[str, str, str]:
    """(logical id, name, group) of a schedule given by logical id or name."""
    for logical_id, schedule in document["schedules"].items():
        if name in (logical_id, schedule["name"]):
            return logical_id, schedule["name"], schedule["group"]
    known = ", ".join(s["name"] for s in document["schedules"].values())
    raise CliError(f"no schedule {name!r}; known: {known}")


def cmd_fire(args: argparse.Namespace, console: Any) -> int:
    from crmjobs import ledger
    from crmjobs.adapters.aws import client as aws_client
    from crmjobs_local.schedules import LocalScheduler

    target = dev_server_target(args.data_dir)
    assert target.dev_server is not None
    logical_id, name, group = _schedule_for(target.dev_server, args.schedule)
    with applied(target):
        scheduler = LocalScheduler(aws_client("scheduler"), aws_client("sqs"))
        record = scheduler.fire_now(name, group)
    console.print(f"fired {name}: message {record.message_id}")
    task = next(
        (spec.name for spec in TASKS.values() if f"{spec.resource_prefix}Schedule" == logical_id),
        None,
    )
    if task and record.message_id:
        console.print(f"its run: {ledger.run_id_for_message(task, record.message_id)}")
    return 0


def _names_function(
    name: str, logical_id: str, function_name: str, arn: str, handler_file: str
) -> bool:
    """A function is named by its logical id, name, ARN or folder (functions/score_lead)."""
    return name in (logical_id, function_name, arn, Path(handler_file).parent.name)


def _invoke_on_dev_server(target: Target, name: str, event: Any) -> Any:
    from crmjobs import config
    from crmjobs_local.context import LambdaContext, load_handler

    assert target.dev_server is not None
    for logical_id, function in target.dev_server["functions"].items():
        if _names_function(
            name, logical_id, function["name"], function["arn"], function["handlerFile"]
        ):
            break
    else:
        raise CliError(f"no function {name!r} in the dev server's stack")
    handler = load_handler(function["handlerFile"], function["handlerName"])
    context = LambdaContext(
        function_name=function["name"],
        invoked_function_arn=function["arn"],
        memory_limit_in_mb=function["memoryMb"],
        timeout_seconds=function["timeoutSeconds"],
    )
    with applied(target), config.function_environment(function["environment"]):
        return handler(event, context)


def cmd_invoke(args: argparse.Namespace, console: Any) -> int:
    """Like `sam local invoke`, without Docker: against a running dev server when there is
    one (its data), else in a fresh in-process stack."""
    from crmjobs_local.stack import LocalRuntime

    event = _load_json_argument(f"@{args.event}")
    try:
        target = dev_server_target(args.data_dir)
    except CliError:
        target = None
    if target is not None:
        result = _invoke_on_dev_server(target, args.function, event)
    else:
        os.environ.update(QUIET_SETTINGS)
        with tempfile.TemporaryDirectory(prefix="crmjobs-invoke-") as data_dir:
            with LocalRuntime(args.template, data_dir=Path(data_dir), in_process=True) as stack:
                assert stack.resources is not None
                matching = [
                    function.logical_id
                    for function in stack.resources.functions.values()
                    if _names_function(
                        args.function,
                        function.logical_id,
                        function.name,
                        function.arn,
                        str(function.handler_file),
                    )
                ]
                if not matching:
                    raise CliError(f"no function {args.function!r} in {stack.template}")
                result = stack.invoke(matching[0], event)
    sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
    return 0


# --------------------------------------------------------------------------- parser


def _add_local_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="the dev server's data dir, where endpoint.json is (default: $CRMJOBS_DATA_DIR,"
        " else the .crmjobs of the current folder or above, else the one beside the template)",
    )
    parser.add_argument(
        "--template",
        type=Path,
        help="the SAM template (default: $CRMJOBS_TEMPLATE, else template.yaml in the current"
        " folder or above)",
    )


def _target_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    _add_local_options(parent)
    group = parent.add_argument_group("deployed stack (default: the local dev server)")
    group.add_argument("--stack", help="act on this deployed CloudFormation stack")
    group.add_argument("--profile", help="AWS profile for --stack")
    group.add_argument("--region", help="AWS region for --stack")
    return parent


def build_parser() -> argparse.ArgumentParser:
    from crmjobs.ledger import RunStatus

    parser = argparse.ArgumentParser(
        prog="crmjobs", description="Run the CRM's background jobs locally and manage runs."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    target = _target_options()
    tasks = sorted(TASKS)

    dev = commands.add_parser("dev", help="run the whole app locally until Ctrl-C")
    _add_local_options(dev)
    dev.set_defaults(run=cmd_dev)

    demo = commands.add_parser("demo", help="seed a demo CRM and run every built task")
    demo.add_argument("--prospects", type=int, default=300, help="prospects of the demo workspace")
    demo.add_argument("--data-dir", type=Path, default=None, help="a fresh dir (default: temp)")
    demo.add_argument("--template", type=Path, help="the SAM template (default: the project's)")
    demo.set_defaults(run=cmd_demo)

    trigger = commands.add_parser("trigger", parents=[target], help="trigger a task")
    trigger.add_argument("task", choices=tasks, metavar="TASK")
    trigger.add_argument("--payload", required=True, help="JSON, or @file")
    trigger.add_argument("--idempotency-key")
    trigger.add_argument("--delay", type=float, help="seconds before the run starts")
    trigger.add_argument("--tag", action="append", help="a tag (repeatable)")
    trigger.add_argument("--wait", action="store_true", help="wait until the run finishes")
    trigger.add_argument("--timeout", type=float, default=300, help="seconds --wait waits")
    trigger.set_defaults(run=cmd_trigger)

    runs = commands.add_parser("runs", help="list, show, cancel or replay runs")
    run_commands = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    listing = run_commands.add_parser("list", parents=[target], help="a workspace's runs")
    listing.add_argument("--workspace", required=True)
    listing.add_argument("--task", choices=tasks, metavar="TASK")
    listing.add_argument("--status", choices=[str(status) for status in RunStatus])
    listing.add_argument("--tag")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(run=cmd_runs_list)
    for action, handler, description in (
        ("show", cmd_runs_show, "one run as JSON"),
        ("cancel", cmd_runs_cancel, "cancel a QUEUED or DELAYED run"),
        ("replay", cmd_runs_replay, "a new run with the same task and payload"),
    ):
        sub = run_commands.add_parser(action, parents=[target], help=description)
        sub.add_argument("run_id", metavar="ID")
        sub.set_defaults(run=handler)

    dlq = commands.add_parser("dlq", help="dead-lettered messages")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    dlq_list = dlq_commands.add_parser("list", parents=[target], help="messages in the DLQs")
    dlq_list.add_argument("task", nargs="?", choices=tasks, metavar="TASK")
    dlq_list.set_defaults(run=cmd_dlq_list)
    redrive = dlq_commands.add_parser(
        "redrive",
        parents=[target],
        help="replay each dead-lettered run (its ledger run is FAILED, so redrive = replay)",
    )
    redrive.add_argument("task", choices=tasks, metavar="TASK")
    redrive.set_defaults(run=cmd_dlq_redrive)

    schema = commands.add_parser("schema", help="a task's payload JSON Schema")
    schema.add_argument("task", choices=tasks, metavar="TASK")
    schema.set_defaults(run=cmd_schema)

    search = commands.add_parser("search", parents=[target], help="search a workspace's documents")
    search.add_argument("workspace")
    search.add_argument("query")
    search.add_argument("-k", type=int, default=5, help="hits to show")
    search.set_defaults(run=cmd_search)

    invoke = commands.add_parser("invoke", help="invoke a function once (no Docker)")
    _add_local_options(invoke)
    invoke.add_argument(
        "function", metavar="FUNCTION", help="logical id, function name or folder (score_lead)"
    )
    invoke.add_argument("--event", required=True, type=Path, help="the event JSON file")
    invoke.set_defaults(run=cmd_invoke)

    fire = commands.add_parser("fire", help="fire a schedule of the dev server now")
    _add_local_options(fire)
    fire.add_argument("schedule", metavar="SCHEDULE", help="logical id or schedule name")
    fire.set_defaults(run=cmd_fire)
    return parser


def main(argv: list[str] | None = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from crmjobs.config import ConfigurationError
    from crmjobs.errors import PermanentError

    args = build_parser().parse_args(argv)
    console = _console()
    try:
        return args.run(args, console)
    except (
        CliError,
        ProjectNotFound,
        PermanentError,
        ConfigurationError,
        ClientError,
        BotoCoreError,
    ) as error:
        _console(sys.stderr).print(f"[red]error:[/] {error}", highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
