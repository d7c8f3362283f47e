"""The `crmjobs` command line: run the app locally, trigger tasks, manage runs and DLQs.

    crmjobs dev                       # the whole app locally (demo data seeded), until Ctrl-C
    crmjobs seed                      # the demo data into a running dev server
    crmjobs demo                      # seed a demo CRM and run every built task
    crmjobs trigger score-lead --payload '{"workspaceId": "w1", "prospectId": "p1"}' --wait
    crmjobs runs list --workspace w1 --status FAILED
    crmjobs dlq redrive score-lead --stack crmjobs-prod --profile prod

Where the commands act (`targets`): moto keeps its state in memory, so local state lives
only in the process of a running `crmjobs dev`. That process writes
`<data-dir>/endpoint.json` (its endpoint and the environment the functions get) and the
one-shot commands read it, from any folder of the project. With `--stack NAME` they act on
a deployed stack instead: the same environment is built from template.yaml's Globals,
resolved against the stack's resources in CloudFormation.

Modules: `parsing` (the commands and their arguments), `commands` (what each does),
`targets` (dev server or deployed stack), `rendering` (what they print).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from crmjobs.config import ConfigurationError
    from crmjobs.errors import PermanentError
    from crmjobs_local.cli import rendering
    from crmjobs_local.cli.errors import EXIT_ERROR, CliError
    from crmjobs_local.cli.parsing import build_parser
    from crmjobs_local.project import ProjectNotFound

    args = build_parser().parse_args(argv)
    try:
        return args.run(args, rendering.console())
    except (
        CliError,
        ProjectNotFound,
        PermanentError,
        ConfigurationError,
        ClientError,
        BotoCoreError,
    ) as error:
        rendering.console(sys.stderr).print(f"[red]error:[/] {error}", highlight=False)
        return EXIT_ERROR
