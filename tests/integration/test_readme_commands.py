"""The README's command blocks run as written, against a dev server started the README's
way (so a newcomer who follows it top to bottom sees every command work).

What runs: every line of a ```bash block that starts with `.venv/bin/crmjobs ` (a line
ending in `\\` goes on on the next line; a `# comment` after the command is dropped). The
`crmjobs dev` line is started first, in the background, and every other line then runs in
README order from the project folder; each must exit 0, or the code its comment names
(`# exit code 3`). Lines acting on a deployed stack (`--stack`) are not run. The dev
server gets its own data dir and ports (CRMJOBS_DATA_DIR, CRMJOBS_API_PORT,
CRMJOBS_DASHBOARD_PORT), so the commands find it as written.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from crmjobs_local.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CLI = ".venv/bin/crmjobs"
EXPECTED_CODE = re.compile(r"#.*\bexit code (\d+)")
#: Long enough for a cold dev server (moto, template.yaml, the seeded data).
STARTUP_SECONDS = 180
COMMAND_SECONDS = 300


def readme_commands(text: str) -> list[tuple[list[str], int]]:
    """(argv, expected exit code) of each `.venv/bin/crmjobs` line of the ```bash blocks."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            if not line.strip().startswith(f"{CLI} "):
                continue
            expected = EXPECTED_CODE.search(line)
            argv = shlex.split(line, comments=True)
            commands.append((argv, int(expected.group(1)) if expected else 0))
    return commands


def test_the_parser_reads_commands_as_the_readme_writes_them():
    text = (
        "```bash\n"
        ".venv/bin/crmjobs dev                 # serve until Ctrl-C\n"
        '.venv/bin/crmjobs trigger score-lead --payload \'{"a": "b # c"}\' \\\n'
        "    --wait --timeout 2                # exit code 3\n"
        "make demo\n"
        "```\n"
        "```python\n.venv/bin/crmjobs not-bash\n```\n"
    )
    assert readme_commands(text) == [
        ([CLI, "dev"], 0),
        (
            [
                CLI,
                "trigger",
                "score-lead",
                "--payload",
                '{"a": "b # c"}',
                "--wait",
                "--timeout",
                "2",
            ],
            3,
        ),
    ]


@pytest.mark.slow
def test_every_readme_command_runs_as_written(tmp_path):
    commands = readme_commands(README.read_text())
    dev = [argv for argv, _ in commands if argv[1:2] == ["dev"]]
    assert len(dev) == 1, "the README starts one dev server"
    others = [(argv, code) for argv, code in commands if argv[1] != "dev" and "--stack" not in argv]
    assert others, "the README runs commands against the dev server"
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CRMJOBS_"))},
        "CRMJOBS_DATA_DIR": str(tmp_path / "data"),
        "CRMJOBS_API_PORT": str(free_port()),
        "CRMJOBS_DASHBOARD_PORT": str(free_port()),
    }
    log = (tmp_path / "dev.log").open("w")
    server = subprocess.Popen(
        dev[0],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        endpoint = tmp_path / "data" / "endpoint.json"
        deadline = time.monotonic() + STARTUP_SECONDS
        while not endpoint.is_file():
            assert server.poll() is None, (tmp_path / "dev.log").read_text()
            assert time.monotonic() < deadline, "the dev server did not start"
            time.sleep(0.5)
        assert json.loads(endpoint.read_text())["endpoint"].startswith("http://127.0.0.1:")
        for argv, expected in others:
            done = subprocess.run(
                argv,
                cwd=ROOT,
                env=environment,
                capture_output=True,
                text=True,
                timeout=COMMAND_SECONDS,
            )
            assert done.returncode == expected, (
                f"{shlex.join(argv)} exited {done.returncode}, not {expected}:\n"
                f"{done.stdout}\n{done.stderr}"
            )
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
    assert not endpoint.exists(), "the dev server removes its endpoint file when it stops"
