"""`crmjobs dev --jwt` serving the trigger API and the dashboard on 127.0.0.1, tokens from
`crmjobs token`, and `crmjobs dashboard` against the running dev server: real processes,
real HTTP."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from crmjobs_local.cli import parsing
from crmjobs_local.http_api import LocalJwtAuthorizer
from crmjobs_local.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "crmjobs_local.cli"]


def _wait_for(log: Path, text: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert process.poll() is None, f"exited early:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no {text!r} in:\n{log.read_text()}"
        time.sleep(0.2)


def _stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=60)


def _until(check, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)
    return result


@pytest.mark.slow
def test_dev_serves_the_api_and_dashboard_behind_local_tokens(tmp_path):
    data_dir = tmp_path / "dev"
    api_port, dashboard_port, scoped_port = free_port(), free_port(), free_port()
    log = tmp_path / "dev.log"
    with log.open("w") as output:
        dev = subprocess.Popen(
            [
                *CLI,
                "dev",
                "--data-dir",
                str(data_dir),
                "--api-port",
                str(api_port),
                "--dashboard-port",
                str(dashboard_port),
                "--jwt",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        _wait_for(log, "dashboard at", dev)
        api = f"http://127.0.0.1:{api_port}"
        dashboard = f"http://127.0.0.1:{dashboard_port}"
        token = subprocess.run(
            [*CLI, "token", "ws-cli", "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout.strip()
        assert LocalJwtAuthorizer.in_data_dir(data_dir).workspace_of(token) == "ws-cli"
        bearer = {"Authorization": f"Bearer {token}"}

        assert requests.get(f"{api}/tasks", timeout=10).status_code == 401
        created = requests.post(
            f"{api}/tasks/score-lead/runs",
            json={"payload": {"workspaceId": "ws-cli", "prospectId": "p-none"}},
            headers=bearer,
            timeout=10,
        )
        assert created.status_code == 202, created.text
        run_id = created.json()["id"]
        other = requests.post(
            f"{api}/tasks/score-lead/runs",
            json={"payload": {"workspaceId": "ws-other", "prospectId": "p-1"}},
            headers=bearer,
            timeout=10,
        )
        assert other.status_code == 403
        # The dev server's poller runs it: the prospect does not exist, so it fails at once.
        failed = _until(
            lambda: (
                (body := requests.get(f"{api}/runs/{run_id}", headers=bearer, timeout=10).json())[
                    "status"
                ]
                == "FAILED"
                and body
            )
        )
        assert "not found" in failed["error"]["message"]

        signin = requests.get(f"{dashboard}/runs", allow_redirects=False, timeout=10)
        assert signin.status_code == 302 and "/signin" in signin.headers["Location"]
        with requests.Session() as visitor:
            page = visitor.get(f"{dashboard}/runs", params={"token": token}, timeout=10)
            assert page.status_code == 200 and run_id in page.text
            assert "workspace ws-cli" in page.text

        scoped_log = tmp_path / "dashboard.log"
        with scoped_log.open("w") as output:
            scoped = subprocess.Popen(
                [
                    *CLI,
                    "dashboard",
                    "--data-dir",
                    str(data_dir),
                    "--port",
                    str(scoped_port),
                    "--workspace",
                    "ws-other",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        try:
            _wait_for(scoped_log, "Ctrl-C stops", scoped)
            assert "dashboard of dev server" in scoped_log.read_text()
            url = f"http://127.0.0.1:{scoped_port}"
            listing = requests.get(f"{url}/runs", params={"workspace": "ws-cli"}, timeout=10)
            assert listing.status_code == 200 and run_id not in listing.text
            assert requests.get(f"{url}/runs/{run_id}", timeout=10).status_code == 404
        finally:
            assert _stop(scoped) == 0
    finally:
        code = _stop(dev)
    assert code == 0, log.read_text()
    assert "stopping" in log.read_text()


def test_dev_ports_and_commands_parse():
    parser = parsing.build_parser()
    dev = parser.parse_args(["dev", "--api-port", "4000", "--dashboard-port", "4001", "--jwt"])
    assert (dev.api_port, dev.dashboard_port, dev.jwt) == (4000, 4001, True)
    defaults = parser.parse_args(["dev"])
    assert (defaults.api_port, defaults.dashboard_port, defaults.jwt) == (3000, 3001, False)
    dashboard = parser.parse_args(["dashboard", "--stack", "crmjobs-prod", "--workspace", "w1"])
    assert (dashboard.stack, dashboard.workspace, dashboard.port) == ("crmjobs-prod", "w1", 3001)
