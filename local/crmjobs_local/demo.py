"""`crmjobs demo`: a demo CRM seeded into a fresh local stack, and every built task run on
the real path (client -> SQS -> Lambda handler -> Step Functions -> DynamoDB / vectors).

Two workspaces: "Acme Robotics" (professional tier) with realistic prospects and product
documents, and "Globex Logistics" with a few of its own, to show that searches and bulk
jobs never cross workspaces. The scenario ends with a summary and exits 0 only when every
run of the demo COMPLETED.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DEMO_WORKSPACE = "ws-demo"
OTHER_WORKSPACE = "ws-globex"
SEARCH_QUERY = "how much does it cost"
RUN_TIMEOUT_SECONDS = 180
SCORE_BUCKETS = ((0, 19), (20, 39), (40, 59), (60, 79), (80, 100))
STAGE_WEIGHTS = {
    "new": 30,
    "contacted": 22,
    "qualified": 15,
    "proposal": 10,
    "negotiation": 8,
    "won": 7,
    "lost": 8,
}

FIRST_NAMES = (
    "Ada Amara Ben Carlos Chen Dana Elena Farid Grace Hannah Ibrahim Isla Jonas Kenji Laila "
    "Lucas Maya Mateo Nadia Noah Olga Priya Quinn Rafael Sofia Tariq Uma Victor Wen Yusuf Zoe"
).split()
LAST_NAMES = (
    "Andersen Baker Costa Dubois Eriksen Fischer Garcia Haddad Ito Jensen Kowalski Laurent "
    "Moreau Nakamura Okafor Patel Quinn Rossi Schmidt Tanaka Umarov Varga Weber Xu Yilmaz Zhang"
).split()
COMPANIES = {
    "Brightline Foods": "brightlinefoods.com",
    "Cobalt Freight": "cobaltfreight.io",
    "Meridian Health Devices": "meridianhd.com",
    "Pioneer Tools": "pioneertools.de",
    "Sable Systems": "sablesystems.co.uk",
    "Tidewater Energy": "tidewater-energy.com",
    "Halcyon Labs": "halcyonlabs.ai",
    "Oakridge Manufacturing": "oakridgemfg.com",
    "Redwood Packaging": "redwoodpack.com",
    "Vantage Aerospace": "vantage-aero.com",
    "Juniper Pharma": "juniperpharma.eu",
    "Atlas Components": "atlascomponents.com",
    "Crescent Textiles": "crescenttextiles.in",
    "Evergreen Farms": "evergreenfarms.ca",
    "Keystone Plastics": "keystoneplastics.com",
    "Northwind Appliances": "northwind-appliances.com",
}
FREE_MAIL = ("gmail.com", "yahoo.co.uk", "outlook.com", "hotmail.fr", "icloud.com", "proton.me")
SENIOR_TITLES = (
    "CEO",
    "Chief Operating Officer",
    "VP Operations",
    "Vice President of Manufacturing",
    "Director of Engineering",
    "Head of Automation",
    "Co-founder",
    "Plant Director",
)
OTHER_TITLES = (
    "Operations Manager",
    "Process Engineer",
    "Procurement Specialist",
    "Maintenance Technician",
    "Production Supervisor",
    "Automation Engineer",
    "Buyer",
    "Plant Manager",
    "MVP Program Coordinator",
)

ACME_DOCUMENTS = {
    "doc-product": (
        "Product overview: the Acme R-series cobots",
        "The Acme R-series are collaborative robot arms for small and mid-sized factories. "
        "The R5 lifts up to 5 kg with a reach of 850 mm, the R12 lifts 12 kg with a reach of "
        "1300 mm. Both run on a standard 230 V outlet and ship with force sensing in every "
        "joint, so they can work next to people without fencing after a risk assessment.\n\n"
        "Typical jobs are machine tending, palletising, screw driving and quality inspection "
        "with the optional Acme Vision camera. Programs are built in Acme Studio, a "
        "drag-and-drop editor that runs in the browser; experienced integrators can also use "
        "the Python SDK. A new task usually takes an afternoon to teach, not weeks.\n\n"
        "Every robot reports cycle times, errors and utilisation to the Acme Cloud dashboard, "
        "which compares shifts and lines and flags a drop in throughput before it becomes a "
        "missed delivery.",
    ),
    "doc-pricing": (
        "Pricing and plans",
        "Acme robots are sold as a subscription. The R5 costs $1,450 per month and the R12 "
        "costs $2,100 per month on a 36-month plan; both prices include the arm, the "
        "controller, Acme Studio, cloud monitoring and standard support. Paying annually "
        "up front takes 8% off the price.\n\n"
        "A one-time installation fee of $4,900 covers the site survey, delivery, mounting "
        "and the first program. Grippers and the Acme Vision camera are add-ons from $95 per "
        "month. There are no charges per program, per user or per line.\n\n"
        "Customers who prefer to buy outright pay $48,000 for an R5 and $69,000 for an R12, "
        "plus an optional service contract of 12% of the list price per year. Volume pricing "
        "starts at five robots; ask your account executive for a quote.",
    ),
    "doc-onboarding": (
        "Onboarding guide",
        "Onboarding starts with a remote kickoff call in which an Acme application engineer "
        "reviews the parts, cycle times and floor plan. Within two weeks the engineer visits "
        "the site, checks power and network, and agrees the mounting position with the "
        "customer's safety officer.\n\n"
        "On installation day the robot is mounted, connected to the Acme Cloud and taught its "
        "first task together with two of the customer's operators. Operators then take the "
        "free four-hour Acme Academy course; maintenance staff take the advanced module.\n\n"
        "After thirty days we hold a review of uptime, cycle times and open issues, and plan "
        "the next task. Most customers run their first robot unattended on night shifts "
        "within six weeks.",
    ),
    "doc-security": (
        "Security and compliance",
        "Robots connect to the Acme Cloud over outbound TLS 1.3 only; no inbound ports are "
        "opened in the factory network. Each controller has its own certificate, rotated "
        "every ninety days, and can be cut off remotely if it is lost or stolen.\n\n"
        "Production data is stored in the EU or the US, as the customer chooses, encrypted at "
        "rest with AES-256. Acme is ISO 27001 certified and its cloud is audited for SOC 2 "
        "Type II every year; reports are available under NDA.\n\n"
        "Single sign-on with SAML or OpenID Connect is included in every plan, as are "
        "role-based permissions, audit logs of every program change, and a data processing "
        "agreement that meets GDPR.",
    ),
    "doc-support": (
        "Support and maintenance SLA",
        "Standard support answers by email and phone on business days within four hours. "
        "Premium support adds a 24/7 hotline with a one-hour response for production "
        "stoppages and next-business-day on-site visits in most of Europe and North America.\n\n"
        "Spare joints are shipped the same day from regional depots. Every robot gets a "
        "preventive maintenance check every 5,000 operating hours, scheduled from the "
        "Acme Cloud so it never interrupts a busy week.",
    ),
    "doc-integrations": (
        "Integrations: PLCs, MES and ERP",
        "Acme controllers speak Modbus TCP, PROFINET and EtherNet/IP, so a robot can be "
        "started, stopped and told which recipe to run from an existing PLC. OPC UA exposes "
        "its status and counters to MES systems.\n\n"
        "The Acme Cloud offers a REST API and webhooks: production counts and alarms can be "
        "sent to SAP, Microsoft Dynamics or a data warehouse without custom middleware.",
    ),
}
GLOBEX_DOCUMENTS = {
    "doc-rates": (
        "Globex freight rate card",
        "Globex charges $2.10 per kilometre for a full truckload and $0.35 per kilogram for "
        "less-than-truckload shipments, with a minimum charge of $180. Fuel surcharges are "
        "updated on the first Monday of every month. Express delivery costs 40% more.",
    ),
}


@dataclass
class InvocationStats:
    """What the queue pollers ran, per function (filled from LocalRuntime.on_invoke)."""

    batches: Counter = field(default_factory=Counter)
    records: Counter = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, function: str, outcome: Any) -> None:
        with self.lock:
            self.batches[function] += 1
            self.records[function] += len(outcome.event.get("Records", []))
            self.seconds[function] += outcome.duration_s


# --------------------------------------------------------------------------- seeding


def _prospect_fields(rng: random.Random, now: datetime) -> dict[str, Any]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    company = rng.choice(list(COMPANIES)) if rng.random() < 0.85 else None
    draw = rng.random()
    if draw < 0.08:
        email = None
    elif draw < 0.4 or company is None:
        email = f"{first}.{last}{rng.randint(1, 99)}@{rng.choice(FREE_MAIL)}".lower()
    else:
        email = f"{first[0]}.{last}@{COMPANIES[company]}".lower()
    title_draw = rng.random()
    if title_draw < 0.1:
        title = None
    elif title_draw < 0.35:
        title = rng.choice(SENIOR_TITLES)
    else:
        title = rng.choice(OTHER_TITLES)
    contacted = None
    if rng.random() < 0.75:
        contacted = now - timedelta(days=rng.uniform(0, 90))
    return {
        "name": f"{first} {last}",
        "email": email,
        "phone": f"+1-555-01{rng.randint(0, 99):02d}" if rng.random() < 0.6 else None,
        "company": company,
        "title": title,
        "stage": rng.choices(list(STAGE_WEIGHTS), weights=list(STAGE_WEIGHTS.values()))[0],
        "estimated_value": (
            rng.choice((25_000, 80_000, 150_000, 420_000, 750_000, 1_200_000, 4_800_000))
            if rng.random() < 0.8
            else None
        ),
        "last_contacted_at": contacted,
    }


def seed_workspace(
    workspace_id: str,
    name: str,
    tier: str,
    prospects: int,
    documents: dict[str, tuple[str, str]],
    rng: random.Random,
) -> None:
    from crmjobs.models import KnowledgeItem, Prospect, Workspace

    Workspace(id=workspace_id, name=name, slug=workspace_id, subscription_tier=tier).save()
    now = datetime.now(UTC)
    with Prospect.batch_write() as batch:
        for number in range(1, prospects + 1):
            batch.save(
                Prospect(
                    workspace_id=workspace_id,
                    id=f"p-{number:04d}",
                    **_prospect_fields(rng, now),
                )
            )
    for item_id, (title, content) in documents.items():
        KnowledgeItem(
            workspace_id=workspace_id,
            id=item_id,
            title=title,
            type="text",
            mime_type="text/plain",
            content=content,
        ).save()


# --------------------------------------------------------------------------- waiting


def _progress(console: Any) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
    )


def await_run(
    console: Any,
    label: str,
    run_id: str,
    *,
    count: Callable[[], tuple[int, int]] | None = None,
    timeout: float = RUN_TIMEOUT_SECONDS,
) -> Any:
    """Poll a run until it finishes, with a progress bar that `count` () -> (done, total)
    fills; a run created on first delivery (a plain SQS message) may not exist yet."""
    from crmjobs import client, ledger
    from crmjobs.errors import NotFound

    deadline = time.monotonic() + timeout
    view = None
    with _progress(console) as progress:
        bar = progress.add_task(label, total=None, status="sent")
        while time.monotonic() < deadline:
            try:
                view = client.retrieve(run_id)
            except NotFound:
                view = None
            if count is not None:
                done, total = count()
                progress.update(bar, completed=done, total=total)
            elif view is not None and view.status in ledger.FINISHED:
                progress.update(bar, completed=1, total=1)
            progress.update(bar, status=view.status if view else "not received yet")
            if view is not None and view.status in ledger.FINISHED:
                break
            time.sleep(0.3)
    if view is None:
        raise TimeoutError(f"run {run_id} was never received")
    return view


def _scored_count(workspace_id: str) -> Callable[[], tuple[int, int]]:
    from crmjobs.models import Prospect

    def count() -> tuple[int, int]:
        prospects = list(Prospect.query(workspace_id, attributes_to_get=["id", "scoredAt"]))
        return sum(p.scored_at is not None for p in prospects), len(prospects)

    return count


def _indexed_count(workspace_id: str) -> Callable[[], tuple[int, int]]:
    from crmjobs.models import KnowledgeItem

    def count() -> tuple[int, int]:
        items = list(KnowledgeItem.query(workspace_id, attributes_to_get=["id", "status"]))
        return sum(item.status == "ready" for item in items), len(items)

    return count


def _brief(view: Any) -> str:
    if view.status != "COMPLETED":
        return f"[red]{view.status}[/]: {(view.error or {}).get('message')}"
    return f"[green]COMPLETED[/] {json.dumps(view.output, separators=(', ', ': '))}"


# --------------------------------------------------------------------------- the scenario


@dataclass
class DemoResult:
    search_hits: list[Any] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _built(stack: Any, task: str) -> bool:
    try:
        stack.source_for_task(task)
    except KeyError:
        return False
    return True


def _step(console: Any, title: str) -> None:
    console.rule(f"[bold]{title}")


def _scenario(console: Any, stack: Any, prospects: int, result: DemoResult) -> None:
    from crmjobs import client, config, ledger
    from crmjobs.adapters.aws import client as aws_client
    from crmjobs.models import Prospect
    from crmjobs.services.documents import search_knowledge

    _step(console, "seeding")
    rng = random.Random(20261129)
    with console.status("writing prospects and documents"):
        seed_workspace(
            DEMO_WORKSPACE, "Acme Robotics", "professional", prospects, ACME_DOCUMENTS, rng
        )
        seed_workspace(OTHER_WORKSPACE, "Globex Logistics", "starter", 12, GLOBEX_DOCUMENTS, rng)
    console.print(
        f"Acme Robotics ({DEMO_WORKSPACE}, professional): {prospects} prospects, "
        f"{len(ACME_DOCUMENTS)} documents; Globex Logistics ({OTHER_WORKSPACE}, starter): "
        f"12 prospects, {len(GLOBEX_DOCUMENTS)} document"
    )

    _step(console, "score-lead: one prospect, through the client")
    seeded = list(Prospect.query(DEMO_WORKSPACE))
    senior = next(
        (
            p
            for p in seeded
            if p.title in SENIOR_TITLES and p.email and p.email.split("@")[1] in COMPANIES.values()
        ),
        seeded[0],
    )
    run = client.trigger(
        "score-lead", {"workspaceId": DEMO_WORKSPACE, "prospectId": senior.id}, tags=["demo"]
    )
    view = await_run(console, f"score-lead {senior.id}", run.id)
    console.print(f"{senior.name}, {senior.title} at {senior.company} ({senior.stage}): ")
    console.print(f"  {_brief(view)}")

    _step(console, "bulk-score-leads: the whole workspace, through the state machine")
    run = client.trigger("bulk-score-leads", {"workspaceId": DEMO_WORKSPACE}, tags=["demo"])
    view = await_run(console, "bulk-score-leads", run.id, count=_scored_count(DEMO_WORKSPACE))
    console.print(f"  {_brief(view)}")

    _step(console, "scheduled-lead-scoring: the nightly schedule, fired twice")
    schedule = stack.resources.schedules["ScheduledLeadScoringSchedule"]
    for firing in ("first", "second"):
        record = stack.scheduler.fire_now(schedule.name, schedule.group_name)
        run_id = ledger.run_id_for_message("scheduled-lead-scoring", record.message_id)
        view = await_run(console, f"{firing} firing of {schedule.name}", run_id)
        console.print(f"  {_brief(view)}")
        if firing == "first":
            for workspace_id in (DEMO_WORKSPACE, OTHER_WORKSPACE):
                for started in client.list_runs(
                    workspace_id, task="bulk-score-leads", tag="scheduled"
                ):
                    finished = await_run(
                        console,
                        f"nightly bulk-score-leads {workspace_id}",
                        started.id,
                        count=_scored_count(workspace_id),
                    )
                    console.print(f"  {workspace_id}: {_brief(finished)}")

    _step(console, "index-document, then bulk-index-documents for the rest")
    first_item = next(iter(ACME_DOCUMENTS))
    run = client.trigger(
        "index-document", {"workspaceId": DEMO_WORKSPACE, "itemId": first_item}, tags=["demo"]
    )
    view = await_run(console, f"index-document {first_item}", run.id)
    console.print(f"  {_brief(view)}")
    for workspace_id in (DEMO_WORKSPACE, OTHER_WORKSPACE):
        run = client.trigger("bulk-index-documents", {"workspaceId": workspace_id})
        view = await_run(
            console,
            f"bulk-index-documents {workspace_id}",
            run.id,
            count=_indexed_count(workspace_id),
        )
        console.print(f"  {workspace_id}: {_brief(view)}")
    if _built(stack, "reindex-all-documents"):
        run = client.trigger("reindex-all-documents", {"workspaceId": OTHER_WORKSPACE})
        view = await_run(console, f"reindex-all-documents {OTHER_WORKSPACE}", run.id)
        console.print(f"  {OTHER_WORKSPACE}: {_brief(view)}")

    _step(console, f"search: {SEARCH_QUERY!r}")
    result.search_hits = search_knowledge(DEMO_WORKSPACE, SEARCH_QUERY, k=3)
    for rank, hit in enumerate(result.search_hits, 1):
        console.print(f"  {rank}. [bold]{hit.title}[/] (score {hit.score:.3f})")
        console.print(f"     {' '.join(hit.chunk.split())[:160]}...")
    foreign = [hit for hit in result.search_hits if hit.item_id not in ACME_DOCUMENTS]
    other_hits = search_knowledge(OTHER_WORKSPACE, SEARCH_QUERY, k=3)
    leaked = foreign + [hit for hit in other_hits if hit.item_id not in GLOBEX_DOCUMENTS]
    if leaked:
        result.problems.append(f"search crossed workspaces: {[hit.item_id for hit in leaked]}")
    console.print(
        f"  isolation: Acme's search saw only Acme documents, Globex's only its own "
        f"({len(other_hits)} hit(s): {', '.join(sorted({h.title for h in other_hits}))})"
        if not leaked
        else f"  [red]{result.problems[-1]}[/]"
    )

    _step(console, "a plain SQS message, published without the client")
    target = next(iter(Prospect.query(DEMO_WORKSPACE, limit=1)))
    sent = aws_client("sqs").send_message(
        QueueUrl=config.queue_url("score-lead"),
        MessageBody=json.dumps({"workspaceId": DEMO_WORKSPACE, "prospectId": target.id}),
    )
    run_id = ledger.run_id_for_message("score-lead", sent["MessageId"])
    view = await_run(console, f"plain message for {target.id}", run_id)
    console.print(f"  run {run_id} (source {view.source}): {_brief(view)}")


# --------------------------------------------------------------------------- the summary


def _bar(count: int, largest: int, width: int = 40) -> str:
    return "█" * (round(width * count / largest) if largest else 0)


def _summary(
    console: Any, stack: Any, stats: InvocationStats, result: DemoResult, runs: list[Any]
) -> None:
    from rich.table import Table

    from crmjobs.models import KnowledgeItem, Prospect
    from crmjobs_local.outbox import Outbox

    _step(console, "summary")
    prospects = list(Prospect.query(DEMO_WORKSPACE))
    scores = [int(p.score) for p in prospects if p.score is not None]
    buckets = Counter(
        next(f"{low}-{high}" for low, high in SCORE_BUCKETS if low <= score <= high)
        for score in scores
    )
    largest = max(buckets.values(), default=0)
    table = Table(title=f"Acme Robotics: score distribution ({len(scores)} scored)")
    table.add_column("score")
    table.add_column("prospects", justify="right")
    table.add_column("")
    for low, high in SCORE_BUCKETS:
        count = buckets[f"{low}-{high}"]
        table.add_row(f"{low}-{high}", str(count), _bar(count, largest))
    console.print(table)

    stages = Table(title="prospects per stage")
    for column in ("stage", "prospects", "average score"):
        stages.add_column(column, justify="right" if column != "stage" else "left")
    for stage in STAGE_WEIGHTS:
        in_stage = [int(p.score) for p in prospects if p.stage == stage and p.score is not None]
        average = f"{sum(in_stage) / len(in_stage):.1f}" if in_stage else "-"
        stages.add_row(stage, str(sum(p.stage == stage for p in prospects)), average)
    console.print(stages)

    per_task: dict[str, Counter] = defaultdict(Counter)
    for run in runs:
        per_task[run.task][str(run.status)] += 1
    statuses = sorted({status for counts in per_task.values() for status in counts})
    run_table = Table(title="runs per task and status")
    run_table.add_column("task")
    for status in statuses:
        run_table.add_column(status, justify="right")
    for task in sorted(per_task):
        run_table.add_row(task, *(str(per_task[task][status]) for status in statuses))
    console.print(run_table)

    batches = Table(title="Lambda batches run by the queue pollers")
    for column in ("function", "batches", "records", "time"):
        batches.add_column(column, justify="left" if column == "function" else "right")
    for function in sorted(stats.batches):
        batches.add_row(
            function,
            str(stats.batches[function]),
            str(stats.records[function]),
            f"{stats.seconds[function]:.2f}s",
        )
    console.print(batches)

    documents = Table(title="documents")
    for column in ("workspace", "document", "status", "chunks"):
        documents.add_column(column, justify="right" if column == "chunks" else "left")
    total_chunks = 0
    for workspace_id in (DEMO_WORKSPACE, OTHER_WORKSPACE):
        for item in KnowledgeItem.query(workspace_id):
            total_chunks += int(item.chunk_count or 0)
            documents.add_row(workspace_id, item.title, item.status, str(item.chunk_count or 0))
    console.print(documents)
    console.print(f"documents indexed: {total_chunks} chunks in total")

    if result.search_hits:
        top = result.search_hits[0]
        console.print(f"search {SEARCH_QUERY!r}: top hit [bold]{top.title}[/] ({top.score:.3f})")
    outbox = Outbox(stack.data_dir / "outbox")
    outbox.sync()
    mails = list(outbox.folder.glob("*.eml"))
    console.print(f"outbox: {outbox.folder} ({len(mails)} mail(s) the campaigns and agents sent)")


def _demo_runs() -> list[Any]:
    from crmjobs import client
    from crmjobs.tasks import SYSTEM_WORKSPACE

    runs = []
    for workspace_id in (DEMO_WORKSPACE, OTHER_WORKSPACE, SYSTEM_WORKSPACE):
        runs.extend(client.list_runs(workspace_id, limit=10_000))
    return runs


def run_demo(console: Any, *, prospects: int, data_dir: Path, template: Path) -> int:
    """Start a local stack in `data_dir`, run the scenario, print the summary; the exit code."""
    from crmjobs_local import demo_agents, demo_campaigns
    from crmjobs_local.stack import LocalRuntime

    started = time.monotonic()
    stats = InvocationStats()
    result = DemoResult()
    stack = LocalRuntime(
        template,
        data_dir=data_dir,
        on_invoke=stats.record,
        api_port=0,  # the campaign part serves the HTTP API there (unsubscribe links)
        parameters={
            **demo_agents.stack_parameters(data_dir),
            **demo_campaigns.STACK_PARAMETERS,
        },
    )
    try:
        with console.status("starting the local stack (moto server, template.yaml)"):
            stack.start()
        console.print(
            f"[bold green]local stack[/] at {stack.endpoint_url}, data dir {stack.data_dir} "
            f"(started in {time.monotonic() - started:.1f}s; "
            f"{len(stack.resources.unsupported)} template parts not emulated)"
        )
        stack.serve()
        try:
            _scenario(console, stack, prospects, result)
            demo_agents.run_agents_demo(console, stack, DEMO_WORKSPACE, result.problems)
            demo_campaigns.run_campaigns_demo(console, stack, DEMO_WORKSPACE, result.problems)
        except TimeoutError as error:
            result.problems.append(str(error))
        runs = _demo_runs()
        _summary(console, stack, stats, result, runs)
    finally:
        stack.stop()
    console.print(f"wall time {time.monotonic() - started:.1f}s")
    return verdict(console, runs, result.problems)


def verdict(console: Any, runs: list[Any], problems: list[str]) -> int:
    """0 when every run COMPLETED and nothing else went wrong; else name what failed, 1."""
    unfinished = [run for run in runs if run.status != "COMPLETED"]
    for run in unfinished:
        console.print(
            f"[red]{run.id} {run.task} ({run.workspaceId}) {run.status}[/]: "
            f"{(run.error or {}).get('type')} {(run.error or {}).get('message')}"
        )
    for problem in problems:
        console.print(f"[red]problem:[/] {problem}")
    if unfinished or problems:
        console.print(f"[red]demo failed[/]: {len(unfinished)} of {len(runs)} runs not COMPLETED")
        return 1
    console.print(f"[bold green]demo ok[/]: all {len(runs)} runs COMPLETED")
    return 0
