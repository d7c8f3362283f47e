"""Invariants of template.yaml that the task registry, the runtime and Lambda rely on."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from crmjobs import config
from crmjobs.tasks import TASK_TIMEOUT_SECONDS, TASKS, TaskSpec
from crmjobs_local.template import (
    CloudFormationLoader,
    DynamoDbStreamEventSource,
    ResolutionContext,
    SqsEventSource,
    Template,
    resolve,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
SCRIPTS = REPO_ROOT / "scripts"

#: AWS's advice: a queue hides a message at least six times the function's timeout.
VISIBILITY_TIMEOUT_FACTOR = 6

TASK_BY_QUEUE = {f"{task.resource_prefix}Queue": task for task in TASKS.values()}


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.load(TEMPLATE_PATH)


def _properties_of_type(template: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource.get("Properties", {})
        for logical_id, resource in template.resources.items()
        if resource["Type"] == resource_type
    }


def _get_att(logical_id: str, attribute: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [logical_id, attribute]}


def _statements(policies: list[Any]) -> list[dict[str, Any]]:
    """Inline statements of a SAM `Policies` list (both branches of an `Fn::If`)."""
    found = []
    for policy in policies:
        if not isinstance(policy, dict) or "Statement" not in policy:
            continue
        for statement in policy["Statement"]:
            if "Fn::If" in statement:
                found.extend(statement["Fn::If"][1:])
            else:
                found.append(statement)
    return found


def _policy_templates(policies: list[Any], name: str) -> list[dict[str, Any]]:
    return [policy[name] for policy in policies if isinstance(policy, dict) and name in policy]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _grants(policies: list[Any], action: str, resource: Any) -> bool:
    return any(
        action in _as_list(statement["Action"]) and resource in _as_list(statement["Resource"])
        for statement in _statements(policies)
    )


def _role_of(function: Any) -> str | None:
    """The logical id of a function's explicit role (`Role: !GetAtt X.Arn`), None if SAM's."""
    role = function.properties.get("Role")
    return role["Fn::GetAtt"][0] if role else None


def _role_policies(template: Template, role: str) -> list[Any]:
    """Every policy document's statements a role written in the template ends up with: its
    inline policies, the RolePolicies naming it, and the managed policies it lists or that
    list it, as a SAM-style `Policies` list."""
    properties = template.resources[role]["Properties"]
    documents = [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
    listed = {arn["Ref"] for arn in properties.get("ManagedPolicyArns", []) if "Ref" in arn}
    for logical_id, resource in template.resources.items():
        policy = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::RolePolicy" and policy["RoleName"] == {"Ref": role}:
            documents.append(policy["PolicyDocument"])
        if resource["Type"] == "AWS::IAM::ManagedPolicy" and (
            logical_id in listed or {"Ref": role} in policy.get("Roles", [])
        ):
            documents.append(policy["PolicyDocument"])
    return documents


def _function_policies(template: Template, logical_id: str) -> list[Any]:
    function = template.function(logical_id)
    role = _role_of(function)
    return _role_policies(template, role) if role else function.properties["Policies"]


def _sqs_fed_functions(template: Template) -> list[tuple[str, Any, SqsEventSource, TaskSpec]]:
    fed = []
    for logical_id, function in template.functions().items():
        for event in function.events:
            if isinstance(event, SqsEventSource) and event.queue_logical_id in TASK_BY_QUEUE:
                fed.append((logical_id, function, event, TASK_BY_QUEUE[event.queue_logical_id]))
    return fed


# ---------------------------------------------------------------------------- queues


@pytest.mark.parametrize("task", TASKS.values(), ids=lambda task: task.name)
def test_task_queue_dead_letters_after_the_tasks_attempts(template: Template, task: TaskSpec):
    queue = template.resources[f"{task.resource_prefix}Queue"]
    dead_letter_queue = template.resources[f"{task.resource_prefix}DeadLetterQueue"]
    assert queue["Type"] == dead_letter_queue["Type"] == "AWS::SQS::Queue"

    redrive = queue["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == _get_att(
        f"{task.resource_prefix}DeadLetterQueue", "Arn"
    )
    assert redrive["maxReceiveCount"] == task.max_receive_count
    assert queue["Properties"]["VisibilityTimeout"] >= (
        VISIBILITY_TIMEOUT_FACTOR * TASK_TIMEOUT_SECONDS
    )
    # A standard queue keeps a message's first enqueue time when it is dead-lettered.
    assert (
        dead_letter_queue["Properties"]["MessageRetentionPeriod"]
        > queue["Properties"]["MessageRetentionPeriod"]
    )


def test_every_queue_is_encrypted(template: Template):
    queues = _properties_of_type(template, "AWS::SQS::Queue")
    assert len(queues) >= 2 * len(TASKS)
    unencrypted = [
        logical_id
        for logical_id, properties in queues.items()
        if properties.get("SqsManagedSseEnabled") is not True and "KmsMasterKeyId" not in properties
    ]
    assert unencrypted == []


def _dead_letter_queues(template: Template) -> set[str]:
    """Queues that receive failures: redrive targets and stream on-failure destinations."""
    queues = set()
    for properties in _properties_of_type(template, "AWS::SQS::Queue").values():
        if "RedrivePolicy" in properties:
            queues.add(properties["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0])
    for function in template.functions().values():
        for event in (function.properties.get("Events") or {}).values():
            destination = (event["Properties"].get("DestinationConfig") or {}).get("OnFailure")
            if destination:
                queues.add(destination["Destination"]["Fn::GetAtt"][0])
    return queues


def test_every_dead_letter_queue_raises_an_alarm(template: Template):
    alarms_by_queue = {
        alarm["Dimensions"][0]["Value"]["Fn::GetAtt"][0]: alarm
        for alarm in _properties_of_type(template, "AWS::CloudWatch::Alarm").values()
        if alarm["Namespace"] == "AWS/SQS"
    }
    dead_letter_queues = _dead_letter_queues(template)
    # the tasks', the knowledge stream's, the campaign feedback's and campaign stream's
    assert len(dead_letter_queues) == len(TASKS) + 3
    for queue in sorted(dead_letter_queues):
        alarm = alarms_by_queue.get(queue)
        assert alarm is not None, f"{queue} has no alarm"
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert alarm["Threshold"] == 1
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_alarm_topic_key_lets_cloudwatch_publish(template: Template):
    """CloudWatch cannot use the AWS managed aws/sns key, so the topic has its own key."""
    topic = template.resources["AlarmTopic"]["Properties"]
    key_id = topic["KmsMasterKeyId"]["Ref"]
    key_policy = template.resources[key_id]["Properties"]["KeyPolicy"]
    cloudwatch = [
        statement
        for statement in key_policy["Statement"]
        if statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(cloudwatch[0]["Action"])


# ---------------------------------------------------------------------------- tables


def test_every_table_is_encrypted_recoverable_and_on_demand(template: Template):
    tables = _properties_of_type(template, "AWS::DynamoDB::Table")
    assert len(tables) == 15
    for logical_id, properties in tables.items():
        assert properties["SSESpecification"] == {"SSEEnabled": True}, logical_id
        assert properties["PointInTimeRecoverySpecification"] == {
            "PointInTimeRecoveryEnabled": True
        }, logical_id
        assert properties["BillingMode"] == "PAY_PER_REQUEST", logical_id


def test_table_keys_are_declared_attributes(template: Template):
    for logical_id, properties in _properties_of_type(template, "AWS::DynamoDB::Table").items():
        declared = {attribute["AttributeName"] for attribute in properties["AttributeDefinitions"]}
        key_schemas = [properties["KeySchema"]] + [
            index["KeySchema"]
            for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes")
            for index in properties.get(kind, [])
        ]
        used = {key["AttributeName"] for schema in key_schemas for key in schema}
        assert used == declared, logical_id


# ---------------------------------------------------------------------------- functions


def test_sqs_event_sources_follow_the_runtime_contract(template: Template):
    fed = _sqs_fed_functions(template)
    assert fed, "no SQS-fed function in the template"
    consumers: dict[str, str] = {}
    for logical_id, function, event, task in fed:
        assert "ReportBatchItemFailures" in event.function_response_types, logical_id
        assert consumers.setdefault(event.queue_logical_id, logical_id) == logical_id
        queue = template.resources[event.queue_logical_id]["Properties"]
        assert queue["VisibilityTimeout"] >= VISIBILITY_TIMEOUT_FACTOR * function.timeout_seconds
        assert Path(function.code_uri) == Path("functions") / task.name.replace("-", "_")


def test_task_functions_run_with_their_tasks_role(template: Template):
    """The generated role: the task runtime, and its own queue and dead-letter queue only
    (never SAM's role, which would read every queue of the account)."""
    for logical_id, function, event, task in _sqs_fed_functions(template):
        role = _role_of(function)
        assert role == f"{task.resource_prefix}FunctionRole", logical_id
        assert {"Ref": "TaskRuntimePolicy"} in template.resources[role]["Properties"][
            "ManagedPolicyArns"
        ]
        policies = _role_policies(template, role)
        queue_arn = _get_att(event.queue_logical_id, "Arn")
        for action in ("sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:SendMessage"):
            assert _grants(policies, action, queue_arn), (logical_id, action)
        dead_letter_arn = _get_att(f"{task.resource_prefix}DeadLetterQueue", "Arn")
        assert _grants(policies, "sqs:SendMessage", dead_letter_arn), logical_id
        for table in ("RunsTable", "ConcurrencyTable"):
            assert _grants(policies, "dynamodb:UpdateItem", _get_att(table, "Arn")), logical_id
        assert _grants(policies, "dynamodb:PutItem", _get_att("IdempotencyTable", "Arn"))


def test_functions_with_a_written_role_wait_for_its_policies(template: Template):
    """Policies attached from their own resources (a RolePolicy, a managed policy's Roles)
    are in place before the function can receive its first event."""
    for logical_id, function in template.functions().items():
        role = _role_of(function)
        if role is None:
            continue
        attached = {
            policy_id
            for policy_id, resource in template.resources.items()
            if {"Ref": role}
            in (
                [resource["Properties"].get("RoleName")] + resource["Properties"].get("Roles", [])
                if resource["Type"] in ("AWS::IAM::RolePolicy", "AWS::IAM::ManagedPolicy")
                else []
            )
        }
        depends_on = set(_as_list(template.resources[logical_id].get("DependsOn", [])))
        assert attached <= depends_on, logical_id


def test_generated_task_section_matches_the_registry():
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gen_template.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_every_function_runs_with_its_generated_role_and_log_group(template: Template):
    """Each function names its own role and log group (named for its service, kept the
    stack's LogRetentionDays); none is left to SAM, whose role would bring
    AWSLambdaBasicExecutionRole."""
    functions = template.functions()
    assert len(functions) == 25
    for logical_id, function in functions.items():
        assert function.properties["Role"] == _get_att(f"{logical_id}Role", "Arn"), logical_id
        assert "Policies" not in function.properties, logical_id
        log_group = f"{logical_id}LogGroup"
        assert function.properties["LoggingConfig"] == {"LogGroup": {"Ref": log_group}}
        properties = template.resources[log_group]["Properties"]
        service = function.environment["POWERTOOLS_SERVICE_NAME"]
        expected_name = f"/aws/lambda/${{AWS::StackName}}-{service}"
        assert properties["LogGroupName"] == {"Fn::Sub": expected_name}, logical_id
        assert properties["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    retentions = [
        properties.get("RetentionInDays")
        for properties in _properties_of_type(template, "AWS::Logs::LogGroup").values()
    ]
    assert set(map(json.dumps, retentions)) == {json.dumps({"Ref": "LogRetentionDays"})}


def _generator(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(SCRIPTS))  # as when it runs: its helpers beside it
    spec = importlib.util.spec_from_file_location("gen_template", SCRIPTS / "gen_template.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generator_gives_a_new_function_its_role_and_log_group(monkeypatch):
    """A function written in the template gets its log group and role on `make template`;
    a renamed one gets them under its new name, and the old ones go."""
    generator = _generator(monkeypatch)
    text = TEMPLATE_PATH.read_text()
    added = text.replace(
        "\nOutputs:",
        "\n  ReportDigestFunction:\n    Type: AWS::Serverless::Function\n"
        "    Properties:\n      CodeUri: functions/report_digest/\n\nOutputs:",
    )
    regenerated = generator.regenerate(added)
    roles = yaml.load(regenerated, Loader=CloudFormationLoader)["Resources"]
    assert roles["ReportDigestFunctionLogGroup"]["Properties"]["LogGroupName"] == {
        "Fn::Sub": "/aws/lambda/${AWS::StackName}-report-digest"
    }
    role = roles["ReportDigestFunctionRole"]["Properties"]
    [own_log_group] = role["Policies"]  # no task, so no task runtime or queue
    assert own_log_group["PolicyDocument"]["Statement"] == [
        {
            "Sid": "WriteOwnLogGroup",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": _get_att("ReportDigestFunctionLogGroup", "Arn"),
        }
    ]
    assert generator.regenerate(regenerated) == regenerated
    renamed = generator.regenerate(
        text.replace("  ScheduledAgentHealthCheckFunction:\n", "  AgentHealthFunction:\n")
    )
    assert "  AgentHealthFunctionRole:\n" in renamed
    assert "  AgentHealthFunctionLogGroup:\n" in renamed
    assert "  ScheduledAgentHealthCheckFunctionRole:\n" not in renamed


def test_stream_event_sources_report_failures_and_keep_them(template: Template):
    streams = [
        (logical_id, event)
        for logical_id, function in template.functions().items()
        for event in function.events
        if isinstance(event, DynamoDbStreamEventSource)
    ]
    assert streams
    for logical_id, event in streams:
        assert "ReportBatchItemFailures" in event.function_response_types, logical_id
        raw = template.resources[logical_id]["Properties"]["Events"][event.name]["Properties"]
        assert raw["BisectBatchOnFunctionError"] is True
        assert raw["DestinationConfig"]["OnFailure"]["Type"] == "SQS"


def _defines_handler(source: str) -> bool:
    """A top-level `def handler` or `handler = ...` in the module."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == "handler":
            return True
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "handler" for target in node.targets
        ):
            return True
    return False


def test_every_function_code_uri_has_its_handler(template: Template):
    missing = []
    for logical_id, function in template.functions().items():
        handler_file = function.handler_file
        if not handler_file.is_file() or not _defines_handler(handler_file.read_text()):
            missing.append(f"{logical_id}: {handler_file.relative_to(REPO_ROOT)}")
    assert missing == []


def test_layer_requirements_match_pyproject():
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gen_layer_requirements.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_environment_names_every_table(template: Template):
    variables = template.function_globals["Environment"]["Variables"]
    tables = set(_properties_of_type(template, "AWS::DynamoDB::Table"))
    table_variables = {
        name: value["Ref"] for name, value in variables.items() if name.endswith("_TABLE")
    }
    assert sorted(table_variables.values()) == sorted(tables)
    for name, logical_id in table_variables.items():
        assert logical_id == "".join(part.capitalize() for part in name.split("_"))


# ---------------------------------------------------------------------------- state machines


def test_state_machine_starters_have_the_arn_and_the_permission(template: Template):
    machines = set(_properties_of_type(template, "AWS::Serverless::StateMachine"))
    starters = 0
    for logical_id, function in template.functions().items():
        for name, value in function.environment.items():
            if not name.startswith("STATE_MACHINE_ARN_"):
                continue
            starters += 1
            machine = value["Ref"]
            assert machine in machines, (logical_id, name)
            policies = _function_policies(template, logical_id)
            assert _grants(policies, "states:StartExecution", {"Ref": machine}), logical_id
    assert starters >= len(machines)


def test_state_machine_definitions_match_their_substitutions(template: Template):
    machines = _properties_of_type(template, "AWS::Serverless::StateMachine")
    assert machines
    for logical_id, properties in machines.items():
        definition = (REPO_ROOT / properties["DefinitionUri"]).read_text()
        json.loads(definition)
        placeholders = set(re.findall(r"\$\{(\w+)\}", definition))
        substitutions = properties["DefinitionSubstitutions"]
        assert placeholders == set(substitutions), logical_id
        invoked = {
            policy["FunctionName"]["Ref"]
            for policy in _policy_templates(properties["Policies"], "LambdaInvokePolicy")
        }
        targets = {
            value["Fn::GetAtt"][0]
            for value in substitutions.values()
            if isinstance(value, dict) and "Fn::GetAtt" in value
        }
        assert targets == invoked, logical_id
        assert properties["Logging"]["Level"] == "ERROR"
        assert properties["Tracing"] == {"Enabled": True}


# ---------------------------------------------------------------------------- schedules


def test_schedules_deliver_to_task_queues_through_the_scheduler_role(template: Template):
    sendable = {
        resource["Fn::GetAtt"][0]
        for document in _role_policies(template, "SchedulerRole")
        for statement in document["Statement"]
        for resource in _as_list(statement["Resource"])
    }
    assert sendable == set(TASK_BY_QUEUE)  # delayed runs of any task go through it
    schedules = _properties_of_type(template, "AWS::Scheduler::Schedule")
    assert len(schedules) == 3
    for logical_id, schedule in schedules.items():
        target = schedule["Target"]
        assert target["Arn"]["Fn::GetAtt"][0] in TASK_BY_QUEUE, logical_id
        assert target["RoleArn"] == _get_att("SchedulerRole", "Arn")
        assert set(json.loads(target["Input"])) == {"scheduledTime"}


# ---------------------------------------------------------------------------- resolution

ACCOUNT = "123456789012"
REGION = "ap-southeast-2"
STACK = "crmjobs-production"
#: CloudFormation appends a 12-13 character random suffix to names it generates.
SUFFIX = "ABCDEFGHIJKLM"


def _deployed_context(template: Template, parameters: dict[str, str]) -> ResolutionContext:
    """What intrinsics resolve to once deployed, with generated names at their longest."""
    context = template.context(
        region=REGION, account_id=ACCOUNT, stack_name=STACK, parameters=parameters
    )
    for logical_id, resource in template.resources.items():
        properties = resource.get("Properties", {})
        generated = f"{STACK}-{logical_id}-{SUFFIX}"
        kind = resource["Type"]
        if kind == "AWS::SQS::Queue":
            name = resolve(properties.get("QueueName", generated), context)
            context.references[logical_id] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
            context.attributes[(logical_id, "QueueName")] = name
            context.attributes[(logical_id, "Arn")] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
        elif kind == "AWS::DynamoDB::Table":
            name = resolve(properties.get("TableName", generated), context)
            context.references[logical_id] = name
        elif kind == "AWS::Serverless::StateMachine":
            context.references[logical_id] = (
                f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{logical_id}-{SUFFIX}"
            )
        elif kind == "AWS::IAM::Role":
            context.attributes[(logical_id, "Arn")] = f"arn:aws:iam::{ACCOUNT}:role/{generated}"
        elif kind == "AWS::Scheduler::ScheduleGroup":
            context.references[logical_id] = resolve(properties["Name"], context)
        elif kind == "AWS::OpenSearchService::Domain":
            context.attributes[(logical_id, "DomainEndpoint")] = (
                f"search-crmjobs-12345678-abcdefghijklmnopqrstuvwxyz.{REGION}.es.amazonaws.com"
            )
        elif kind == "AWS::ApiGatewayV2::Authorizer":
            context.references[logical_id] = "abc123"
        else:
            context.references[logical_id] = generated
    return context


@pytest.mark.parametrize(
    "queue_url",
    [
        f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{STACK}-score-lead",
        f"http://127.0.0.1:5123/{ACCOUNT}/{STACK}-score-lead",  # a moto server's
    ],
    ids=["deployed", "local"],
)
def test_queue_url_prefix_names_every_tasks_queues(template: Template, queue_url: str):
    """config.queue_url(task) = prefix + task, its dead-letter queue's + "-dlq": the queues'
    URLs once deployed, whatever the SQS endpoint looks like."""
    context = _deployed_context(template, {})
    base = queue_url.removesuffix(f"/{STACK}-score-lead")
    for logical_id, resource in template.resources.items():
        if resource["Type"] == "AWS::SQS::Queue":
            name = context.attributes[(logical_id, "QueueName")]
            context.references[logical_id] = f"{base}/{name}"
    variables = resolve(template.function_globals["Environment"]["Variables"], context)
    assert variables["QUEUE_URL_PREFIX"] == f"{base}/{STACK}-"
    assert [name for name in variables if "QUEUE_URL" in name or "DLQ_URL" in name] == [
        "QUEUE_URL_PREFIX"
    ]
    with config.function_environment(variables):
        for task in TASKS.values():
            assert config.queue_url(task.name) == context.ref(f"{task.resource_prefix}Queue")
            assert config.dead_letter_queue_url(task.name) == context.ref(
                f"{task.resource_prefix}DeadLetterQueue"
            )


def test_defaults_create_a_domain_and_use_iam_auth(template: Template):
    context = _deployed_context(template, {})
    variables = resolve(template.function_globals["Environment"]["Variables"], context)
    assert variables["OPENSEARCH_ENDPOINT"].startswith("https://search-crmjobs-")
    assert variables["OPENSEARCH_SERVICE"] == "es"
    assert variables["AUTH_MODE"] == "iam"
    route = resolve(template.resources["ApiRoute"]["Properties"], context)
    assert route["AuthorizationType"] == "AWS_IAM"
    assert "AuthorizerId" not in route
    assert context.condition("CreateOpenSearchDomain")
    assert not context.condition("HasAlarmEmail")


def test_parameters_switch_to_jwt_auth_and_an_existing_collection(template: Template):
    endpoint = "https://abc123.ap-southeast-2.aoss.amazonaws.com"
    context = _deployed_context(
        template,
        {
            "OpenSearchEndpoint": endpoint,
            "OpenSearchService": "aoss",
            "JwtIssuer": "https://issuer.example.com/",
            "JwtAudience": "crm-app,crm-cli",
            "AlarmEmail": "ops@example.com",
        },
    )
    variables = resolve(template.function_globals["Environment"]["Variables"], context)
    assert variables["OPENSEARCH_ENDPOINT"] == endpoint
    assert variables["OPENSEARCH_SERVICE"] == "aoss"
    assert variables["AUTH_MODE"] == "jwt"
    route = resolve(template.resources["ApiRoute"]["Properties"], context)
    assert route["AuthorizationType"] == "JWT"
    assert route["AuthorizerId"] == "abc123"
    authorizer = resolve(template.resources["JwtAuthorizer"]["Properties"], context)
    assert authorizer["JwtConfiguration"]["Audience"] == ["crm-app", "crm-cli"]
    assert not context.condition("CreateOpenSearchDomain")
    assert context.condition("HasAlarmEmail")
