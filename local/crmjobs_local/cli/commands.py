"""The CLI's commands: each takes the parsed arguments and a console, returns an exit code."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from crmjobs.tasks import TASKS
from crmjobs_local.cli import rendering, web
from crmjobs_local.cli.errors import EXIT_OK, EXIT_RUN_FAILED, EXIT_TIMED_OUT, CliError
from crmjobs_local.cli.targets import (
    QUIET_SETTINGS,
    Target,
    applied,
    dev_server_target,
    resolve_target,
    write_endpoint_file,
)
from crmjobs_local.project import default_data_dir, find_template


def load_json_argument(text: str) -> Any:
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


# --------------------------------------------------------------------------- dev


def _silence_request_logs() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)


class _Interrupted(Exception):
    pass


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise _Interrupted


def cmd_dev(args: argparse.Namespace, console: Console) -> int:
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
    run_log = rendering.RunLog(console)
    runtime = LocalRuntime(
        template,
        data_dir=data_dir,
        parameters=web.runtime_parameters(args),
        api_port=args.api_port,
        on_invoke=run_log.batch,
        on_fire=lambda record: rendering.fire_line(console, record),
    )
    # Explicit handlers: a background process may have inherited an ignored SIGINT.
    previous_handlers = {
        number: signal.signal(number, _raise_interrupt)
        for number in (signal.SIGINT, signal.SIGTERM)
    }
    endpoint_path: Path | None = None
    servers: list[Any] = []
    try:
        with console.status("provisioning template.yaml into moto"):
            runtime.start()
        assert runtime.resources is not None
        if not args.no_seed:  # before the endpoint file: commands find the data there
            from crmjobs_local.seed import describe, seed

            with console.status("seeding the demo data"):
                seeded = describe(seed())
        endpoint_path = write_endpoint_file(runtime)
        console.print(f"[bold green]crmjobs dev[/] serving at [bold]{runtime.endpoint_url}[/]")
        console.print(f"data dir {runtime.data_dir}; endpoint file {endpoint_path}")
        resources = runtime.resources
        console.print(
            f"{len(resources.functions)} functions, {len(resources.queues)} queues, "
            f"{len(resources.tables)} tables, {len(resources.state_machines)} state machines, "
            f"schedules: {', '.join(s.name for s in resources.schedules.values())}"
        )
        if resources.unsupported:
            console.print("[yellow]not emulated locally:[/]")
            for missing in resources.unsupported:
                console.print(f"  {missing}")
        if not args.no_seed:
            console.print(seeded)
        outbox = Outbox(runtime.data_dir / "outbox")
        runtime.serve()
        servers = web.serve_dev(runtime, args, console)
        console.print("polling queues, streams and schedules; a line per run; Ctrl-C stops")
        while True:
            time.sleep(1)
            run_log.poll()
            for path in outbox.sync():
                console.print(f"{datetime.now():%H:%M:%S} [bold]mail[/] {path}")
    except (KeyboardInterrupt, _Interrupted):
        console.print("stopping")
    finally:
        for number, handler in previous_handlers.items():
            signal.signal(number, handler)
        if endpoint_path is not None:
            endpoint_path.unlink(missing_ok=True)
        for server in servers:
            server.stop()
        runtime.stop()
    return 0


def cmd_seed(args: argparse.Namespace, console: Console) -> int:
    from crmjobs_local.seed import describe, seed

    with applied(dev_server_target(args.data_dir)):
        console.print(describe(seed()))
    return EXIT_OK


# --------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    """The demo in a fresh data dir: `--data-dir` (kept), or a temporary one (removed)."""
    from crmjobs_local.demo import run_demo

    _silence_request_logs()
    if args.prospects < 1:
        raise CliError("--prospects must be at least 1")
    temporary = args.data_dir is None
    if temporary:
        data_dir = Path(tempfile.mkdtemp(prefix="crmjobs-demo-"))
    else:
        data_dir = Path(args.data_dir)
        if data_dir.exists() and any(data_dir.iterdir()):
            raise CliError(f"{data_dir} is not empty; the demo needs a fresh data dir")
    os.environ.update(QUIET_SETTINGS)
    template = args.template or find_template()
    try:
        return run_demo(console, prospects=args.prospects, data_dir=data_dir, template=template)
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)


# --------------------------------------------------------------------------- runs


def cmd_trigger(args: argparse.Namespace, console: Console) -> int:
    from crmjobs import client, ledger

    payload = load_json_argument(args.payload)
    with applied(resolve_target(args)):
        view = client.trigger(
            args.task,
            payload,
            idempotency_key=args.idempotency_key,
            delay=args.delay,
            tags=args.tag or (),
        )
        note = " (an earlier run with this idempotency key)" if view.deduplicated else ""
        console.print(f"{view.id} {rendering.status_text(view.status)}{note}")
        if not args.wait:
            return EXIT_OK
        final = rendering.wait_with_status(console, view.id, args.timeout)
        console.print_json(final.model_dump_json())
        if final.status not in ledger.FINISHED:
            rendering.console(sys.stderr).print(
                f"[yellow]timed out[/]: {final.id} is still {final.status} after "
                f"{args.timeout:g} s (--timeout); it goes on: crmjobs runs show {final.id}",
                highlight=False,
            )
            return EXIT_TIMED_OUT
        return EXIT_OK if final.status == "COMPLETED" else EXIT_RUN_FAILED


def cmd_runs_list(args: argparse.Namespace, console: Console) -> int:
    from crmjobs import client

    with applied(resolve_target(args)):
        views = client.list_runs(
            args.workspace, task=args.task, status=args.status, tag=args.tag, limit=args.limit
        )
    console.print(rendering.runs_table(views, title=f"runs of {args.workspace} (newest first)"))
    return 0


def cmd_runs_show(args: argparse.Namespace, console: Console) -> int:
    from crmjobs import client

    with applied(resolve_target(args)):
        view = client.retrieve(args.run_id)
    console.print_json(view.model_dump_json())
    return 0


def cmd_runs_cancel(args: argparse.Namespace, console: Console) -> int:
    from crmjobs import client

    with applied(resolve_target(args)):
        view = client.cancel(args.run_id)
    note = " (cancel requested: it stops at its next check)" if view.status == "EXECUTING" else ""
    console.print(f"{view.id} {rendering.status_text(view.status)}{note}")
    return EXIT_OK


def cmd_runs_replay(args: argparse.Namespace, console: Console) -> int:
    from crmjobs import client

    with applied(resolve_target(args)):
        view = client.replay(args.run_id)
    console.print(f"{view.id} {rendering.status_text(view.status)} (replay of {view.replayOf})")
    return 0


# --------------------------------------------------------------------------- dead letters


def cmd_dlq_list(args: argparse.Namespace, console: Console) -> int:
    from crmjobs.services import dead_letters

    with applied(resolve_target(args)):
        letters = [
            letter
            for task in dead_letters.tasks_with_queues(args.task)
            for letter in dead_letters.peek(task).messages
        ]
    console.print(rendering.dead_letters_table(letters))
    console.print(f"{len(letters)} message(s)")
    return 0


def cmd_dlq_redrive(args: argparse.Namespace, console: Console) -> int:
    """Redrive is replay: see `crmjobs.services.dead_letters`."""
    from crmjobs.services import dead_letters

    with applied(resolve_target(args)):
        result = dead_letters.redrive(args.task)
    for done in result.redriven:
        letter = done.letter
        if done.new_run_id:
            console.print(f"{letter.run_id} -> replayed as {done.new_run_id}")
        else:
            console.print(f"{letter.message_id} -> sent to the {args.task} queue again")
    for letter in result.kept:
        console.print(f"{letter.run_id}: no longer in the ledger (expired), left in the queue")
    console.print(f"redrove {len(result.redriven)} message(s) of {args.task}")
    return 0


# --------------------------------------------------------------------------- the rest


def cmd_schema(args: argparse.Namespace, console: Console) -> int:
    from crmjobs.schemas import schema_text

    sys.stdout.write(schema_text(args.task) + "\n")
    return 0


def cmd_search(args: argparse.Namespace, console: Console) -> int:
    from crmjobs.services.documents import search_knowledge

    with applied(resolve_target(args)):
        hits = search_knowledge(args.workspace, args.query, k=args.k)
    console.print(rendering.search_hits_table(args.workspace, args.query, hits))
    return 0


def _schedule_for(document: dict[str, Any], name: str) -> tuple[str, str, str]:
    """(logical id, name, group) of a schedule given by logical id or name."""
    for logical_id, schedule in document["schedules"].items():
        if name in (logical_id, schedule["name"]):
            return logical_id, schedule["name"], schedule["group"]
    known = ", ".join(s["name"] for s in document["schedules"].values())
    raise CliError(f"no schedule {name!r}; known: {known}")


def cmd_fire(args: argparse.Namespace, console: Console) -> int:
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


#: How long `crmjobs invoke` waits for a run that went on in a state machine (a bulk run).
INVOKE_WAIT_SECONDS = 120


def _report_invocation(console: Console, logical_id: str, event: Any, result: Any) -> int:
    """Print the handler's answer and, for an SQS-fed task, each run the event produced
    with its status and output or error; EXIT_RUN_FAILED when one FAILED or was CANCELED.
    A run that went on in a state machine is waited for."""
    from crmjobs import client

    sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
    task = rendering.task_of_function(logical_id)
    if task is None or not isinstance(event, dict):
        return EXIT_OK
    failed = False
    for run_id, view in rendering.runs_of_event(task, event):
        if view is None:
            console.print(f"{run_id}: no run recorded (a duplicate of another message's run)")
            continue
        if view.status == "EXECUTING" and view.execution:
            view = client.wait(view.id, timeout=INVOKE_WAIT_SECONDS)
        console.print(rendering.run_line(view), highlight=False)
        if view.status == "COMPLETED":
            console.print_json(json.dumps(view.output, default=str))
        failed = failed or view.status in ("FAILED", "CANCELED")
    return EXIT_RUN_FAILED if failed else EXIT_OK


def _invoke_on_dev_server(target: Target, name: str, event: Any) -> tuple[str, Any]:
    """(the function's logical id, its handler's answer)."""
    from crmjobs import config
    from crmjobs_local.context import LambdaContext, load_handler

    assert target.dev_server is not None
    for logical_id, function in target.dev_server["functions"].items():
        if _names_function(
            name, logical_id, function["name"], function["arn"], function["handlerFile"]
        ):
            break
    else:
        raise CliError(f"no function {name!r} on the dev server")
    handler = load_handler(function["handlerFile"], function["handlerName"])
    context = LambdaContext(
        function_name=function["name"],
        invoked_function_arn=function["arn"],
        memory_limit_in_mb=function["memoryMb"],
        timeout_seconds=function["timeoutSeconds"],
    )
    with applied(target), config.function_environment(function["environment"]):
        return logical_id, handler(event, context)


def cmd_invoke(args: argparse.Namespace, console: Console) -> int:
    """Like `sam local invoke`, without Docker: against a running dev server when there is
    one (its data), else in a fresh in-process local runtime seeded with the demo data
    (unless --no-seed). Prints the handler's answer and the runs the event produced; exits
    EXIT_RUN_FAILED when one of them failed."""
    from crmjobs_local.stack import LocalRuntime

    event = load_json_argument(f"@{args.event}")
    try:
        target = dev_server_target(args.data_dir)
    except CliError:
        target = None
    if target is not None:
        logical_id, result = _invoke_on_dev_server(target, args.function, event)
        with applied(target):
            return _report_invocation(console, logical_id, event, result)
    os.environ.update(QUIET_SETTINGS)
    with tempfile.TemporaryDirectory(prefix="crmjobs-invoke-") as data_dir:
        fresh = LocalRuntime(args.template, data_dir=Path(data_dir), in_process=True)
        with fresh as runtime:
            assert runtime.resources is not None
            matching = [
                function.logical_id
                for function in runtime.resources.functions.values()
                if _names_function(
                    args.function,
                    function.logical_id,
                    function.name,
                    function.arn,
                    str(function.handler_file),
                )
            ]
            if not matching:
                raise CliError(f"no function {args.function!r} in {runtime.template}")
            if not args.no_seed:
                from crmjobs_local.seed import seed

                seed(index_documents=False)
            result = runtime.invoke(matching[0], event)
            return _report_invocation(console, matching[0], event, result)

