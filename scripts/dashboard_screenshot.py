"""Take the README's screenshot of the run list (docs/dashboard.png).

Runs a local runtime in-process, records a demo workspace's runs of several tasks (some
completed, one failed, one delayed, one canceled, tagged), serves the dashboard on
127.0.0.1 and photographs its run list with Debian's chromium (apt-get install chromium).

    .venv/bin/python scripts/dashboard_screenshot.py [--out docs/dashboard.png]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def seed(runtime) -> str:
    from crmjobs import client
    from crmjobs.models import Prospect, Workspace

    workspace = "ws-demo"
    Workspace(id=workspace, name="Demo", subscription_tier="professional").save()
    for n, name in enumerate(["Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra"]):
        Prospect(
            workspace_id=workspace, id=f"p-{n:04d}", name=name, email="x@acme.com", stage="new"
        ).save()
    for n in range(4):
        tags = ["import"] if n % 2 else ["crm-sync"]
        client.trigger(
            "score-lead", {"workspaceId": workspace, "prospectId": f"p-{n:04d}"}, tags=tags
        )
    client.trigger("score-lead", {"workspaceId": workspace, "prospectId": "p-9999"})
    client.trigger("bulk-score-leads", {"workspaceId": workspace}, tags=["manual"])
    while any(
        runtime.source_for_task(task).poll_once() is not None
        for task in ("score-lead", "bulk-score-leads")
    ):
        pass
    canceled = client.trigger(
        "score-lead", {"workspaceId": workspace, "prospectId": "p-0001"}, delay=300
    )
    client.cancel(canceled.id)
    client.trigger("bulk-score-leads", {"workspaceId": workspace}, delay=3600, tags=["nightly"])
    client.trigger(
        "score-lead", {"workspaceId": workspace, "prospectId": "p-0002"}, tags=["import"]
    )
    return workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    args = parser.parse_args()
    os.environ.update({"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "ERROR"})
    from playwright.sync_api import sync_playwright

    from crmjobs_local.dashboard import create_app
    from crmjobs_local.http_api import BackgroundServer
    from crmjobs_local.stack import LocalRuntime

    with tempfile.TemporaryDirectory() as data_dir:
        with LocalRuntime(
            ROOT / "template.yaml", data_dir=Path(data_dir), in_process=True
        ) as runtime:
            workspace = seed(runtime)
            app = create_app(events_dir=ROOT / "events")
            with BackgroundServer(app) as server, sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
                )
                page = browser.new_page(viewport={"width": 1400, "height": 640})
                page.goto(f"{server.url}/runs?workspace={workspace}")
                page.wait_for_selector("tr[data-run]")
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out), full_page=True)
                browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
