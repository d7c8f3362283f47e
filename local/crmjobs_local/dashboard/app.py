"""The run dashboard: a Flask app with server-rendered Jinja2 pages and htmx live updates.

It reads and acts through the project's own functions (crmjobs.client for runs,
`runs.list_runs_page` for paged listings), in whatever environment the process has: a
`crmjobs dev` process (moto) or a deployed stack's (`crmjobs dashboard --stack`).

Who sees what (`Access`): everything, for a trusted user on this machine; or one
workspace, fixed (`--workspace`) or the one of the local JWT a visitor signs in with. A
scoped viewer's every read and action names that workspace, so another workspace's run is
"not found", and system-wide tasks and schedules are out of reach.

It is served on 127.0.0.1 only; requests for another host name (DNS rebinding) and
cross-site form posts are refused.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Flask, abort, g, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException

from crmjobs import client, ledger
from crmjobs.errors import InvalidInput, NotFound
from crmjobs.ledger import RunStatus
from crmjobs.schemas import payload_schema
from crmjobs.services import dead_letters
from crmjobs.tasks import SYSTEM_WORKSPACE, TASKS, UnknownTask
from crmjobs_local.dashboard import records, schedules
from crmjobs_local.dashboard.runs import RunFilter, list_runs_page
from crmjobs_local.http_api import InvalidToken, LocalJwtAuthorizer

PAGE_SIZE = 25
#: How often open pages refresh what can change (runs list, a running run, queues).
REFRESH = "every 2s"
_LOCAL_HOSTS = {"127.0.0.1", "localhost"}


@dataclass(frozen=True)
class Access:
    """What the dashboard's visitors may see: all workspaces (default), the one
    `workspace`, or with `tokens` the workspace of the token each visitor signs in with."""

    workspace: str | None = None
    tokens: LocalJwtAuthorizer | None = None


class Forbidden(Exception):
    """A scoped viewer asked for something outside its workspace."""


def _parse_time(text: str | None) -> datetime | None:
    """A datetime-local field's value (read as UTC) or ISO text with its zone."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"not a time: {text!r} (use YYYY-MM-DDTHH:MM)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def sample_payload(events_dir: Path, task: str) -> dict[str, Any]:
    """The payload of the task's sample event (events/<task>.json, an SQS event whose body
    is the client's envelope or a plain payload), or {} when it has none."""
    path = events_dir / f"{task.replace('-', '_')}.json"
    if not path.is_file():
        return {}
    records = json.loads(path.read_text()).get("Records") or [{}]
    body = json.loads(records[0].get("body") or "{}")
    return body["payload"] if "runId" in body else body


def create_app(
    *,
    access: Access = Access(),
    events_dir: Path,
    fire_schedule: Callable[[str, str], Any] | None = None,
    refresh: str = REFRESH,
) -> Flask:
    """The dashboard app. `fire_schedule(name, group)` fires a schedule now (the local
    scheduler's; a deployed stack has none, and its schedules have no Fire now)."""
    app = Flask(__name__)
    app.secret_key = secrets.token_hex(32)  # sessions last as long as the process
    app.config.update(SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_HTTPONLY=True)

    def viewer() -> str | None:
        """The workspace the current visitor is scoped to, or None (all)."""
        return g.get("viewer")

    def require_workspace_access(workspace_id: str) -> None:
        if viewer() is not None and workspace_id != viewer():
            raise Forbidden(f"this dashboard is scoped to workspace {viewer()}")

    @app.before_request
    def guard() -> Any:
        host = (request.host or "").rsplit(":", 1)[0]
        if host not in _LOCAL_HOSTS:
            abort(421, "the dashboard answers on 127.0.0.1 only")
        origin = request.headers.get("Origin")
        if request.method == "POST" and origin and origin != request.host_url.rstrip("/"):
            abort(403, "cross-site request refused")
        g.viewer = access.workspace
        if access.tokens is None or request.endpoint in ("signin", "static"):
            return None
        token = request.args.get("token") or session.get("token")
        try:
            g.viewer = access.tokens.workspace_of(token) if token else None
        except InvalidToken:
            g.viewer = None
        if g.viewer is None:
            session.pop("token", None)
            return redirect(url_for("signin", next=request.full_path))
        session["token"] = token
        return None

    @app.context_processor
    def shared() -> dict[str, Any]:
        return {
            "viewer": viewer(),
            "tasks": sorted(TASKS),
            "statuses": list(RunStatus),
            "refresh": refresh,
            "signed_in": access.tokens is not None,
        }

    @app.template_filter("pretty")
    def pretty(value: Any) -> str:
        return json.dumps(value, indent=2, sort_keys=True)

    @app.template_filter("counter")
    def counter(campaign: Any, name: str) -> int:
        counters = campaign.counters.as_dict() if campaign.counters else {}
        return int(counters.get(name, 0))

    @app.template_filter("took")
    def took(view: Any) -> str:
        if not (view.startedAt and view.finishedAt):
            return ""
        started = datetime.fromisoformat(view.startedAt.replace("Z", "+00:00"))
        finished = datetime.fromisoformat(view.finishedAt.replace("Z", "+00:00"))
        return f"{(finished - started).total_seconds():.2f} s"

    @app.errorhandler(InvalidInput)
    @app.errorhandler(UnknownTask)
    def bad_request(error: Exception):
        return render_template("error.html", status=400, message=str(error)), 400

    @app.errorhandler(NotFound)
    def not_found(error: Exception):
        return render_template("error.html", status=404, message=str(error)), 404

    @app.errorhandler(Forbidden)
    def forbidden(error: Exception):
        return render_template("error.html", status=403, message=str(error)), 403

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return render_template(
            "error.html", status=error.code, message=error.description
        ), error.code

    # ------------------------------------------------------------------ sign-in

    @app.route("/signin", methods=["GET", "POST"])
    def signin():
        if access.tokens is None:
            return redirect(url_for("runs"))
        problem = None
        if request.method == "POST":
            token = request.form.get("token", "").strip()
            try:
                access.tokens.workspace_of(token)
            except InvalidToken as error:
                problem = f"token refused: {error}"
            else:
                session["token"] = token
                return redirect(request.args.get("next") or url_for("runs"))
        return render_template("signin.html", problem=problem), 401 if problem else 200

    @app.post("/signout")
    def signout():
        session.clear()
        return redirect(url_for("signin"))

    # ------------------------------------------------------------------ runs

    def run_filter() -> RunFilter:
        args = request.args
        workspace = viewer() or args.get("workspace", "").strip()
        if not workspace:
            raise InvalidInput("choose a workspace")
        return RunFilter(
            workspace_id=workspace,
            task=args.get("task") or None,
            status=args.get("status") or None,
            tag=args.get("tag", "").strip() or None,
            created_from=_parse_time(args.get("since")),
            created_to=_parse_time(args.get("until")),
        )

    def known_workspaces() -> list[str]:
        """Workspaces to pick from (the active ones, first 100, by their sparse index)."""
        from crmjobs.models import Workspace

        return [workspace.id for workspace in Workspace.active_index.query("active", limit=100)]

    @app.get("/")
    def index():
        return redirect(url_for("runs"))

    @app.get("/runs")
    def runs():
        args = request.args.to_dict()
        refresh_only = bool(request.headers.get("HX-Request"))
        # The workspace picker's choices are for the whole page, not its table's refreshes.
        choices = [] if viewer() or refresh_only else known_workspaces() + [SYSTEM_WORKSPACE]
        if not viewer() and not args.get("workspace"):
            if not choices:
                return render_template("runs.html", filters=args, page=None, choices=choices)
            args["workspace"] = choices[0]
            return redirect(url_for("runs", **args))
        page = list_runs_page(run_filter(), cursor=args.get("cursor"), limit=PAGE_SIZE)
        query = {key: value for key, value in args.items() if value and key != "cursor"}
        template = "_runs_table.html" if refresh_only else "runs.html"
        return render_template(
            template,
            filters=args,
            page=page,
            choices=choices,
            query=query,
            next_url=(
                url_for("runs", **query, cursor=page.next_cursor) if page.next_cursor else None
            ),
            first_url=url_for("runs", **query) if args.get("cursor") else None,
            self_url=request.full_path,
        )

    @app.get("/runs/<run_id>")
    def run(run_id: str):
        view = client.retrieve(run_id, viewer())
        template = "_run_details.html" if request.headers.get("HX-Request") else "run.html"
        return render_template(
            template,
            run=view,
            finished=view.status in ledger.FINISHED,
            # An executing run can be asked to stop, once.
            cancelable=view.status in ledger.CANCELABLE
            or (view.status == ledger.RunStatus.EXECUTING and not view.cancelRequested),
        )

    @app.post("/runs/<run_id>/cancel")
    def cancel(run_id: str):
        client.cancel(run_id, viewer())
        return redirect(url_for("run", run_id=run_id), code=303)

    @app.post("/runs/<run_id>/replay")
    def replay(run_id: str):
        view = client.replay(run_id, viewer())
        return redirect(url_for("run", run_id=view.id), code=303)

    # ------------------------------------------------------------------ trigger

    def trigger_page(task: str, form: dict[str, Any], problem: str | None, status: int = 200):
        return render_template(
            "trigger.html",
            task=task,
            schema=payload_schema(task),
            start=form.get("payload_value"),
            form=form,
            problem=problem,
        ), status

    @app.get("/trigger")
    def trigger_form():
        task = request.args.get("task") or "score-lead"
        start = sample_payload(events_dir, task)
        if viewer() and "workspaceId" in payload_schema(task).get("properties", {}):
            start = {**start, "workspaceId": viewer()}
        return trigger_page(task, {"payload_value": start}, None)

    @app.post("/trigger")
    def trigger():
        form = request.form
        task = form.get("task", "")
        try:
            payload = json.loads(form.get("payload") or "{}")
        except ValueError as error:
            raise InvalidInput(f"payload is not JSON: {error}") from None
        if not isinstance(payload, dict):
            raise InvalidInput("payload must be a JSON object")
        fields = {
            "payload_value": payload,
            "idempotency_key": form.get("idempotency_key", ""),
            "delay": form.get("delay", ""),
            "tags": form.get("tags", ""),
        }
        try:
            if viewer() is not None:
                require_workspace_access(payload.get("workspaceId", SYSTEM_WORKSPACE))
            delay_text = fields["delay"].strip()
            try:
                delay = float(delay_text) if delay_text else None
            except ValueError:
                raise InvalidInput(
                    f"delay must be a number of seconds, not {delay_text!r}"
                ) from None
            view = client.trigger(
                task,
                payload,
                idempotency_key=fields["idempotency_key"].strip() or None,
                delay=delay,
                tags=[tag.strip() for tag in fields["tags"].split(",") if tag.strip()],
                source="dashboard",
            )
        except (InvalidInput, Forbidden) as error:
            status = 403 if isinstance(error, Forbidden) else 400
            return trigger_page(task, fields, str(error), status)
        return redirect(url_for("run", run_id=view.id), code=303)

    # ------------------------------------------------------------------ dead letters

    @app.get("/dead-letters")
    def dead_letter_queues():
        return render_template("dlq.html", queues=dead_letters.peek_all(viewer()))

    @app.post("/dead-letters/<task>/redrive")
    def redrive(task: str):
        outcome = dead_letters.redrive(task, viewer())
        query = urlencode(
            {"redriven": len(outcome.redriven), "kept": len(outcome.kept), "task": task}
        )
        return redirect(f"{url_for('dead_letter_queues')}?{query}", code=303)

    # ------------------------------------------------------------------ campaigns, agents

    def page_workspace() -> str | None:
        return viewer() or request.args.get("workspace", "").strip() or None

    def choose_workspace(what: str):
        choices = known_workspaces()
        return render_template("choose_workspace.html", what=what, choices=choices)

    @app.get("/campaigns")
    def campaign_list():
        workspace = page_workspace()
        if workspace is None:
            return choose_workspace("campaigns")
        return render_template(
            "campaigns.html", workspace=workspace, campaigns=records.campaigns_of(workspace)
        )

    @app.get("/campaigns/<workspace_id>/<campaign_id>")
    def campaign(workspace_id: str, campaign_id: str):
        require_workspace_access(workspace_id)
        progress = records.campaign_progress(workspace_id, campaign_id)
        template = "_campaign.html" if request.headers.get("HX-Request") else "campaign.html"
        return render_template(template, progress=progress, workspace=workspace_id)

    @app.get("/agents")
    def agent_list():
        workspace = page_workspace()
        if workspace is None:
            return choose_workspace("agents")
        return render_template(
            "agents.html", workspace=workspace, agents=records.agents_of(workspace)
        )

    @app.get("/agents/executions/<workspace_id>/<execution_id>")
    def execution(workspace_id: str, execution_id: str):
        require_workspace_access(workspace_id)
        shown = records.transcript(workspace_id, execution_id)
        template = "_transcript.html" if request.headers.get("HX-Request") else "execution.html"
        return render_template(template, transcript=shown, workspace=workspace_id)

    # ------------------------------------------------------------------ schedules

    @app.get("/schedules")
    def schedule_list():
        if viewer() is not None:
            raise Forbidden("schedules are system-wide: sign in without a workspace scope")
        return render_template(
            "schedules.html",
            schedules=schedules.list_schedules(datetime.now(UTC)),
            can_fire=fire_schedule is not None,
            fired=request.args.get("fired"),
        )

    @app.post("/schedules/<group>/<name>/fire")
    def fire(group: str, name: str):
        if viewer() is not None:
            raise Forbidden("schedules are system-wide: sign in without a workspace scope")
        if fire_schedule is None:
            abort(404, "schedules fire now only in the local runtime (crmjobs dev)")
        record = fire_schedule(name, group)
        return redirect(url_for("schedule_list", fired=f"{name}: message {record.message_id}"))

    return app
