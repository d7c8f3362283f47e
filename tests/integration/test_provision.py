"""template.yaml -> moto: short tags, intrinsic resolution, and every provisioned setting."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from crmjobs import config
from crmjobs.tasks import TASKS
from crmjobs_local.provision import LocalResources, provision
from crmjobs_local.template import (
    NO_VALUE,
    DynamoDbStreamEventSource,
    OtherEventSource,
    ResolutionContext,
    SqsEventSource,
    Template,
    UnresolvedReference,
    load_template,
    resolve,
)

REPO = Path(__file__).resolve().parents[2]
MINI_TEMPLATE = REPO / "tests" / "fixtures" / "mini_template.yaml"
REAL_TEMPLATE = REPO / "template.yaml"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def mini() -> Template:
    return Template.load(MINI_TEMPLATE)


@pytest.fixture(scope="module")
def aws():
    """One moto account for the module: each test provisions under its own stack name."""
    with mock_aws():
        yield


@pytest.fixture(scope="module")
def resources(aws, mini) -> LocalResources:
    return provision(mini)


def test_short_tags_load_as_long_forms():
    document = load_template(MINI_TEMPLATE)
    variables = document["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["ITEMS_TABLE"] == {"Ref": "ItemsTable"}
    assert variables["WORK_QUEUE_ARN"] == {"Fn::GetAtt": ["WorkQueue", "Arn"]}
    assert variables["OPENSEARCH_ENDPOINT"] == {
        "Fn::If": [
            "UseOpenSearch",
            {"Fn::GetAtt": ["SearchDomain", "DomainEndpoint"]},
            {"Ref": "AWS::NoValue"},
        ]
    }
    assert document["Conditions"]["IsLocalStage"] == {
        "Fn::Not": [{"Fn::Not": [{"Fn::Equals": [{"Ref": "Stage"}, "local"]}]}]
    }


def test_a_document_without_resources_is_rejected(tmp_path):
    path = tmp_path / "not_a_template.yaml"
    path.write_text("just: data\n")
    with pytest.raises(ValueError, match="no Resources"):
        load_template(path)


def _context() -> ResolutionContext:
    return ResolutionContext(
        region=REGION,
        account_id="123456789012",
        stack_name="demo",
        parameters={"Stage": "dev", "Zones": ["a", "b"]},
        condition_definitions={
            "IsDev": {"Fn::Equals": [{"Ref": "Stage"}, "dev"]},
            "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
            "DevOrProd": {"Fn::Or": [{"Condition": "IsDev"}, {"Condition": "IsProd"}]},
            "DevAndProd": {"Fn::And": [{"Condition": "IsDev"}, {"Condition": "IsProd"}]},
        },
        mappings={"Sizes": {"dev": {"Memory": 256}}},
        references={"Table": "demo-Table"},
        attributes={("Queue", "Arn"): "arn:aws:sqs:us-east-1:123456789012:demo-Queue"},
    )


def test_resolve_evaluates_intrinsics_against_the_context():
    context = _context()
    assert resolve({"Fn::Sub": "${AWS::StackName}-${Stage}-${Queue.Arn}-${!Literal}"}, context) == (
        "demo-dev-arn:aws:sqs:us-east-1:123456789012:demo-Queue-${Literal}"
    )
    assert resolve({"Fn::Sub": ["${Name}/${Table}", {"Name": {"Ref": "Stage"}}]}, context) == (
        "dev/demo-Table"
    )
    assert resolve({"Fn::Join": ["-", [{"Ref": "Stage"}, "x"]]}, context) == "dev-x"
    assert resolve({"Fn::GetAtt": "Queue.Arn"}, context).endswith(":demo-Queue")
    assert resolve({"Fn::Select": [1, {"Ref": "Zones"}]}, context) == "b"
    assert resolve({"Fn::Split": [",", "a,b,c"]}, context) == ["a", "b", "c"]
    assert resolve({"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "Memory"]}, context) == 256
    assert resolve({"Fn::Base64": "hi"}, context) == "aGk="
    assert resolve({"Fn::ToJsonString": {"stage": {"Ref": "Stage"}}}, context) == '{"stage":"dev"}'
    assert resolve({"Fn::Length": {"Ref": "Zones"}}, context) == 2
    assert resolve({"Fn::If": ["IsProd", "big", "small"]}, context) == "small"
    assert context.condition("DevOrProd") is True
    assert context.condition("DevAndProd") is False


def test_no_value_removes_the_property_or_list_item():
    context = _context()
    value = {
        "Keep": 1,
        "Drop": {"Fn::If": ["IsProd", "x", {"Ref": "AWS::NoValue"}]},
        "List": ["a", {"Fn::If": ["IsDev", {"Ref": "AWS::NoValue"}, "b"]}],
    }
    assert resolve(value, context) == {"Keep": 1, "List": ["a"]}
    assert resolve({"Ref": "AWS::NoValue"}, context) is NO_VALUE


@pytest.mark.parametrize(
    "value",
    [
        {"Ref": "Missing"},
        {"Fn::GetAtt": ["Table", "StreamArn"]},
        {"Fn::ImportValue": "shared-vpc"},
        {"Fn::If": ["Undefined", 1, 2]},
        {"Fn::Cidr": ["10.0.0.0/16", 4, 8]},
    ],
)
def test_unknown_references_raise(value):
    with pytest.raises(UnresolvedReference):
        resolve(value, _context())


def test_parameters_take_defaults_and_checked_overrides(mini):
    assert mini.parameter_values() == {"Stage": "local", "VectorBackend": "opensearch"}
    assert mini.parameter_values({"VectorBackend": "local"})["VectorBackend"] == "local"
    with pytest.raises(ValueError, match="not one of"):
        mini.parameter_values({"VectorBackend": "faiss"})
    with pytest.raises(ValueError, match="unknown template parameters: Nope"):
        mini.parameter_values({"Nope": "x"})


def test_function_view_merges_globals_and_parses_events(mini):
    functions = mini.functions()
    assert set(functions) == {"WorkFunction", "ProcessItemFunction"}
    work, process = functions["WorkFunction"], functions["ProcessItemFunction"]
    assert (work.timeout_seconds, process.timeout_seconds) == (30, 10)
    assert work.memory_mb == process.memory_mb == 256
    assert work.handler_file == MINI_TEMPLATE.parent / "functions" / "process_item" / "app.py"
    assert work.handler_name == "handler"
    # The function's own value replaces the global one, intrinsic and all.
    assert work.environment["STAGE"] == {"Fn::Sub": "${Stage}-work"}
    assert process.environment["STAGE"] == {"Ref": "Stage"}
    assert work.properties["Layers"] == [{"Ref": "CommonLayer"}]
    queue, stream, http = work.events
    assert queue == SqsEventSource(
        name="Queue",
        queue_logical_id="WorkQueue",
        queue={"Fn::GetAtt": ["WorkQueue", "Arn"]},
        batch_size=5,
        maximum_batching_window_seconds=1,
        function_response_types=("ReportBatchItemFailures",),
        maximum_concurrency=2,
    )
    assert isinstance(stream, DynamoDbStreamEventSource)
    assert (stream.table_logical_id, stream.starting_position, stream.batch_size) == (
        "ItemsTable",
        "TRIM_HORIZON",
        100,
    )
    assert http == OtherEventSource("Http", "HttpApi", {"Path": "/work", "Method": "post"})


def test_provisions_tables_with_indexes_ttl_streams_and_encryption(resources):
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    name = resources.tables["ItemsTable"]
    assert name == "crmjobs-local-ItemsTable"
    table = dynamodb.describe_table(TableName=name)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert [key["AttributeName"] for key in table["KeySchema"]] == ["pk", "sk"]
    (gsi,) = table["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "by-status"
    assert [key["AttributeName"] for key in gsi["KeySchema"]] == ["status", "created_at"]
    (lsi,) = table["LocalSecondaryIndexes"]
    assert (lsi["IndexName"], lsi["Projection"]["NonKeyAttributes"]) == ("by-created", ["status"])
    assert table["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    assert table["SSEDescription"]["Status"] == "ENABLED"
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    backups = dynamodb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_provisions_queues_with_redrive_to_their_dead_letter_queue(resources):
    sqs = boto3.client("sqs", region_name=REGION)
    work, dlq = resources.queues["WorkQueue"], resources.queues["WorkDLQ"]
    assert dlq.name == "crmjobs-local-work-dlq"  # the template's own QueueName
    attributes = sqs.get_queue_attributes(QueueUrl=work.url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "180"
    assert attributes["DelaySeconds"] == "2"
    assert attributes["SqsManagedSseEnabled"] == "true"
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq.arn,
        "maxReceiveCount": 3,
    }
    dlq_attributes = sqs.get_queue_attributes(
        QueueUrl=dlq.url, AttributeNames=["MessageRetentionPeriod"]
    )["Attributes"]
    assert dlq_attributes["MessageRetentionPeriod"] == "1209600"


def test_provisions_state_machine_with_substituted_definition(resources):
    process = resources.functions["ProcessItemFunction"]
    arn = resources.state_machines["FanOutStateMachine"]
    machine = boto3.client("stepfunctions", region_name=REGION).describe_state_machine(
        stateMachineArn=arn
    )
    definition = json.loads(machine["definition"])
    task = definition["States"]["ProcessItems"]["ItemProcessor"]["States"]["ProcessItem"]
    assert task["Parameters"]["FunctionName"] == process.arn
    assert process.arn == (
        "arn:aws:lambda:us-east-1:123456789012:function:crmjobs-local-ProcessItemFunction"
    )
    assert task["Parameters"]["Payload"]["table"] == resources.tables["ItemsTable"]
    assert machine["roleArn"].startswith("arn:aws:iam::123456789012:role/")
    configuration = boto3.client("lambda", region_name=REGION).get_function_configuration(
        FunctionName=process.name
    )
    assert (configuration["Timeout"], configuration["MemorySize"]) == (10, 256)
    assert configuration["Environment"]["Variables"] == process.environment


def test_provisions_schedules_with_resolved_targets(resources):
    schedule = resources.schedules["NightlySchedule"]
    stored = boto3.client("scheduler", region_name=REGION).get_schedule(
        GroupName=schedule.group_name, Name=schedule.name
    )
    assert stored["GroupName"] == "crmjobs-local-jobs"
    assert stored["ScheduleExpression"] == "cron(0 3 * * ? *)"
    assert stored["ScheduleExpressionTimezone"] == "Europe/Paris"
    assert stored["Target"]["Arn"] == resources.queues["WorkQueue"].arn == schedule.target_arn
    assert stored["Target"]["RoleArn"] == resources.roles["SchedulerRole"]
    assert json.loads(stored["Target"]["Input"]) == {"task": "nightly", "stage": "local"}
    policy = boto3.client("iam").get_role_policy(
        RoleName="crmjobs-local-SchedulerRole", PolicyName="send-to-queues"
    )["PolicyDocument"]
    assert policy["Statement"][0]["Resource"] == resources.queues["WorkQueue"].arn


def test_resolves_function_and_global_environments(resources):
    environment = resources.environment()
    assert environment["ITEMS_TABLE"] == resources.tables["ItemsTable"]
    assert environment["QUEUE_URL_WORK"] == resources.queues["WorkQueue"].url
    assert environment["DLQ_URL_WORK"] == resources.queues["WorkDLQ"].url
    assert environment["SCHEDULE_GROUP_NAME"] == "crmjobs-local-jobs"
    assert environment["LOCAL_ONLY"] == "yes"
    assert (environment["EMBEDDINGS_DIMENSION"], environment["TRACING_ENABLED"]) == ("384", "false")
    work = resources.functions["WorkFunction"]
    assert work.environment["STAGE"] == "local-work"
    assert (
        work.environment["STATE_MACHINE_ARN_FAN_OUT"]
        == (resources.state_machines["FanOutStateMachine"])
    )
    assert "STATE_MACHINE_ARN_FAN_OUT" not in resources.functions["ProcessItemFunction"].environment
    assert resources.function_named(work.arn) is work


def test_reports_what_it_cannot_emulate(resources):
    unsupported = {(item.logical_id, item.resource_type) for item in resources.unsupported}
    assert unsupported == {
        ("CommonLayer", "AWS::Serverless::LayerVersion"),
        ("ItemsTable", "AWS::DynamoDB::Table"),  # ContributorInsightsSpecification
        ("WorkDLQAlarm", "AWS::CloudWatch::Alarm"),
        ("SearchDomain", "AWS::OpenSearchService::Domain"),
    }
    assert all(item.reason for item in resources.unsupported)
    # The domain exists under the default parameters, so its endpoint cannot be resolved.
    assert "OPENSEARCH_ENDPOINT" not in resources.environment()
    assert {(item.scope, item.name) for item in resources.unresolved} == {
        ("Globals", "OPENSEARCH_ENDPOINT"),
        ("WorkFunction", "OPENSEARCH_ENDPOINT"),
        ("ProcessItemFunction", "OPENSEARCH_ENDPOINT"),
    }


def test_a_false_condition_skips_the_resource_and_its_references(aws, mini):
    resources = provision(mini, parameters={"VectorBackend": "local"}, stack_name="other")
    assert [(item.logical_id, item.reason) for item in resources.skipped] == [
        ("SearchDomain", "condition UseOpenSearch is false")
    ]
    assert "SearchDomain" not in {item.logical_id for item in resources.unsupported}
    assert resources.unresolved == []
    assert resources.environment()["VECTOR_BACKEND"] == "local"
    assert resources.tables == {"ItemsTable": "other-ItemsTable"}


def test_circular_references_are_rejected(aws, tmp_path):
    template = Template(
        document={
            "Resources": {
                "First": {
                    "Type": "AWS::SQS::Queue",
                    "Properties": {
                        "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["Second", "Arn"]}}
                    },
                },
                "Second": {
                    "Type": "AWS::SQS::Queue",
                    "Properties": {"QueueName": {"Fn::Sub": "${First.QueueName}-dlq"}},
                },
            }
        },
        base_dir=tmp_path,
    )
    with pytest.raises(ValueError, match="circular references between resources: First, Second"):
        provision(template)


def test_secrets_are_generated_and_api_endpoints_point_at_the_local_http_api(aws, tmp_path):
    template = Template(
        document={
            "Resources": {
                "Api": {"Type": "AWS::ApiGatewayV2::Api",
                        "Properties": {"Name": "api", "ProtocolType": "HTTP"}},
                "Generated": {
                    "Type": "AWS::SecretsManager::Secret",
                    "Properties": {"GenerateSecretString": {
                        "PasswordLength": 40, "ExcludePunctuation": True}},
                },
                "Templated": {
                    "Type": "AWS::SecretsManager::Secret",
                    "Properties": {"Name": "db", "GenerateSecretString": {
                        "SecretStringTemplate": '{"user": "app"}',
                        "GenerateStringKey": "password"}},
                },
                "Given": {"Type": "AWS::SecretsManager::Secret",
                          "Properties": {"SecretString": {"Fn::Sub": "${AWS::Region}-key"}}},
            }
        },
        base_dir=tmp_path,
    )
    resources = provision(template, stack_name="secrets", api_endpoint="http://127.0.0.1:3999")
    assert resources.unsupported == []
    assert resources.apis == {"Api": "http://127.0.0.1:3999"}
    secretsmanager = boto3.client("secretsmanager", region_name=REGION)

    def value(logical_id: str) -> str:
        arn = resources.secrets[logical_id]
        return secretsmanager.get_secret_value(SecretId=arn)["SecretString"]

    generated = value("Generated")
    assert len(generated) == 40 and generated.isalnum()
    templated = json.loads(value("Templated"))
    assert templated["user"] == "app" and len(templated["password"]) == 32
    assert value("Given") == "us-east-1-key"
    assert resources.secrets["Templated"].split(":")[6].startswith("db")
    # Two stacks never share a generated value.
    unnamed = {key: template.resources[key] for key in ("Api", "Generated")}
    other = provision(Template({"Resources": unnamed}, tmp_path), stack_name="secrets-2")
    other_arn = other.secrets["Generated"]
    assert secretsmanager.get_secret_value(SecretId=other_arn)["SecretString"] != generated
    assert other.apis["Api"].startswith("https://")  # moto's, when no local URL is given


@pytest.mark.skipif(not REAL_TEMPLATE.exists(), reason="template.yaml is not written yet")
def test_provisions_the_real_template(aws):
    resources = provision(REAL_TEMPLATE, stack_name="real")
    declared = Template.load(REAL_TEMPLATE).resources
    environment = resources.environment()
    sqs = boto3.client("sqs", region_name=REGION)
    for task in TASKS.values():
        prefix = task.resource_prefix
        with config.function_environment(environment):
            queue_url = config.queue_url(task.name)
            dlq_url = config.dead_letter_queue_url(task.name)
        # The naming rule finds the very queues the template created.
        assert queue_url == resources.queues[f"{prefix}Queue"].url
        assert dlq_url == resources.queues[f"{prefix}DeadLetterQueue"].url
        redrive = json.loads(
            sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])[
                "Attributes"
            ]["RedrivePolicy"]
        )
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        assert redrive == {
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": task.max_receive_count,
        }
    tables = set(resources.tables.values())
    table_variables = [name for name in environment if name.endswith("_TABLE")]
    # Every table of the template is named to the functions, once.
    assert len(table_variables) == len(resources.tables) == sum(
        resource["Type"] == "AWS::DynamoDB::Table" for resource in declared.values()
    )
    assert {environment[name] for name in table_variables} == tables
    for function in resources.functions.values():
        assert function.handler_file.is_file(), function.logical_id
        for name, value in function.environment.items():
            if name.startswith("STATE_MACHINE_ARN_"):
                assert value in resources.state_machines.values(), (function.logical_id, name)
    assert len(resources.state_machines) == sum(
        resource["Type"] == "AWS::Serverless::StateMachine" for resource in declared.values()
    )
    stepfunctions = boto3.client("stepfunctions", region_name=REGION)
    function_arns = {function.arn for function in resources.functions.values()}
    for arn in resources.state_machines.values():
        definition = stepfunctions.describe_state_machine(stateMachineArn=arn)["definition"]
        assert "${" not in definition, arn
        assert any(function_arn in definition for function_arn in function_arns), arn
    emulated = {
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::Serverless::Function",
        "AWS::Serverless::StateMachine",
        "AWS::Scheduler::Schedule",
        "AWS::SNS::Topic",
    }
    assert not [
        item
        for item in resources.unsupported
        if item.resource_type in emulated and "property" not in item.reason
    ]
    for schedule in resources.schedules.values():
        assert schedule.target_arn in {queue.arn for queue in resources.queues.values()}
    # A task function's role: the runtime's managed policy attached, its own statements put.
    iam = boto3.client("iam")
    role_name = resources.roles["ScoreLeadFunctionRole"].rsplit("/", 1)[-1]
    attached = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    assert [policy["PolicyArn"] for policy in attached] == [
        resources.managed_policies["TaskRuntimePolicy"]
    ]
    assert set(iam.list_role_policies(RoleName=role_name)["PolicyNames"]) == {
        "own-log-group",
        "own-queue",
        "score-lead",
    }
    function = boto3.client("lambda", region_name=REGION).get_function(
        FunctionName=resources.functions["ScoreLeadFunction"].name
    )
    assert function["Configuration"]["Role"] == resources.roles["ScoreLeadFunctionRole"]
    # Every function's own log group, kept LogRetentionDays, is the one its role writes to.
    logs = boto3.client("logs", region_name=REGION)
    groups = {
        group["logGroupName"]: group
        for page in logs.get_paginator("describe_log_groups").paginate()
        for group in page["logGroups"]
    }
    for logical_id, function in resources.functions.items():
        name = resources.log_groups[f"{logical_id}LogGroup"]
        assert name == f"/aws/lambda/real-{function.environment['POWERTOOLS_SERVICE_NAME']}"
        assert groups[name]["retentionInDays"] == 30
        role_name = resources.roles[f"{logical_id}Role"].rsplit("/", 1)[-1]
        document = iam.get_role_policy(RoleName=role_name, PolicyName="own-log-group")
        [statement] = document["PolicyDocument"]["Statement"]
        assert statement["Resource"].startswith(groups[name]["arn"].removesuffix(":*"))
        assert statement["Resource"].endswith(f"log-group:{name}:*")
    # The configuration set campaigns send through exists; its event destination cannot.
    configuration_set = resources.configuration_sets["CampaignConfigurationSet"]
    assert configuration_set == "real-campaigns"
    sesv2 = boto3.client("sesv2", region_name=REGION)
    stored = sesv2.get_configuration_set(ConfigurationSetName=configuration_set)
    assert stored["ConfigurationSetName"] == configuration_set
    sender = resources.functions["SendCampaignBatchFunction"]
    assert sender.environment["SES_CONFIGURATION_SET"] == configuration_set
    unsupported = {item.logical_id: item.reason for item in resources.unsupported}
    assert "moto's SES publishes no events" in unsupported["CampaignEventDestination"]
    assert not {"CampaignConfigurationSet", *resources.log_groups} & set(unsupported)
    # X-Ray's managed policy, on every function's role, is reported once.
    assert unsupported["AWSXrayWriteOnlyAccess"] == (
        f"not attached locally (moto loads none) to {len(resources.functions)} roles"
    )


def test_log_groups_and_configuration_sets_take_their_settings(aws, tmp_path):
    template = Template(
        document={
            "Resources": {
                "Named": {
                    "Type": "AWS::Logs::LogGroup",
                    "Properties": {"LogGroupName": "/aws/lambda/named", "RetentionInDays": 7},
                },
                "Unnamed": {"Type": "AWS::Logs::LogGroup", "Properties": {}},
                "Sending": {
                    "Type": "AWS::SES::ConfigurationSet",
                    "Properties": {
                        "Name": {"Fn::Sub": "${AWS::StackName}-sending"},
                        "SendingOptions": {"SendingEnabled": False},
                        "Tags": [{"Key": "team", "Value": "crm"}],
                    },
                },
            }
        },
        base_dir=tmp_path,
    )
    resources = provision(template, stack_name="settings")
    assert resources.unsupported == []
    assert resources.log_groups == {"Named": "/aws/lambda/named", "Unnamed": "settings-Unnamed"}
    logs = boto3.client("logs", region_name=REGION)
    [named] = logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/named")["logGroups"]
    assert named["retentionInDays"] == 7
    [unnamed] = logs.describe_log_groups(logGroupNamePrefix="settings-Unnamed")["logGroups"]
    assert "retentionInDays" not in unnamed  # never expires, as CloudFormation leaves it
    sesv2 = boto3.client("sesv2", region_name=REGION)
    sending = sesv2.get_configuration_set(ConfigurationSetName="settings-sending")
    assert sending["SendingOptions"] == {"SendingEnabled": False}
    assert sending["Tags"] == [{"Key": "team", "Value": "crm"}]
