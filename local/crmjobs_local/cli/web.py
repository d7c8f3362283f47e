"""What the command line serves over HTTP, on 127.0.0.1 only: the trigger API and the run
dashboard of `crmjobs dev`, `crmjobs dashboard` (a deployed stack, or a running dev
server), and `crmjobs token` (a JWT signed by the data dir's local key)."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path
from typing import Any

from rich.console import Console

from crmjobs_local.cli.errors import CliError
from crmjobs_local.cli.targets import applied, resolve_target
from crmjobs_local.http_api import (
    DEFAULT_API_PORT,
    LOCAL_JWT_AUDIENCE,
    LOCAL_JWT_ISSUER,
    BackgroundServer,
    LocalHttpApi,
    LocalJwtAuthorizer,
)
from crmjobs_local.project import default_data_dir, find_template

DEFAULT_DASHBOARD_PORT = 3001
#: Environment variables that change the default ports (a second dev server beside one).
API_PORT_ENV = "CRMJOBS_API_PORT"
DASHBOARD_PORT_ENV = "CRMJOBS_DASHBOARD_PORT"
DEFAULT_WORKSPACE_CLAIM = "workspace_id"


def _port(variable: str, default: int) -> int:
    value = os.environ.get(variable, "")
    return int(value) if value.isdecimal() else default


def add_dev_options(dev: argparse.ArgumentParser) -> None:
    dev.add_argument(
        "--api-port",
        type=int,
        default=_port(API_PORT_ENV, DEFAULT_API_PORT),
        help=f"port of the trigger HTTP API on 127.0.0.1 (default ${API_PORT_ENV}, else"
        f" {DEFAULT_API_PORT})",
    )
    dev.add_argument(
        "--dashboard-port",
        type=int,
        default=_port(DASHBOARD_PORT_ENV, DEFAULT_DASHBOARD_PORT),
        help=f"port of the run dashboard on 127.0.0.1 (default ${DASHBOARD_PORT_ENV}, else"
        f" {DEFAULT_DASHBOARD_PORT})",
    )
    dev.add_argument(
        "--parameter",
        action="append",
        type=_parameter,
        metavar="NAME=VALUE",
        help="a template parameter for the local stack (repeatable), e.g. AgentModelBackend=openai",
    )
    dev.add_argument(
        "--jwt",
        action="store_true",
        help="the API and dashboard take tokens of `crmjobs token WORKSPACE` (scoped to it)",
    )


def add_commands(subcommands: Any, target: argparse.ArgumentParser) -> None:
    dashboard = subcommands.add_parser(
        "dashboard",
        parents=[target],
        help="serve the run dashboard for a deployed stack (--stack) or the dev server",
    )
    dashboard.add_argument("--port", type=int, default=DEFAULT_DASHBOARD_PORT)
    dashboard.add_argument("--workspace", help="show this workspace only")
    dashboard.set_defaults(run=cmd_dashboard)

    token = subcommands.add_parser(
        "token", help="print a local JWT scoped to a workspace (for `crmjobs dev --jwt`)"
    )
    token.add_argument("workspace")
    token.add_argument("--hours", type=float, default=12, help="how long it is valid")
    token.add_argument("--data-dir", type=Path, help="the dev server's data dir (its key)")
    token.set_defaults(run=cmd_token)


def runtime_parameters(args: argparse.Namespace) -> dict[str, str] | None:
    """The stack parameters of `crmjobs dev`: each --parameter NAME=VALUE, and --jwt, which
    turns the template's JWT authorizer on (the functions get AUTH_MODE=jwt) with the local
    issuer and audience."""
    parameters = dict(args.parameter or ())
    if args.jwt:
        parameters.update(JwtIssuer=LOCAL_JWT_ISSUER, JwtAudience=LOCAL_JWT_AUDIENCE)
    return parameters or None


def _parameter(text: str) -> tuple[str, str]:
    name, separator, value = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _serve(app: Any, port: int, what: str) -> BackgroundServer:
    try:
        return BackgroundServer(app, port).start()
    except OSError as error:
        raise CliError(f"cannot serve the {what} on 127.0.0.1:{port}: {error}") from None


def serve_dev(runtime: Any, args: argparse.Namespace, console: Console) -> list[BackgroundServer]:
    """Start the trigger API and the dashboard of a started LocalRuntime."""
    from crmjobs_local.dashboard import Access, create_app

    tokens = LocalJwtAuthorizer.in_data_dir(runtime.data_dir) if args.jwt else None
    servers = [_serve(LocalHttpApi.for_stack(runtime, tokens), runtime.api_port, "HTTP API")]
    try:
        dashboard = create_app(
            access=Access(tokens=tokens),
            events_dir=runtime.template.parent / "events",
            fire_schedule=runtime.scheduler.fire_now,
        )
        servers.append(_serve(dashboard, args.dashboard_port, "dashboard"))
    except BaseException:
        servers[0].stop()
        raise
    api, web = servers
    auth = " (JWT: `crmjobs token WORKSPACE`)" if tokens else ""
    console.print(f"HTTP API at [bold]{api.url}[/]{auth}, e.g. curl {api.url}/tasks")
    console.print(f"dashboard at [bold]{web.url}[/]")
    return servers


def cmd_token(args: argparse.Namespace, console: Console) -> int:
    data_dir = args.data_dir or default_data_dir(find_template())
    tokens = LocalJwtAuthorizer.in_data_dir(data_dir, workspace_claim=DEFAULT_WORKSPACE_CLAIM)
    print(tokens.issue(args.workspace, ttl_s=int(args.hours * 3600)))
    return 0


def cmd_dashboard(args: argparse.Namespace, console: Console) -> int:
    """Serve the dashboard until Ctrl-C, with the target's environment (a deployed stack
    with the user's AWS credentials, or a running dev server's)."""
    from crmjobs.adapters.aws import client as aws_client
    from crmjobs_local.dashboard import Access, create_app
    from crmjobs_local.schedules import LocalScheduler

    template = args.template or find_template()
    stopped = threading.Event()
    previous = {
        number: signal.signal(number, lambda *_: stopped.set())
        for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with applied(resolve_target(args)) as target:
            fire = None
            if target.dev_server is not None:  # a deployed stack's schedules fire on their own
                fire = LocalScheduler(aws_client("scheduler"), aws_client("sqs")).fire_now
            app = create_app(
                access=Access(workspace=args.workspace),
                events_dir=template.parent / "events",
                fire_schedule=fire,
            )
            server = _serve(app, args.port, "dashboard")
            scope = f", workspace {args.workspace} only" if args.workspace else ""
            console.print(
                f"dashboard of {target.description}{scope} at [bold]{server.url}[/]; Ctrl-C stops"
            )
            try:
                while not stopped.wait(0.5):
                    pass
            finally:
                server.stop()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 0
