"""The command line's grammar: every command, its arguments and the function it runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from crmjobs.tasks import TASKS
from crmjobs_local.cli import commands, web


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
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    target = _target_options()
    tasks = sorted(TASKS)

    dev = subcommands.add_parser(
        "dev", help="run the whole app locally until Ctrl-C, with the demo data seeded"
    )
    _add_local_options(dev)
    web.add_dev_options(dev)
    dev.add_argument(
        "--no-seed", action="store_true", help="start empty (no demo workspaces and prospects)"
    )
    dev.set_defaults(run=commands.cmd_dev)

    seed = subcommands.add_parser(
        "seed", help="write the demo data (ws-demo, ws-globex) into the running dev server"
    )
    _add_local_options(seed)
    seed.set_defaults(run=commands.cmd_seed)

    demo = subcommands.add_parser("demo", help="seed a demo CRM and run every built task")
    demo.add_argument("--prospects", type=int, default=300, help="prospects of the demo workspace")
    demo.add_argument("--data-dir", type=Path, default=None, help="a fresh dir (default: temp)")
    demo.add_argument("--template", type=Path, help="the SAM template (default: the project's)")
    demo.set_defaults(run=commands.cmd_demo)

    trigger = subcommands.add_parser("trigger", parents=[target], help="trigger a task")
    trigger.add_argument("task", choices=tasks, metavar="TASK")
    trigger.add_argument("--payload", required=True, help="JSON, or @file")
    trigger.add_argument("--idempotency-key")
    trigger.add_argument("--delay", type=int, help="whole seconds before the run starts")
    trigger.add_argument("--tag", action="append", help="a tag (repeatable)")
    trigger.add_argument("--wait", action="store_true", help="wait until the run finishes")
    trigger.add_argument(
        "--timeout",
        type=float,
        default=300,
        help="seconds --wait waits (then exit code 3; the run goes on)",
    )
    trigger.set_defaults(run=commands.cmd_trigger)

    runs = subcommands.add_parser("runs", help="list, show, cancel or replay runs")
    run_commands = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    listing = run_commands.add_parser("list", parents=[target], help="a workspace's runs")
    listing.add_argument("--workspace", required=True)
    listing.add_argument("--task", choices=tasks, metavar="TASK")
    listing.add_argument("--status", choices=[str(status) for status in RunStatus])
    listing.add_argument("--tag")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(run=commands.cmd_runs_list)
    for action, handler, description in (
        ("show", commands.cmd_runs_show, "one run as JSON"),
        (
            "cancel",
            commands.cmd_runs_cancel,
            "cancel a run (an EXECUTING one stops: a bulk run at once, others at their next"
            " check)",
        ),
        ("replay", commands.cmd_runs_replay, "a new run with the same task and payload"),
    ):
        sub = run_commands.add_parser(action, parents=[target], help=description)
        sub.add_argument("run_id", metavar="ID")
        sub.set_defaults(run=handler)

    dlq = subcommands.add_parser("dlq", help="dead-lettered messages")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    dlq_list = dlq_commands.add_parser("list", parents=[target], help="messages in the DLQs")
    dlq_list.add_argument("task", nargs="?", choices=tasks, metavar="TASK")
    dlq_list.set_defaults(run=commands.cmd_dlq_list)
    redrive = dlq_commands.add_parser(
        "redrive",
        parents=[target],
        help="replay each dead-lettered run (its ledger run is FAILED, so redrive = replay)",
    )
    redrive.add_argument("task", choices=tasks, metavar="TASK")
    redrive.set_defaults(run=commands.cmd_dlq_redrive)

    schema = subcommands.add_parser("schema", help="a task's payload JSON Schema")
    schema.add_argument("task", choices=tasks, metavar="TASK")
    schema.set_defaults(run=commands.cmd_schema)

    search = subcommands.add_parser(
        "search", parents=[target], help="search a workspace's documents"
    )
    search.add_argument("workspace")
    search.add_argument("query")
    search.add_argument("-k", type=int, default=5, help="hits to show")
    search.set_defaults(run=commands.cmd_search)

    invoke = subcommands.add_parser("invoke", help="invoke a function once (no Docker)")
    _add_local_options(invoke)
    invoke.add_argument(
        "function", metavar="FUNCTION", help="logical id, function name or folder (score_lead)"
    )
    invoke.add_argument("--event", required=True, type=Path, help="the event JSON file")
    invoke.add_argument(
        "--no-seed",
        action="store_true",
        help="without a dev server: do not seed the fresh runtime with the demo data",
    )
    invoke.set_defaults(run=commands.cmd_invoke)

    fire = subcommands.add_parser("fire", help="fire a schedule of the dev server now")
    _add_local_options(fire)
    fire.add_argument("schedule", metavar="SCHEDULE", help="logical id or schedule name")
    fire.set_defaults(run=commands.cmd_fire)

    web.add_commands(subcommands, target)
    return parser
