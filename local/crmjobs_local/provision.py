"""Create template.yaml's resources in moto, in dependency order, with local physical names.

`provision(template)` talks to moto through ordinary boto3 clients: pointed at a moto
server (`endpoint_url`), or in-process when called under `mock_aws`. Resources are created
the way CloudFormation would (dependencies first, so a queue's RedrivePolicy finds its DLQ
ARN and a state machine's DefinitionSubstitutions find their functions' ARNs), named
`<stack>-<LogicalId>` unless the template names them. Whatever has no local emulation is
returned in `LocalResources.unsupported` with the reason; nothing is dropped silently.

IAM roles and policies are created so ARNs exist and references resolve, but moto does not
enforce their permissions.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml

from crmjobs_local.template import (
    NO_VALUE,
    EventSource,
    Function,
    ResolutionContext,
    Template,
    UnresolvedReference,
    referenced_logical_ids,
    resolve,
)

DEFAULT_STACK_NAME = "crmjobs-local"
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account
DEFAULT_RUNTIME = "python3.12"

#: Why a resource type is not created locally; the caller prints these.
_UNSUPPORTED_REASONS = {
    "AWS::OpenSearchService::Domain": (
        "moto emulates the OpenSearch control plane only; use the local vector backend"
    ),
    "AWS::OpenSearchServerless::Collection": (
        "moto emulates the OpenSearch control plane only; use the local vector backend"
    ),
    "AWS::CloudWatch::Alarm": "alarms are not evaluated locally",
    "AWS::Serverless::LayerVersion": "the shared package is imported in-process",
    "AWS::Lambda::LayerVersion": "the shared package is imported in-process",
    "AWS::Lambda::Permission": "resource policies are not enforced locally",
    "AWS::IAM::Policy": "IAM permissions are not enforced locally",
    "AWS::SQS::QueuePolicy": "resource policies are not enforced locally",
    "AWS::SNS::Subscription": "nothing delivers SNS notifications locally",
    "AWS::SES::ConfigurationSetEventDestination": (
        "moto's SES publishes no events (SESv2 has no event destinations): SES events are fed "
        "to the feedback queue as the campaign demo does"
    ),
}
_API_GATEWAY_REASON = (
    "routes and authorizers are read from the template by crmjobs_local.http_api, which "
    "crmjobs dev serves"
)


@dataclass(frozen=True)
class NotProvisioned:
    """A resource (or one of its properties) the local runtime did not create, and why."""

    logical_id: str
    resource_type: str
    reason: str

    def __str__(self) -> str:
        return f"{self.logical_id} ({self.resource_type}): {self.reason}"


@dataclass(frozen=True)
class UnresolvedVariable:
    """An environment variable whose value refers to something that does not exist locally."""

    scope: str  # "Globals" or a function's logical id
    name: str
    reason: str


@dataclass(frozen=True)
class LocalQueue:
    logical_id: str
    name: str
    url: str
    arn: str


@dataclass(frozen=True)
class LocalFunction:
    """A function as the local runtime runs it: resolved environment, handler file, limits."""

    logical_id: str
    name: str
    arn: str
    handler_file: Path
    handler_name: str
    timeout_seconds: int
    memory_mb: int
    environment: dict[str, str]
    events: tuple[EventSource, ...]


@dataclass(frozen=True)
class LocalSchedule:
    logical_id: str
    name: str
    group_name: str
    arn: str
    expression: str
    timezone: str
    target_arn: str
    input: str | None
    state: str


@dataclass
class LocalResources:
    """Everything `provision` created, by logical id, plus what it could not create."""

    stack_name: str
    region: str
    account_id: str
    endpoint_url: str | None
    tables: dict[str, str] = field(default_factory=dict)
    queues: dict[str, LocalQueue] = field(default_factory=dict)
    state_machines: dict[str, str] = field(default_factory=dict)
    functions: dict[str, LocalFunction] = field(default_factory=dict)
    schedule_groups: dict[str, str] = field(default_factory=dict)
    schedules: dict[str, LocalSchedule] = field(default_factory=dict)
    topics: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    managed_policies: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    log_groups: dict[str, str] = field(default_factory=dict)
    configuration_sets: dict[str, str] = field(default_factory=dict)
    #: Each HTTP API's ApiEndpoint: the local HTTP API's URL when one was given.
    apis: dict[str, str] = field(default_factory=dict)
    global_environment: dict[str, str] = field(default_factory=dict)
    unsupported: list[NotProvisioned] = field(default_factory=list)
    skipped: list[NotProvisioned] = field(default_factory=list)
    unresolved: list[UnresolvedVariable] = field(default_factory=list)

    def environment(self) -> dict[str, str]:
        """Globals.Function.Environment resolved: what tests and the CLI put in os.environ."""
        return dict(self.global_environment)

    def function_named(self, name_or_arn: str) -> LocalFunction:
        for function in self.functions.values():
            if name_or_arn in (function.name, function.arn, function.logical_id):
                return function
        raise KeyError(f"no function {name_or_arn!r} in the provisioned stack")


def _as_string(value: Any) -> str:
    """How CloudFormation passes a value where AWS wants a string (env vars, attributes)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _tags_dict(tags: Any) -> dict[str, str]:
    if isinstance(tags, list):
        return {tag["Key"]: str(tag["Value"]) for tag in tags}
    return {key: str(value) for key, value in (tags or {}).items()}


def _tag_list(tags: Any) -> list[dict[str, str]]:
    """Tags as the AWS APIs that take a list want them."""
    return [{"Key": key, "Value": value} for key, value in _tags_dict(tags).items()]


def _substitute_definition(value: Any, substitutions: Mapping[str, str]) -> Any:
    """SAM's DefinitionSubstitutions: replace `${Name}` in every string of the definition."""
    if isinstance(value, str):
        return re.sub(
            r"\$\{([^}]+)\}",
            lambda match: substitutions.get(match.group(1), match.group(0)),
            value,
        )
    if isinstance(value, list):
        return [_substitute_definition(item, substitutions) for item in value]
    if isinstance(value, dict):
        return {key: _substitute_definition(item, substitutions) for key, item in value.items()}
    return value


def _dependency_order(
    resources: Mapping[str, Mapping[str, Any]], function_globals: Any
) -> list[str]:
    """Logical ids with every resource after the ones it references (template order otherwise)."""
    dependencies: dict[str, set[str]] = {}
    for logical_id, resource in resources.items():
        properties = dict(resource.get("Properties") or {})
        if resource.get("Type") == "AWS::Serverless::Function":
            # SAM turns a function's Events into resources of their own (event source
            # mappings, rules), which depend on the function, not the other way round.
            properties.pop("Events", None)
        referenced = referenced_logical_ids(properties)
        if resource.get("Type") == "AWS::Serverless::Function":
            referenced |= referenced_logical_ids(function_globals)
        depends_on = resource.get("DependsOn") or []
        referenced |= {depends_on} if isinstance(depends_on, str) else set(depends_on)
        dependencies[logical_id] = (referenced & set(resources)) - {logical_id}
    ordered: list[str] = []
    placed: set[str] = set()
    while len(ordered) < len(resources):
        ready = [
            logical_id
            for logical_id in resources
            if logical_id not in placed and dependencies[logical_id] <= placed
        ]
        if not ready:
            stuck = sorted(set(resources) - placed)
            raise ValueError(f"circular references between resources: {', '.join(stuck)}")
        ordered.extend(ready)
        placed.update(ready)
    return ordered


class _Provisioner:
    def __init__(
        self,
        template: Template,
        context: ResolutionContext,
        resources: LocalResources,
        session: boto3.session.Session,
        api_endpoint: str | None = None,
    ) -> None:
        self.template = template
        self.api_endpoint = api_endpoint
        self.context = context
        self.local = resources
        self.session = session
        self._clients: dict[str, Any] = {}
        self._shared_roles: dict[str, str] = {}
        #: AWS managed policy name -> the roles that list it (reported once each).
        self._aws_managed_roles: dict[str, list[str]] = {}
        self._creators: dict[str, Callable[[str, dict[str, Any]], None]] = {
            "AWS::DynamoDB::Table": self._create_table,
            "AWS::SQS::Queue": self._create_queue,
            "AWS::SNS::Topic": self._create_topic,
            "AWS::IAM::Role": self._create_role,
            "AWS::IAM::ManagedPolicy": self._create_managed_policy,
            "AWS::IAM::RolePolicy": self._create_role_policy,
            "AWS::KMS::Key": self._create_key,
            "AWS::SecretsManager::Secret": self._create_secret,
            "AWS::Logs::LogGroup": self._create_log_group,
            "AWS::SES::ConfigurationSet": self._create_configuration_set,
            "AWS::ApiGatewayV2::Api": self._create_http_api,
            "AWS::Serverless::Function": self._create_function,
            "AWS::Serverless::StateMachine": self._create_state_machine,
            "AWS::Scheduler::ScheduleGroup": self._create_schedule_group,
            "AWS::Scheduler::Schedule": self._create_schedule,
        }

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service, endpoint_url=self.local.endpoint_url
            )
        return self._clients[service]

    def physical_name(self, logical_id: str, properties: Mapping[str, Any], key: str) -> str:
        if key in properties:
            return str(resolve(properties[key], self.context))
        return f"{self.context.stack_name}-{logical_id}"

    def created(self, logical_id: str, reference: str, **attributes: str) -> None:
        """What the template's Ref and Fn::GetAtt of a created resource resolve to."""
        self.context.references[logical_id] = reference
        self.context.attributes.update(
            {(logical_id, attribute): value for attribute, value in attributes.items()}
        )

    def resolved(
        self, logical_id: str, resource_type: str, properties: Mapping[str, Any], known: set[str]
    ) -> dict[str, Any]:
        """A resource's properties resolved, those it does not emulate reported."""
        self.report_unknown(logical_id, resource_type, properties, known)
        return resolve(dict(properties), self.context)

    def report_unknown(
        self, logical_id: str, resource_type: str, properties: Mapping[str, Any], known: set[str]
    ) -> None:
        for name in sorted(set(properties) - known):
            self.local.unsupported.append(
                NotProvisioned(logical_id, resource_type, f"property {name} is not emulated")
            )

    def run(self) -> None:
        resources = self.template.resources
        for logical_id in _dependency_order(resources, self.template.function_globals):
            resource = resources[logical_id]
            resource_type = resource.get("Type", "")
            condition = resource.get("Condition")
            if condition and not self.context.condition(condition):
                self.local.skipped.append(
                    NotProvisioned(logical_id, resource_type, f"condition {condition} is false")
                )
                continue
            creator = self._creators.get(resource_type)
            if creator is None:
                reason = _UNSUPPORTED_REASONS.get(resource_type)
                if reason is None and resource_type.startswith("AWS::ApiGatewayV2::"):
                    reason = _API_GATEWAY_REASON
                self.local.unsupported.append(
                    NotProvisioned(
                        logical_id, resource_type, reason or "no local emulation for this type"
                    )
                )
                continue
            try:
                creator(logical_id, dict(resource.get("Properties") or {}))
            except UnresolvedReference as error:
                self.local.unsupported.append(NotProvisioned(logical_id, resource_type, str(error)))
        self.report_aws_managed_policies()
        globals_environment = (self.template.function_globals.get("Environment") or {}).get(
            "Variables"
        ) or {}
        self.local.global_environment = self.resolve_environment("Globals", globals_environment)

    def resolve_environment(self, scope: str, variables: Mapping[str, Any]) -> dict[str, str]:
        resolved: dict[str, str] = {}
        for name, value in variables.items():
            try:
                result = resolve(value, self.context)
            except UnresolvedReference as error:
                self.local.unresolved.append(UnresolvedVariable(scope, name, str(error)))
                continue
            if result is not NO_VALUE:
                resolved[name] = _as_string(result)
        return resolved

    # --- DynamoDB -------------------------------------------------------------------------

    def _create_table(self, logical_id: str, properties: dict[str, Any]) -> None:
        resource_type = "AWS::DynamoDB::Table"
        props = self.resolved(
            logical_id,
            resource_type,
            properties,
            {
                "TableName",
                "AttributeDefinitions",
                "KeySchema",
                "GlobalSecondaryIndexes",
                "LocalSecondaryIndexes",
                "BillingMode",
                "ProvisionedThroughput",
                "StreamSpecification",
                "SSESpecification",
                "TimeToLiveSpecification",
                "PointInTimeRecoverySpecification",
                "DeletionProtectionEnabled",
                "TableClass",
                "Tags",
            },
        )
        name = self.physical_name(logical_id, properties, "TableName")
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if "ProvisionedThroughput" in props:
            request["ProvisionedThroughput"] = props["ProvisionedThroughput"]
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if props.get(key):
                request[key] = [
                    {k: v for k, v in index.items() if k != "ContributorInsightsSpecification"}
                    for index in props[key]
                ]
        if "StreamSpecification" in props:
            request["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": props["StreamSpecification"]["StreamViewType"],
            }
        if "SSESpecification" in props:
            sse = props["SSESpecification"]
            request["SSESpecification"] = {
                "Enabled": bool(sse.get("SSEEnabled", False)),
                **{key: sse[key] for key in ("SSEType", "KMSMasterKeyId") if key in sse},
            }
        for key in ("DeletionProtectionEnabled", "TableClass"):
            if key in props:
                request[key] = props[key]
        if props.get("Tags"):
            request["Tags"] = _tag_list(props["Tags"])
        dynamodb = self.client("dynamodb")
        description = dynamodb.create_table(**request)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={
                    "AttributeName": ttl["AttributeName"],
                    "Enabled": bool(ttl.get("Enabled", True)),
                },
            )
        pitr = props.get("PointInTimeRecoverySpecification")
        if pitr:
            dynamodb.update_continuous_backups(
                TableName=name,
                PointInTimeRecoverySpecification={
                    "PointInTimeRecoveryEnabled": bool(pitr.get("PointInTimeRecoveryEnabled"))
                },
            )
        self.local.tables[logical_id] = name
        attributes = {"Arn": description["TableArn"]}
        if "LatestStreamArn" in description:
            attributes["StreamArn"] = description["LatestStreamArn"]
        self.created(logical_id, name, **attributes)

    # --- SQS ------------------------------------------------------------------------------

    _QUEUE_ATTRIBUTES = (
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "DelaySeconds",
        "FifoQueue",
        "FifoThroughputLimit",
        "KmsDataKeyReusePeriodSeconds",
        "KmsMasterKeyId",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ReceiveMessageWaitTimeSeconds",
        "RedriveAllowPolicy",
        "RedrivePolicy",
        "SqsManagedSseEnabled",
        "VisibilityTimeout",
    )

    def _create_queue(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self.resolved(
            logical_id,
            "AWS::SQS::Queue",
            properties,
            {"QueueName", "Tags", *self._QUEUE_ATTRIBUTES},
        )
        fifo = bool(props.get("FifoQueue"))
        name = self.physical_name(logical_id, properties, "QueueName")
        if fifo and not name.endswith(".fifo"):
            name += ".fifo"
        attributes = {key: _as_string(props[key]) for key in self._QUEUE_ATTRIBUTES if key in props}
        request: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
        if props.get("Tags"):
            request["tags"] = _tags_dict(props["Tags"])
        sqs = self.client("sqs")
        url = sqs.create_queue(**request)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.local.queues[logical_id] = LocalQueue(logical_id, name, url, arn)
        self.created(logical_id, url, Arn=arn, QueueName=name, QueueUrl=url)

    # --- SNS ------------------------------------------------------------------------------

    def _create_topic(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self.resolved(
            logical_id,
            "AWS::SNS::Topic",
            properties,
            {"TopicName", "DisplayName", "FifoTopic", "KmsMasterKeyId", "Tags"},
        )
        name = self.physical_name(logical_id, properties, "TopicName")
        attributes = {
            key: _as_string(props[key])
            for key in ("DisplayName", "FifoTopic", "KmsMasterKeyId")
            if key in props
        }
        arn = self.client("sns").create_topic(Name=name, Attributes=attributes)["TopicArn"]
        self.local.topics[logical_id] = arn
        self.created(logical_id, arn, TopicArn=arn, TopicName=name)

    # --- IAM ------------------------------------------------------------------------------

    def _create_role(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self.resolved(
            logical_id,
            "AWS::IAM::Role",
            properties,
            {
                "RoleName",
                "AssumeRolePolicyDocument",
                "ManagedPolicyArns",
                "Path",
                "Description",
                "Policies",
                "Tags",
            },
        )
        name = self.physical_name(logical_id, properties, "RoleName")[:64]
        iam = self.client("iam")
        role = iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]),
            Path=props.get("Path", "/"),
            Description=props.get("Description", ""),
        )["Role"]
        for policy in props.get("Policies") or []:
            iam.put_role_policy(
                RoleName=name,
                PolicyName=policy["PolicyName"],
                PolicyDocument=json.dumps(policy["PolicyDocument"]),
            )
        self.attach_managed_policies(logical_id, name, props.get("ManagedPolicyArns") or [])
        self.local.roles[logical_id] = role["Arn"]
        self.created(logical_id, name, Arn=role["Arn"], RoleId=role["RoleId"])

    def attach_managed_policies(self, logical_id: str, role_name: str, arns: list[str]) -> None:
        """Attach the stack's own managed policies. moto does not load AWS managed policies
        (arn:aws:iam::aws:policy/...) by default, so those are reported, not attached."""
        for arn in arns:
            if arn in self.local.managed_policies.values():
                self.client("iam").attach_role_policy(RoleName=role_name, PolicyArn=arn)
            else:
                self._aws_managed_roles.setdefault(arn.rsplit("/", 1)[-1], []).append(logical_id)

    def report_aws_managed_policies(self) -> None:
        """One line per AWS managed policy that was not attached (not one per role)."""
        for name, roles in self._aws_managed_roles.items():
            reason = f"not attached locally (moto loads none) to {len(roles)} roles"
            self.local.unsupported.append(NotProvisioned(name, "AWS managed policy", reason))

    def _create_managed_policy(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self.resolved(
            logical_id,
            "AWS::IAM::ManagedPolicy",
            properties,
            {"ManagedPolicyName", "PolicyDocument", "Path", "Description", "Roles"},
        )
        name = self.physical_name(logical_id, properties, "ManagedPolicyName")[:128]
        iam = self.client("iam")
        arn = iam.create_policy(
            PolicyName=name,
            PolicyDocument=json.dumps(props["PolicyDocument"]),
            Path=props.get("Path", "/"),
            Description=props.get("Description", ""),
        )["Policy"]["Arn"]
        for role_name in props.get("Roles") or []:
            iam.attach_role_policy(RoleName=role_name, PolicyArn=arn)
        self.local.managed_policies[logical_id] = arn
        self.created(logical_id, arn, PolicyArn=arn)

    def _create_role_policy(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self.resolved(
            logical_id,
            "AWS::IAM::RolePolicy",
            properties,
            {"RoleName", "PolicyName", "PolicyDocument"},
        )
        self.client("iam").put_role_policy(
            RoleName=props["RoleName"],
            PolicyName=props["PolicyName"],
            PolicyDocument=json.dumps(props["PolicyDocument"]),
        )
        self.created(logical_id, props["PolicyName"])

    # --- KMS ------------------------------------------------------------------------------

    def _create_key(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self.resolved(
            logical_id,
            "AWS::KMS::Key",
            properties,
            {"Description", "KeyPolicy", "KeyUsage", "KeySpec", "EnableKeyRotation", "Tags"},
        )
        request: dict[str, Any] = {
            key: props[key] for key in ("Description", "KeyUsage", "KeySpec") if key in props
        }
        if "KeyPolicy" in props:
            request["Policy"] = json.dumps(props["KeyPolicy"])
        kms = self.client("kms")
        key = kms.create_key(**request)["KeyMetadata"]
        if props.get("EnableKeyRotation"):
            kms.enable_key_rotation(KeyId=key["KeyId"])
        self.local.keys[logical_id] = key["Arn"]
        self.created(logical_id, key["KeyId"], Arn=key["Arn"], KeyId=key["KeyId"])

    # --- Secrets Manager ------------------------------------------------------------------

    _GENERATE_OPTIONS = (
        "ExcludeCharacters",
        "ExcludeLowercase",
        "ExcludeNumbers",
        "ExcludePunctuation",
        "ExcludeUppercase",
        "IncludeSpace",
        "PasswordLength",
        "RequireEachIncludedType",
    )

    def _create_secret(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self.resolved(
            logical_id,
            "AWS::SecretsManager::Secret",
            properties,
            {"Name", "Description", "SecretString", "GenerateSecretString", "KmsKeyId", "Tags"},
        )
        secretsmanager = self.client("secretsmanager")
        value = props.get("SecretString")
        if value is None:
            # CloudFormation's GenerateSecretString: a random password with these options,
            # alone or put under GenerateStringKey of SecretStringTemplate's JSON object.
            generate = props.get("GenerateSecretString") or {}
            value = secretsmanager.get_random_password(
                **{key: generate[key] for key in self._GENERATE_OPTIONS if key in generate}
            )["RandomPassword"]
            if "SecretStringTemplate" in generate:
                document = json.loads(generate["SecretStringTemplate"])
                document[generate["GenerateStringKey"]] = value
                value = json.dumps(document)
        request: dict[str, Any] = {
            "Name": self.physical_name(logical_id, properties, "Name"),
            "SecretString": _as_string(value),
            **{key: props[key] for key in ("Description", "KmsKeyId") if key in props},
        }
        if props.get("Tags"):
            request["Tags"] = _tag_list(props["Tags"])
        arn = secretsmanager.create_secret(**request)["ARN"]
        self.local.secrets[logical_id] = arn
        self.created(logical_id, arn, Id=arn)

    # --- CloudWatch Logs ------------------------------------------------------------------

    def _create_log_group(self, logical_id: str, properties: dict[str, Any]) -> None:
        """The log group with its retention; functions still log to the local process output."""
        props = self.resolved(
            logical_id,
            "AWS::Logs::LogGroup",
            properties,
            {"LogGroupName", "RetentionInDays", "KmsKeyId", "LogGroupClass", "Tags"},
        )
        name = self.physical_name(logical_id, properties, "LogGroupName")
        request: dict[str, Any] = {"logGroupName": name}
        for key, parameter in (("KmsKeyId", "kmsKeyId"), ("LogGroupClass", "logGroupClass")):
            if key in props:
                request[parameter] = props[key]
        if props.get("Tags"):
            request["tags"] = _tags_dict(props["Tags"])
        logs = self.client("logs")
        logs.create_log_group(**request)
        if "RetentionInDays" in props:
            logs.put_retention_policy(
                logGroupName=name, retentionInDays=int(props["RetentionInDays"])
            )
        [group] = [
            group
            for group in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
            if group["logGroupName"] == name
        ]
        # CloudFormation's Arn ends in ":*" (the group's streams), as DescribeLogGroups' does.
        arn = group["arn"] if group["arn"].endswith(":*") else f"{group['arn']}:*"
        self.local.log_groups[logical_id] = name
        self.created(logical_id, name, Arn=arn)

    # --- SES ------------------------------------------------------------------------------

    _CONFIGURATION_SET_OPTIONS = (
        "DeliveryOptions",
        "ReputationOptions",
        "SendingOptions",
        "SuppressionOptions",
        "TrackingOptions",
        "VdmOptions",
    )

    def _create_configuration_set(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self.resolved(
            logical_id,
            "AWS::SES::ConfigurationSet",
            properties,
            {"Name", "Tags", *self._CONFIGURATION_SET_OPTIONS},
        )
        name = self.physical_name(logical_id, properties, "Name")
        request: dict[str, Any] = {
            "ConfigurationSetName": name,
            **{key: props[key] for key in self._CONFIGURATION_SET_OPTIONS if key in props},
        }
        if props.get("Tags"):
            request["Tags"] = _tag_list(props["Tags"])
        self.client("sesv2").create_configuration_set(**request)
        self.local.configuration_sets[logical_id] = name
        self.created(logical_id, name)

    # --- API Gateway ----------------------------------------------------------------------

    def _create_http_api(self, logical_id: str, properties: dict[str, Any]) -> None:
        """The API exists in moto so references resolve; its ApiEndpoint is the local HTTP
        API's URL (`api_endpoint`) when given, since that is where requests are served."""
        props = self.resolved(
            logical_id,
            "AWS::ApiGatewayV2::Api",
            properties,
            {"Name", "ProtocolType", "Description", "Tags"},
        )
        request: dict[str, Any] = {
            "Name": self.physical_name(logical_id, properties, "Name"),
            "ProtocolType": props.get("ProtocolType", "HTTP"),
            **{key: props[key] for key in ("Description",) if key in props},
        }
        if props.get("Tags"):
            request["Tags"] = _tags_dict(props["Tags"])
        api = self.client("apigatewayv2").create_api(**request)
        endpoint = self.api_endpoint or api["ApiEndpoint"]
        self.local.apis[logical_id] = endpoint
        self.created(logical_id, api["ApiId"], ApiEndpoint=endpoint, ApiId=api["ApiId"])

    def shared_role(self, service_principal: str, suffix: str) -> str:
        """One role per service for resources that let SAM generate theirs."""
        if service_principal not in self._shared_roles:
            trust = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": service_principal},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
            role = self.client("iam").create_role(
                RoleName=f"{self.context.stack_name}-{suffix}"[:64],
                AssumeRolePolicyDocument=json.dumps(trust),
            )["Role"]
            self._shared_roles[service_principal] = role["Arn"]
        return self._shared_roles[service_principal]

    # --- Lambda ---------------------------------------------------------------------------

    def _create_function(self, logical_id: str, own_properties: dict[str, Any]) -> None:
        # The Function view merges Globals.Function into the resource's own properties.
        function: Function = self.template.function(logical_id)
        merged = function.properties
        name = self.physical_name(logical_id, merged, "FunctionName")
        environment = self.resolve_environment(logical_id, function.environment)
        role = (
            str(resolve(merged["Role"], self.context))
            if "Role" in merged
            else self.shared_role("lambda.amazonaws.com", "LambdaExecutionRole")
        )
        package = io.BytesIO()
        with zipfile.ZipFile(package, "w") as archive:
            if function.handler_file.is_file():
                archive.write(function.handler_file, function.handler_file.name)
        configuration = self.client("lambda").create_function(
            FunctionName=name,
            Runtime=str(resolve(merged.get("Runtime", DEFAULT_RUNTIME), self.context)),
            Role=role,
            Handler=function.handler,
            Code={"ZipFile": package.getvalue()},
            Timeout=function.timeout_seconds,
            MemorySize=function.memory_mb,
            Environment={"Variables": environment},
        )
        self.local.functions[logical_id] = LocalFunction(
            logical_id=logical_id,
            name=name,
            arn=configuration["FunctionArn"],
            handler_file=function.handler_file,
            handler_name=function.handler_name,
            timeout_seconds=function.timeout_seconds,
            memory_mb=function.memory_mb,
            environment=environment,
            events=function.events,
        )
        self.created(logical_id, name, Arn=configuration["FunctionArn"])

    # --- Step Functions -------------------------------------------------------------------

    def _create_state_machine(self, logical_id: str, properties: dict[str, Any]) -> None:
        resource_type = "AWS::Serverless::StateMachine"
        self.report_unknown(
            logical_id,
            resource_type,
            properties,
            {
                "Name",
                "Definition",
                "DefinitionUri",
                "DefinitionSubstitutions",
                "Role",
                "Policies",
                "Type",
                "Tags",
            },
        )
        if "Definition" in properties:
            definition = resolve(properties["Definition"], self.context)
        else:
            uri = properties.get("DefinitionUri")
            if not isinstance(uri, str):
                raise UnresolvedReference(f"DefinitionUri {uri!r}: only a local file can be read")
            path = self.template.base_dir / uri
            text = path.read_text(encoding="utf-8")
            definition = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        substitutions = {
            key: _as_string(value)
            for key, value in resolve(
                properties.get("DefinitionSubstitutions") or {}, self.context
            ).items()
        }
        definition = _substitute_definition(definition, substitutions)
        name = self.physical_name(logical_id, properties, "Name")
        role = (
            str(resolve(properties["Role"], self.context))
            if "Role" in properties
            else self.shared_role("states.amazonaws.com", "StatesExecutionRole")
        )
        request: dict[str, Any] = {
            "name": name,
            "definition": json.dumps(definition),
            "roleArn": role,
            "type": resolve(properties.get("Type", "STANDARD"), self.context),
        }
        tags = _tags_dict(resolve(properties.get("Tags"), self.context))
        if tags:
            request["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        arn = self.client("stepfunctions").create_state_machine(**request)["stateMachineArn"]
        self.local.state_machines[logical_id] = arn
        self.created(logical_id, arn, Arn=arn, Name=name)

    # --- EventBridge Scheduler ------------------------------------------------------------

    def _create_schedule_group(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self.resolved(
            logical_id, "AWS::Scheduler::ScheduleGroup", properties, {"Name", "Tags"}
        )
        name = self.physical_name(logical_id, properties, "Name")
        request: dict[str, Any] = {"Name": name}
        if props.get("Tags"):
            request["Tags"] = _tag_list(props["Tags"])
        arn = self.client("scheduler").create_schedule_group(**request)["ScheduleGroupArn"]
        self.local.schedule_groups[logical_id] = name
        self.created(logical_id, name, Arn=arn)

    _SCHEDULE_PROPERTIES = {
        "Name",
        "GroupName",
        "Description",
        "ScheduleExpression",
        "ScheduleExpressionTimezone",
        "FlexibleTimeWindow",
        "Target",
        "State",
        "StartDate",
        "EndDate",
        "KmsKeyArn",
    }

    def _create_schedule(self, logical_id: str, properties: dict[str, Any]) -> None:
        props = self.resolved(
            logical_id, "AWS::Scheduler::Schedule", properties, self._SCHEDULE_PROPERTIES
        )
        name = self.physical_name(logical_id, properties, "Name")
        group = props.get("GroupName", "default")
        request = {key: props[key] for key in self._SCHEDULE_PROPERTIES if key in props}
        request.update(
            {
                "Name": name,
                "GroupName": group,
                "FlexibleTimeWindow": props.get("FlexibleTimeWindow", {"Mode": "OFF"}),
                "State": props.get("State", "ENABLED"),
            }
        )
        arn = self.client("scheduler").create_schedule(**request)["ScheduleArn"]
        target = props["Target"]
        self.local.schedules[logical_id] = LocalSchedule(
            logical_id=logical_id,
            name=name,
            group_name=group,
            arn=arn,
            expression=props["ScheduleExpression"],
            timezone=props.get("ScheduleExpressionTimezone", "UTC"),
            target_arn=target["Arn"],
            input=target.get("Input"),
            state=request["State"],
        )
        self.created(logical_id, name, Arn=arn)


def provision(
    template: Template | str | os.PathLike[str],
    *,
    endpoint_url: str | None = None,
    region: str = DEFAULT_REGION,
    account_id: str = DEFAULT_ACCOUNT_ID,
    parameters: Mapping[str, Any] | None = None,
    stack_name: str = DEFAULT_STACK_NAME,
    api_endpoint: str | None = None,
) -> LocalResources:
    """Create the template's resources in moto and return their local names and settings.

    `api_endpoint` is the URL the local HTTP API is served at: what `ApiEndpoint` of the
    template's HTTP APIs resolves to (moto's made-up endpoint otherwise).

    With `endpoint_url=None` the clients call AWS's default endpoints, which only works
    under `mock_aws`; the fixed dummy credentials make a call outside of it fail instead of
    creating anything in a real account. `account_id` must be moto's account (its default,
    or MOTO_ACCOUNT_ID).
    """
    if not isinstance(template, Template):
        template = Template.load(template)
    context = template.context(
        region=region, account_id=account_id, stack_name=stack_name, parameters=parameters
    )
    resources = LocalResources(
        stack_name=stack_name, region=region, account_id=account_id, endpoint_url=endpoint_url
    )
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
    )
    _Provisioner(template, context, resources, session, api_endpoint).run()
    return resources
