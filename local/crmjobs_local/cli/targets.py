"""Where a command acts: a running `crmjobs dev` (its endpoint.json), or a deployed stack
whose functions' environment is rebuilt from template.yaml and CloudFormation."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crmjobs_local.cli.errors import CliError
from crmjobs_local.project import (
    ENDPOINT_FILE,
    ProjectNotFound,
    dev_server_endpoint_file,
    find_template,
)
from crmjobs_local.stack import LOCAL_CREDENTIALS, reset_cached_clients

NO_DEV_SERVER = "start `crmjobs dev` first or pass --stack"
#: Settings of every local process the CLI starts: no metric lines, no request log.
QUIET_SETTINGS = {"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING"}

if TYPE_CHECKING:
    from crmjobs_local.stack import LocalRuntime


@dataclass
class Target:
    """Where a command acts: the environment to apply, and for a dev server its details."""

    environment: dict[str, str]
    description: str
    dev_server: dict[str, Any] | None = None
    unresolved: list[str] = field(default_factory=list)


def local_environment(runtime: LocalRuntime) -> dict[str, str]:
    """What a process needs to act on a running LocalRuntime: endpoint, names and settings."""
    assert runtime.resources is not None and runtime.endpoint_url is not None
    return {
        **LOCAL_CREDENTIALS,
        "AWS_ENDPOINT_URL": runtime.endpoint_url,
        **runtime.resources.environment(),
        **runtime.settings,
        **QUIET_SETTINGS,
    }


def endpoint_document(runtime: LocalRuntime) -> dict[str, Any]:
    """The contents of endpoint.json for a started LocalRuntime (server mode)."""
    resources = runtime.resources
    return {
        "endpoint": runtime.endpoint_url,
        "pid": os.getpid(),
        "dataDir": str(runtime.data_dir),
        "startedAt": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": local_environment(runtime),
        "functions": {
            function.logical_id: {
                "name": function.name,
                "arn": function.arn,
                "handlerFile": str(function.handler_file),
                "handlerName": function.handler_name,
                "timeoutSeconds": function.timeout_seconds,
                "memoryMb": function.memory_mb,
                "environment": {**function.environment, **runtime.settings},
            }
            for function in resources.functions.values()
        },
        "schedules": {
            schedule.logical_id: {"name": schedule.name, "group": schedule.group_name}
            for schedule in resources.schedules.values()
        },
    }


def write_endpoint_file(runtime: LocalRuntime) -> Path:
    path = Path(runtime.data_dir) / ENDPOINT_FILE
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(endpoint_document(runtime), indent=2))
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

