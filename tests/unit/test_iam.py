"""Least privilege: every function and state machine may do exactly what its code does.

CONTRACT below is the documented derivation, per function, of the AWS calls its code makes
(the runtime, ledger, concurrency, client and service modules it runs). The tests read what
template.yaml attaches to each role (a SAM function's `Policies`, or the role written in the
template: its inline policies, the managed policies it lists or that name it, its
RolePolicies), expand the SAM policy templates still used, add the grants SAM derives from
event sources, and require the grants to equal the contract: nothing more (no Scan, no
wildcard action, no delete of an entity), nothing less (the code would fail).
The AWS managed policies on each role, including the ones SAM adds by itself (checked against
SAM's own translation when SAM CLI is installed), are held to their documented statements:
none may grant on Resource "*" an action that IAM can scope to a resource. Each function
writes its logs to its own log group, and only there.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
from itertools import product
from pathlib import Path
from typing import Any

import pytest

from crmjobs.tasks import TASKS
from crmjobs_local.template import ResolutionContext, Template, load_template, resolve

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"

REGION = "ap-southeast-2"
ACCOUNT = "123456789012"
COLLECTION_ID = "abc123"
#: The OpenSearch choices a deployment can make; a grant under any of them counts.
OPENSEARCH_SCENARIOS = {
    "domain created by the stack": {},
    "existing domain": {
        "OpenSearchEndpoint": f"https://search-crm-0123456789abcdefghijklmnop.{REGION}.es.amazonaws.com",
        "OpenSearchService": "es",
    },
    "existing Serverless collection": {
        "OpenSearchEndpoint": f"https://{COLLECTION_ID}.{REGION}.aoss.amazonaws.com",
        "OpenSearchService": "aoss",
    },
}

#: The SAM policy templates the template still uses: (actions, parameter naming the
#: resource), as SAM's policy_templates.json defines them (checked below when installed).
SAM_POLICY_TEMPLATES = {
    "SQSSendMessagePolicy": (("sqs:SendMessage*",), "QueueName"),
    "LambdaInvokePolicy": (("lambda:InvokeFunction",), "FunctionName"),
}
#: Wildcard actions that name exactly one action: SQS authorizes SendMessageBatch as
#: sqs:SendMessage, so SAM's sqs:SendMessage* grants nothing else.
EXACT_WILDCARD_ACTIONS = {"sqs:SendMessage*": "sqs:SendMessage"}
#: Step Functions' log delivery to CloudWatch Logs (the state machines' Logging).
LOG_DELIVERY_ACTIONS = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}
#: X-Ray's trace upload and sampling (AWSXrayWriteOnlyAccess, which `Tracing: Active` and a
#: state machine's tracing attach). None of them takes a resource, so that managed policy's
#: Resource "*" is the narrowest grant there is: it stays.
XRAY_WRITE_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
}
#: Actions of a whole account: SES GetAccount (the send rate).
ACCOUNT_LEVEL_ACTIONS = {"ses:GetAccount"}
#: The actions without resource-level permissions (the Service Authorization Reference lists
#: no resource type for them): the only ones allowed on Resource "*".
ACTIONS_WITHOUT_RESOURCES = LOG_DELIVERY_ACTIONS | XRAY_WRITE_ACTIONS | ACCOUNT_LEVEL_ACTIONS
#: Tables holding the CRM's records: no job deletes from them.
ENTITY_TABLES = {
    "WorkspacesTable",
    "ProspectsTable",
    "ContactsTable",
    "KnowledgeTable",
    "CampaignsTable",
    "DeliveriesTable",
    "SuppressionsTable",
    "AgentsTable",
    "ExecutionsTable",
    "ExecutionStepsTable",
    "MeetingsTable",
}

Grant = tuple[str, str]  # (action, resource: a logical id, or an ARN without its prefix)

#: AWS managed policies (by name after arn:aws:iam::aws:policy/) a role may carry: X-Ray
#: traces, for a function and a state machine alike. SAM adds it to the roles it generates
#: when tracing is on; the roles written in the template list it.
FUNCTION_BASICS = {"AWSXrayWriteOnlyAccess"}
STATE_MACHINE_BASICS = {"AWSXrayWriteOnlyAccess"}
#: What SAM attaches to the role it generates for a function: always the basic execution
#: role, and one more for such an event source.
SAM_FUNCTION_BASIC_POLICY = "service-role/AWSLambdaBasicExecutionRole"
SAM_EVENT_SOURCE_POLICIES = {
    "SQS": "service-role/AWSLambdaSQSQueueExecutionRole",
    "DynamoDB": "service-role/AWSLambdaDynamoDBExecutionRole",
    "Kinesis": "service-role/AWSLambdaKinesisExecutionRole",
}
_LOGS_ANYWHERE = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
#: The actions of those AWS managed policies, each granted on Resource "*" (AWS Managed
#: Policy Reference, policy documents as published). All but X-Ray's could name resources:
#: the basic execution role writes to every log group of the account, the event source
#: ones read every queue or stream.
AWS_MANAGED_POLICY_ACTIONS: dict[str, tuple[str, ...]] = {
    "AWSXrayWriteOnlyAccess": tuple(sorted(XRAY_WRITE_ACTIONS)),
    SAM_FUNCTION_BASIC_POLICY: _LOGS_ANYWHERE,
    "service-role/AWSLambdaSQSQueueExecutionRole": (
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        *_LOGS_ANYWHERE,
    ),
    "service-role/AWSLambdaDynamoDBExecutionRole": (
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
        *_LOGS_ANYWHERE,
    ),
    "service-role/AWSLambdaKinesisExecutionRole": (
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:ListShards",
        "kinesis:ListStreams",
        "kinesis:SubscribeToShard",
        *_LOGS_ANYWHERE,
    ),
}
_AWS_MANAGED_ARN = re.compile(r"^arn:aws:iam::aws:policy/(.+)$")


def _grants(actions: list[str] | tuple[str, ...], resources: list[str]) -> set[Grant]:
    return set(product(actions, resources))


# ---------------------------------------------------------------------------- the contract

DDB_READ_WRITE = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")


def _task_runtime(prefix: str) -> set[Grant]:
    """runtime.py, ledger.py, concurrency.py: what every SQS-fed task function does."""
    return (
        # ledger.get and cancel_requested, ensure_plain_message_run / create_once,
        # transitions (start_attempt, detach, complete, record_failed, record_canceled,
        # retry_later)
        _grants(DDB_READ_WRITE, ["RunsTable"])
        # stores/workspaces.concurrency_limit: Workspace.get (the tier, cached briefly)
        | {("dynamodb:GetItem", "WorkspacesTable")}
        # concurrency._prepare (get, create), _take and release (update)
        | _grants(DDB_READ_WRITE, ["ConcurrencyTable"])
        # trigger keys, a keyed plain message's and those of the runs a service triggers
        # (create_once: PutItem in TransactWriteItems, GetItem on a repeat; client:
        # DeleteItem to release the key of a run that could not be enqueued)
        | _grants(
            ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"), ["IdempotencyTable"]
        )
        # Lambda's event source mapping: receive, delete, read the queue's attributes
        | _grants(
            ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"),
            [f"{prefix}Queue"],
        )
        # queues.hide: backoff; _send_back_to_wait: wait for a slot; _dead_letter_run: after
        # the last attempt
        | {
            ("sqs:ChangeMessageVisibility", f"{prefix}Queue"),
            ("sqs:SendMessage", f"{prefix}Queue"),
            ("sqs:SendMessage", f"{prefix}DeadLetterQueue"),
        }
    )


def _bulk_run(machine: str) -> set[Grant]:
    """services/fanout.start_fanout: start the attempt's first execution (the last one of
    its chain records the run); a retry first looks up and stops the previous attempt's."""
    return {("states:StartExecution", machine)} | _grants(
        ("states:DescribeExecution", "states:StopExecution"), [f"execution:{machine}:*"]
    )


def _continues_chain(machine_name: str) -> set[Grant]:
    """Past its execution's share of the work, a listing step starts the attempt's next
    execution (the state machine named by the stack) and keeps the run's slot for it."""
    return {
        ("states:StartExecution", f"stateMachine:crmjobs-{machine_name}"),
        ("dynamodb:UpdateItem", "ConcurrencyTable"),
    }


def _page_step(machine_name: str) -> set[Grant]:
    """services/fanout.page_step: the totals so far as the run's output (ledger.
    record_progress); after its pages per execution, start the run's next execution (the
    state machine named by the stack) and keep the run's slot for it."""
    return {("dynamodb:UpdateItem", "RunsTable")} | _continues_chain(machine_name)


#: adapters/vector_index.py: HEAD/PUT/GET of the index (ensure_index), POST of _bulk,
#: _search and _delete_by_query; on Serverless, the one collection of the endpoint.
VECTOR_INDEX = _grants(
    ("es:ESHttpHead", "es:ESHttpGet", "es:ESHttpPut", "es:ESHttpPost"),
    [
        "OpenSearchDomain/crmjobs-chunks",
        "OpenSearchDomain/crmjobs-chunks/*",
        "OpenSearchDomain/_bulk",
        "domain/*/crmjobs-chunks",
        "domain/*/crmjobs-chunks/*",
        "domain/*/_bulk",
    ],
) | {("aoss:APIAccessAll", f"collection/{COLLECTION_ID}")}
#: adapters/embeddings.py: Titan Text Embeddings v2 through InvokeModel.
TITAN_EMBEDDINGS = {("bedrock:InvokeModel", "foundation-model/amazon.titan-embed-text-v2:0")}


def _paged_fanout(page_function: str, batch_function: str) -> set[Grant]:
    """statemachines/paged_fanout.asl.json: invoke its three steps, deliver error logs."""
    steps = [page_function, batch_function, "FinishBulkRunFunction"]
    return _grants(("lambda:InvokeFunction",), steps) | _grants(sorted(LOG_DELIVERY_ACTIONS), ["*"])


CONTRACT: dict[str, set[Grant]] = {
    # services/scoring.score_lead: consistent get, conditional update (GetItem again on a
    # version conflict).
    "ScoreLeadFunction": _task_runtime("ScoreLead")
    | _grants(("dynamodb:GetItem", "dynamodb:UpdateItem"), ["ProspectsTable"]),
    "BulkScoreLeadsFunction": _task_runtime("BulkScoreLeads")
    | _bulk_run("BulkScoreLeadsStateMachine"),
    # services/nightly_scoring.scheduled_lead_scoring: a page of the active-index (Query);
    # client.batch_trigger records runs (RunsTable), trigger keys in one TransactWriteItems
    # (PutItem on IdempotencyTable, GetItem on a repeat, DeleteItem when a run could not be
    # enqueued: all in the runtime's grants) and sends the bulk runs' messages, and the next
    # page's to its own queue (the runtime's grant).
    # No delay, so no Scheduler.
    "ScheduledLeadScoringFunction": _task_runtime("ScheduledLeadScoring")
    | {
        ("dynamodb:Query", "WorkspacesTable/index/*"),
        ("sqs:SendMessage", "BulkScoreLeadsQueue"),
    },
    # services/scoring._list_due_prospects: Prospect.query on the table's key.
    "ListProspectsPageFunction": {("dynamodb:Query", "ProspectsTable")}
    | _page_step("bulk-score-leads"),
    # services/scoring.score_prospects_batch: batch_get, then score_and_store.
    "ScoreProspectsBatchFunction": _grants(
        ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:UpdateItem"), ["ProspectsTable"]
    ),
    # services/documents.index_document: consistent get, status updates (a get after a
    # conflict), embed, index.
    "IndexDocumentFunction": _task_runtime("IndexDocument")
    | _grants(("dynamodb:GetItem", "dynamodb:UpdateItem"), ["KnowledgeTable"])
    | VECTOR_INDEX
    | TITAN_EMBEDDINGS,
    # services/documents.bulk_index_documents / reindex_all_documents: start_fanout only.
    "BulkIndexDocumentsFunction": _task_runtime("BulkIndexDocuments")
    | _bulk_run("BulkIndexDocumentsStateMachine"),
    "ReindexAllDocumentsFunction": _task_runtime("ReindexAllDocuments")
    | _bulk_run("BulkIndexDocumentsStateMachine"),
    # services/documents._list_due_items: KnowledgeItem.query on the table's key (the
    # embedder is only asked its model id).
    "ListDocumentsPageFunction": {("dynamodb:Query", "KnowledgeTable")}
    | _page_step("bulk-index-documents"),
    # services/documents.index_documents_batch: batch_get, status updates (a get after a
    # conflict), embed, index.
    "IndexDocumentsBatchFunction": _grants(
        ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:UpdateItem"), ["KnowledgeTable"]
    )
    | VECTOR_INDEX
    | TITAN_EMBEDDINGS,
    # services/documents.remove_deleted_items: the index only (the embedder gives its
    # dimension, no Bedrock call); the event source mapping reads the table's stream and
    # sends batches that keep failing to the on-failure destination.
    "KnowledgeStreamFunction": VECTOR_INDEX
    | _grants(
        ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"),
        ["KnowledgeTable/stream"],
    )
    | {
        ("dynamodb:ListStreams", "KnowledgeTable/stream/*"),
        ("sqs:SendMessage", "KnowledgeStreamDeadLetterQueue"),
    },
    # api.py -> client.py: trigger (create / create_once, enqueue any task, schedule a
    # delayed run, release the key of a run that could not be enqueued), list_runs (the three
    # indexes), retrieve, cancel (delete its schedule, release its key; an executing bulk
    # run: stop its chain, found by name, and release its slot), replay.
    "TriggerApiFunction": _grants(DDB_READ_WRITE, ["RunsTable"])
    | {("dynamodb:Query", "RunsTable/index/*")}
    | _grants(("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"), ["IdempotencyTable"])
    | _grants(("sqs:SendMessage",), [f"{task.resource_prefix}Queue" for task in TASKS.values()])
    | _grants(
        ("scheduler:CreateSchedule", "scheduler:DeleteSchedule"), ["schedule/ScheduleGroup/run-*"]
    )
    | {("iam:PassRole", "SchedulerRole")}
    | _grants(
        ("states:DescribeExecution", "states:StopExecution"),
        ["execution:crmjobs-bulk-score-leads:*", "execution:crmjobs-bulk-index-documents:*"],
    )
    | {("dynamodb:UpdateItem", "ConcurrencyTable")},
    # runtime.finish_detached_run: the run (get, complete / retry / fail), its slot back,
    # a canceled run's trigger key back (conditional delete), a retry's message to the bulk
    # task's queue or the dead-lettered one to its DLQ; services/fanout.finish_bulk_run: a
    # failure report looks up the execution's successor.
    "FinishBulkRunFunction": _grants(("dynamodb:GetItem", "dynamodb:UpdateItem"), ["RunsTable"])
    | {("dynamodb:UpdateItem", "ConcurrencyTable"), ("dynamodb:DeleteItem", "IdempotencyTable")}
    | _grants(
        ("states:DescribeExecution",),
        ["execution:crmjobs-bulk-score-leads:*", "execution:crmjobs-bulk-index-documents:*"],
    )
    | _grants(
        ("sqs:SendMessage",),
        [
            f"{prefix}{queue}"
            for prefix in ("BulkScoreLeads", "BulkIndexDocuments", "ReindexAllDocuments")
            for queue in ("Queue", "DeadLetterQueue")
        ],
    ),
    # services/agents.py: the agent (get; executionCount in the success TransactWriteItems),
    # the execution (get, create, conditional transitions), its transcript (query, put a
    # turn or a tool call, update them); services/agent_tools.py in the agent's workspace:
    # prospects (create_once put and get, stage update, partition query), contacts and
    # knowledge items (create_once), meetings (create_once, starts-index query),
    # suppressions (draft_email, send_email: batch_get); the score-lead and index-document
    # runs the tools trigger (their runs and keys are the runtime's grants); the chat model
    # (the stack's agent model only), the search's embeddings and the vector index.
    "ExecuteAgentFunction": _task_runtime("ExecuteAgent")
    | _grants(("dynamodb:GetItem", "dynamodb:UpdateItem"), ["AgentsTable"])
    | _grants(DDB_READ_WRITE, ["ExecutionsTable"])
    | _grants(
        ("dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"), ["ExecutionStepsTable"]
    )
    | _grants((*DDB_READ_WRITE, "dynamodb:Query"), ["ProspectsTable"])
    | _grants(
        ("dynamodb:GetItem", "dynamodb:PutItem"),
        ["ContactsTable", "KnowledgeTable", "MeetingsTable"],
    )
    | {
        ("dynamodb:Query", "MeetingsTable/index/starts-index"),
        ("dynamodb:BatchGetItem", "SuppressionsTable"),
        ("sqs:SendMessage", "ScoreLeadQueue"),
        ("sqs:SendMessage", "IndexDocumentQueue"),
        ("bedrock:InvokeModel", "foundation-model/anthropic.claude-3-haiku-20240307-v1:0"),
        ("secretsmanager:GetSecretValue", "UnsubscribeSigningSecret"),
    }
    # send_email: services/mail.send_direct_email's delivery row and its SES send
    | _grants(("dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"), ["DeliveriesTable"])
    | _grants(
        ("ses:SendEmail", "ses:SendRawEmail"),
        ["identity/crmjobs.local", "configuration-set/CampaignConfigurationSet"],
    )
    | VECTOR_INDEX
    | TITAN_EMBEDDINGS,
    # services/agent_scheduling.py: active agents from the status-index or one workspace's
    # partition (Query, never Scan); the due execute-agent runs' messages.
    "ProcessActiveAgentsFunction": _task_runtime("ProcessActiveAgents")
    | {
        ("dynamodb:Query", "AgentsTable"),
        ("dynamodb:Query", "AgentsTable/index/status-index"),
        ("sqs:SendMessage", "ExecuteAgentQueue"),
    },
    # services/agent_health.py: agents by status, pause (get, conditional update); the
    # running, last-hour and per-agent executions (three indexes), marked stuck; the record.
    "ScheduledAgentHealthCheckFunction": _task_runtime("ScheduledAgentHealthCheck")
    | _grants(("dynamodb:GetItem", "dynamodb:UpdateItem"), ["AgentsTable"])
    | _grants(
        ("dynamodb:Query",),
        [
            "AgentsTable/index/status-index",
            "ExecutionsTable/index/running-index",
            "ExecutionsTable/index/hour-index",
            "ExecutionsTable/index/agent-index",
        ],
    )
    | {("dynamodb:UpdateItem", "ExecutionsTable"), ("dynamodb:PutItem", "AgentHealthTable")},
    # services/campaigns.send_campaign: the campaign (consistent get, conditional take or
    # back to draft), the owner run of an active campaign (ledger.get: the runtime's
    # grants); an earlier attempt's execution stopped, this attempt's started.
    "SendCampaignFunction": _task_runtime("SendCampaign")
    | _grants(("dynamodb:GetItem", "dynamodb:UpdateItem"), ["CampaignsTable"])
    | {("states:StartExecution", "SendCampaignStateMachine")}
    | _grants(
        ("states:DescribeExecution", "states:StopExecution"),
        ["execution:SendCampaignStateMachine:*"],
    ),
    # services/campaigns.schedule_campaign: the campaign (get, mark scheduled or back to
    # draft), its one-time schedule replaced (delete, create, passing SchedulerRole), or a
    # send-campaign run at once (client.trigger: its run and key are the runtime's grants).
    "ScheduleCampaignFunction": _task_runtime("ScheduleCampaign")
    | _grants(("dynamodb:GetItem", "dynamodb:UpdateItem"), ["CampaignsTable"])
    | _grants(
        ("scheduler:CreateSchedule", "scheduler:DeleteSchedule"),
        ["schedule/ScheduleGroup/campaign-*"],
    )
    | {("iam:PassRole", "SchedulerRole"), ("sqs:SendMessage", "SendCampaignQueue")},
    # services/campaign_sending.list_audience: a Query page of prospects or contacts, the
    # audience entries and suppressions of its addresses, the new entries (only audience
    # entries: test_batch_writes_reach_audience_entries_only), the campaign's state and
    # exclusion counts (or back to draft); the chain's next execution.
    "CampaignAudiencePageFunction": _grants(
        ("dynamodb:Query",), ["ProspectsTable", "ContactsTable"]
    )
    | _grants(("dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"), ["DeliveriesTable"])
    | {("dynamodb:BatchGetItem", "SuppressionsTable")}
    | _grants(("dynamodb:GetItem", "dynamodb:UpdateItem"), ["CampaignsTable"])
    | _continues_chain("send-campaign"),
    # services/campaign_sending.list_recipients: a Query page of the audience entries' keys,
    # the campaign's state (paused on a cancel request); the chain's next execution.
    "CampaignRecipientsPageFunction": {("dynamodb:Query", "DeliveriesTable")}
    | _grants(("dynamodb:GetItem", "dynamodb:UpdateItem"), ["CampaignsTable"])
    | {("dynamodb:GetItem", "RunsTable")}  # the run's cancel request
    | _continues_chain("send-campaign"),
    # services/campaign_sending.send_batch: the audience entries and rows of its range (a
    # Query each), ledger claims and outcomes and stale sends unconfirmed (a conditional
    # UpdateItem each), the batch's suppressions, the campaign and
    # the account's send schedule (an item of the campaigns table); SES sends from the
    # sender identity through the configuration set only; the account's rate; the
    # unsubscribe link's key.
    "SendCampaignBatchFunction": {
        ("dynamodb:Query", "DeliveriesTable"),
        ("dynamodb:UpdateItem", "DeliveriesTable"),
        ("dynamodb:BatchGetItem", "SuppressionsTable"),
        ("ses:GetAccount", "*"),
        ("secretsmanager:GetSecretValue", "UnsubscribeSigningSecret"),
        ("dynamodb:GetItem", "RunsTable"),  # the run's cancel request
    }
    | _grants(("dynamodb:GetItem", "dynamodb:UpdateItem"), ["CampaignsTable"])
    | _grants(
        ("ses:SendEmail", "ses:SendRawEmail"),
        ["identity/crmjobs.local", "configuration-set/CampaignConfigurationSet"],
    ),
    # services/campaign_sending.finish_sending: recount the ledger, the campaign's counters
    # and status; runtime.finish_detached_run: the run, its slot, a canceled run's trigger
    # key, a retry or the DLQ; whether a failed execution's successor was started.
    "FinishCampaignSendFunction": {("dynamodb:Query", "DeliveriesTable")}
    | {("states:DescribeExecution", "execution:crmjobs-send-campaign:*")}
    | _grants(("dynamodb:GetItem", "dynamodb:UpdateItem"), ["CampaignsTable", "RunsTable"])
    | {("dynamodb:UpdateItem", "ConcurrencyTable"), ("dynamodb:DeleteItem", "IdempotencyTable")}
    | _grants(("sqs:SendMessage",), ["SendCampaignQueue", "SendCampaignDeadLetterQueue"]),
    "SendCampaignStateMachine": _grants(
        ("lambda:InvokeFunction",),
        [
            "CampaignAudiencePageFunction",
            "CampaignRecipientsPageFunction",
            "SendCampaignBatchFunction",
            "FinishCampaignSendFunction",
        ],
    )
    | _grants(sorted(LOG_DELIVERY_ACTIONS), ["*"]),
    # services/feedback.record_event: its queue; the recipient's row (its message id), the
    # event's row flag and counter in one TransactWriteItems (UpdateItem on both), a
    # suppression (conditional PutItem).
    "CampaignFeedbackFunction": _grants(
        ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"),
        ["CampaignFeedbackQueue"],
    )
    | _grants(("dynamodb:UpdateItem",), ["DeliveriesTable", "CampaignsTable"])
    | {("dynamodb:GetItem", "DeliveriesTable"), ("dynamodb:PutItem", "SuppressionsTable")},
    # services/campaigns.cancel_stale_schedules: the campaigns table's stream, the
    # campaign schedules deleted.
    "CampaignStreamFunction": _grants(
        ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"),
        ["CampaignsTable/stream"],
    )
    | {
        ("dynamodb:ListStreams", "CampaignsTable/stream/*"),
        ("scheduler:DeleteSchedule", "schedule/ScheduleGroup/campaign-*"),
        ("sqs:SendMessage", "CampaignStreamDeadLetterQueue"),
    },
    # services/unsubscribe: the link's key; opt out (get, conditional update), suppress
    # (conditional put), the recipient's flag and the counter (TransactWriteItems).
    "UnsubscribeFunction": {
        ("secretsmanager:GetSecretValue", "UnsubscribeSigningSecret"),
        ("dynamodb:PutItem", "SuppressionsTable"),
    }
    | _grants(("dynamodb:GetItem", "dynamodb:UpdateItem"), ["ProspectsTable", "ContactsTable"])
    | _grants(("dynamodb:UpdateItem",), ["DeliveriesTable", "CampaignsTable"]),
    # Schedules (the nightly and hourly ones, and delayed runs) deliver to any task's queue.
    "SchedulerRole": _grants(
        ("sqs:SendMessage",), [f"{task.resource_prefix}Queue" for task in TASKS.values()]
    ),
    "BulkScoreLeadsStateMachine": _paged_fanout(
        "ListProspectsPageFunction", "ScoreProspectsBatchFunction"
    ),
    "BulkIndexDocumentsStateMachine": _paged_fanout(
        "ListDocumentsPageFunction", "IndexDocumentsBatchFunction"
    ),
}


# ---------------------------------------------------------------------------- reading the template

_ARN_PREFIX = re.compile(rf"^arn:aws:[a-z0-9-]+:(?:{REGION})?:(?:{ACCOUNT})?:")


@pytest.fixture(scope="module")
def template() -> Template:
    return Template(document=load_template(TEMPLATE_PATH), base_dir=REPO_ROOT)


def _symbolic_context(template: Template, parameters: dict[str, str]) -> ResolutionContext:
    """Every resource's Ref and ARN-like attributes resolve to its logical id."""
    context = template.context(
        region=REGION, account_id=ACCOUNT, stack_name="crmjobs", parameters=parameters
    )
    for logical_id in template.resources:
        context.references[logical_id] = logical_id
        for attribute in ("Arn", "QueueName", "Name", "DomainEndpoint"):
            context.attributes[(logical_id, attribute)] = logical_id
        context.attributes[(logical_id, "StreamArn")] = f"{logical_id}/stream"
    return context


def _resource_key(resource: str) -> str:
    return _ARN_PREFIX.sub("", resource)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _of_type(template: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource.get("Properties", {})
        for logical_id, resource in template.resources.items()
        if resource["Type"] == resource_type
    }


def _explicit_role(template: Template, logical_id: str) -> str | None:
    """The role written in the template that a function or state machine runs with."""
    role = template.resources[logical_id]["Properties"].get("Role")
    return role["Fn::GetAtt"][0] if role else None


def _standalone_roles(template: Template) -> list[str]:
    """Roles written in the template that no function or state machine runs with."""
    used = {_explicit_role(template, logical_id) for logical_id in _runners(template)}
    return [role for role in _of_type(template, "AWS::IAM::Role") if role not in used]


def _runners(template: Template) -> list[str]:
    return [
        logical_id
        for logical_id, resource in template.resources.items()
        if resource["Type"] in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine")
    ]


def _roles(template: Template) -> list[str]:
    """What the contract covers: functions, state machines and the other roles."""
    return _runners(template) + _standalone_roles(template)


def _attached_documents(template: Template, role: str) -> tuple[list[Any], list[Any]]:
    """(policy documents, managed policy ARNs) of a role written in the template."""
    properties = template.resources[role]["Properties"]
    documents = [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
    arns = list(properties.get("ManagedPolicyArns", []))
    for policy in _of_type(template, "AWS::IAM::RolePolicy").values():
        if policy["RoleName"] == {"Ref": role}:
            documents.append(policy["PolicyDocument"])
    for logical_id, policy in _of_type(template, "AWS::IAM::ManagedPolicy").items():
        if {"Ref": role} in policy.get("Roles", []):
            arns.append({"Ref": logical_id})
    return documents, arns


def _statements_and_managed(
    template: Template, logical_id: str, context: ResolutionContext
) -> tuple[list[dict[str, Any]], set[str]]:
    """Resolved statements of a role, SAM templates and the stack's managed policies
    expanded, and the names of the AWS managed policies it carries."""
    role = _explicit_role(template, logical_id) if logical_id in _runners(template) else logical_id
    if role is None:  # SAM generates the role from `Policies`
        policies = template.resources[logical_id]["Properties"].get("Policies", [])
        documents, arns = [], []
        for policy in policies:
            is_arn = not isinstance(policy, dict) or set(policy) <= {"Ref", "Fn::Sub", "Fn::If"}
            (arns if is_arn else documents).append(policy)
    else:
        documents, arns = _attached_documents(template, role)
    managed_policies = _of_type(template, "AWS::IAM::ManagedPolicy")
    statements: list[dict[str, Any]] = []
    aws_managed: set[str] = set()
    for arn in resolve(arns, context):
        if arn in managed_policies:
            documents.append(managed_policies[arn]["PolicyDocument"])
            continue
        match = _AWS_MANAGED_ARN.match(arn)
        assert match, f"{logical_id}: managed policy {arn!r} escapes this check"
        aws_managed.add(match.group(1))
    for document in resolve(documents, context):
        if "Statement" in document:
            statements.extend(_as_list(document["Statement"]))
            continue
        ((name, parameters),) = document.items()
        assert name in SAM_POLICY_TEMPLATES, f"{name}: add its expansion to SAM_POLICY_TEMPLATES"
        actions, resource_parameter = SAM_POLICY_TEMPLATES[name]
        statements.append(
            {"Effect": "Allow", "Action": list(actions), "Resource": parameters[resource_parameter]}
        )
    return statements, aws_managed


def _sam_generated_role_additions(
    template: Template, logical_id: str
) -> tuple[set[Grant], set[str]]:
    """What SAM adds to a role it generates: (grants for event sources' on-failure SQS
    destinations, AWS managed policies: the basics and each event source's own)."""
    resource = template.resources[logical_id]
    if resource["Type"] == "AWS::Serverless::StateMachine":
        return set(), set(STATE_MACHINE_BASICS)
    grants, managed = set(), {SAM_FUNCTION_BASIC_POLICY}
    if template.function(logical_id).properties.get("Tracing") not in (None, "Disabled"):
        managed.add("AWSXrayWriteOnlyAccess")
    context = _symbolic_context(template, {})
    for event in (resource["Properties"].get("Events") or {}).values():
        if event["Type"] in SAM_EVENT_SOURCE_POLICIES:
            managed.add(SAM_EVENT_SOURCE_POLICIES[event["Type"]])
        on_failure = (event.get("Properties", {}).get("DestinationConfig") or {}).get("OnFailure")
        if on_failure and on_failure["Type"] == "SQS":
            grants.add(("sqs:SendMessage", resolve(on_failure["Destination"], context)))
    return grants, managed


def _resolved_statements(template: Template, logical_id: str) -> list[dict[str, Any]]:
    """The role's statements under every OpenSearch scenario (so both sides of each If)."""
    found = []
    for parameters in OPENSEARCH_SCENARIOS.values():
        context = _symbolic_context(template, parameters)
        found.extend(_statements_and_managed(template, logical_id, context)[0])
    return found


def _sam_generates_the_role(template: Template, logical_id: str) -> bool:
    return logical_id in _runners(template) and _explicit_role(template, logical_id) is None


def granted(template: Template, logical_id: str) -> set[Grant]:
    """(effective action, resource) pairs of a function's, state machine's or role's grants."""
    grants: set[Grant] = set()
    for statement in _resolved_statements(template, logical_id):
        assert statement["Effect"] == "Allow", (logical_id, statement)
        assert {"NotAction", "NotResource"}.isdisjoint(statement), (logical_id, statement)
        actions = [
            EXACT_WILDCARD_ACTIONS.get(action, action) for action in _as_list(statement["Action"])
        ]
        resources = [_resource_key(resource) for resource in _as_list(statement["Resource"])]
        grants |= _grants(actions, resources)
    if _sam_generates_the_role(template, logical_id):
        grants |= _sam_generated_role_additions(template, logical_id)[0]
    return grants


def aws_managed_policies(template: Template, logical_id: str) -> set[str]:
    """The AWS managed policies on a role, SAM's own additions included."""
    _, managed = _statements_and_managed(template, logical_id, _symbolic_context(template, {}))
    if _sam_generates_the_role(template, logical_id):
        managed |= _sam_generated_role_additions(template, logical_id)[1]
    return managed


def aws_managed_grants(template: Template, logical_id: str) -> set[Grant]:
    """(action, "*") pairs of the AWS managed policies on a role, SAM's additions included."""
    grants: set[Grant] = set()
    for name in aws_managed_policies(template, logical_id):
        assert name in AWS_MANAGED_POLICY_ACTIONS, (
            f"{logical_id}: add {name}'s published statements to AWS_MANAGED_POLICY_ACTIONS"
        )
        grants |= _grants(AWS_MANAGED_POLICY_ACTIONS[name], ["*"])
    return grants


def _writes_own_log_group(logical_id: str) -> set[Grant]:
    """A function's log lines go to its own log group (LoggingConfig), which the template
    creates: streams and events there, no logs:CreateLogGroup."""
    return _grants(("logs:CreateLogStream", "logs:PutLogEvents"), [f"{logical_id}LogGroup"])


def contract(template: Template, logical_id: str) -> set[Grant]:
    """CONTRACT's grants, and a function's writes to its own log group."""
    if template.resources[logical_id]["Type"] == "AWS::Serverless::Function":
        return CONTRACT[logical_id] | _writes_own_log_group(logical_id)
    return CONTRACT[logical_id]


# ---------------------------------------------------------------------------- tests


def test_every_function_state_machine_and_role_has_a_contract(template: Template):
    assert set(_roles(template)) == set(CONTRACT)


def _aws_managed_contract(template: Template, logical_id: str) -> set[str]:
    kind = template.resources[logical_id]["Type"]
    if kind == "AWS::Serverless::Function":
        return FUNCTION_BASICS
    return STATE_MACHINE_BASICS if kind == "AWS::Serverless::StateMachine" else set()


@pytest.mark.parametrize("logical_id", sorted(CONTRACT))
def test_aws_managed_policies_are_the_basics_only(template: Template, logical_id: str):
    """No event source's managed policy (AWSLambdaSQSQueueExecutionRole reads every queue of
    the account): functions fed by a queue or a stream run with a role written here."""
    assert aws_managed_policies(template, logical_id) == _aws_managed_contract(template, logical_id)


@pytest.mark.parametrize("logical_id", sorted(CONTRACT))
def test_grants_stay_within_the_contract(template: Template, logical_id: str):
    assert granted(template, logical_id) - contract(template, logical_id) == set()


@pytest.mark.parametrize("logical_id", sorted(CONTRACT))
def test_what_the_code_needs_is_granted(template: Template, logical_id: str):
    assert contract(template, logical_id) - granted(template, logical_id) == set()


#: The writes and side effects the services are for, stated on their own: a contract (and
#: a template) that lost one of them would pass the equality tests above.
ESSENTIAL_NEEDS: dict[str, set[Grant]] = {
    "ScoreLeadFunction": {("dynamodb:UpdateItem", "ProspectsTable")},
    "ScoreProspectsBatchFunction": {
        ("dynamodb:BatchGetItem", "ProspectsTable"),
        ("dynamodb:UpdateItem", "ProspectsTable"),
    },
    "ScheduledLeadScoringFunction": {
        ("dynamodb:Query", "WorkspacesTable/index/*"),
        ("sqs:SendMessage", "BulkScoreLeadsQueue"),
    },
    "IndexDocumentFunction": {
        ("dynamodb:UpdateItem", "KnowledgeTable"),
        ("bedrock:InvokeModel", "foundation-model/amazon.titan-embed-text-v2:0"),
        ("es:ESHttpPost", "OpenSearchDomain/_bulk"),
    },
    "IndexDocumentsBatchFunction": {
        ("dynamodb:BatchGetItem", "KnowledgeTable"),
        ("dynamodb:UpdateItem", "KnowledgeTable"),
        ("bedrock:InvokeModel", "foundation-model/amazon.titan-embed-text-v2:0"),
    },
    "KnowledgeStreamFunction": {
        ("es:ESHttpPost", "OpenSearchDomain/crmjobs-chunks/*"),
        ("aoss:APIAccessAll", f"collection/{COLLECTION_ID}"),
    },
    "TriggerApiFunction": {
        ("dynamodb:PutItem", "RunsTable"),
        ("dynamodb:PutItem", "IdempotencyTable"),
        ("dynamodb:Query", "RunsTable/index/*"),
        ("scheduler:CreateSchedule", "schedule/ScheduleGroup/run-*"),
        ("scheduler:DeleteSchedule", "schedule/ScheduleGroup/run-*"),
        ("iam:PassRole", "SchedulerRole"),
    },
    "BulkIndexDocumentsFunction": {("states:StartExecution", "BulkIndexDocumentsStateMachine")},
}


@pytest.mark.parametrize("logical_id", sorted(ESSENTIAL_NEEDS))
def test_essential_needs_are_in_the_contract_and_granted(template: Template, logical_id: str):
    needs = ESSENTIAL_NEEDS[logical_id]
    assert needs - CONTRACT[logical_id] == set()
    assert needs - granted(template, logical_id) == set()


#: Who creates or deletes one-time schedules: delayed runs, and campaigns' send times.
SCHEDULING_ROLES = {"TriggerApiFunction", "ScheduleCampaignFunction", "CampaignStreamFunction"}


def test_only_schedulers_schedule_and_only_index_steps_touch_the_index(template: Template):
    """Scheduled scoring never delays its runs; the bulk starters leave the items to the
    state machine's steps."""
    for logical_id in _roles(template):
        grants = granted(template, logical_id)
        if logical_id not in SCHEDULING_ROLES:
            assert not any(action.startswith("scheduler:") for action, _ in grants), logical_id
    for logical_id in ("BulkIndexDocumentsFunction", "ReindexAllDocumentsFunction"):
        grants = granted(template, logical_id)
        assert not any(resource == "KnowledgeTable" for _, resource in grants), logical_id
        assert not any(action.startswith(("es:", "aoss:")) for action, _ in grants), logical_id


#: Limits a DynamoDB statement to the items whose partition key starts "audience:" (the
#: campaigns' audience entries, which hold no send state).
AUDIENCE_ENTRIES_ONLY = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["audience:*"]}}


def test_no_scan_or_wildcard_action(template: Template):
    for logical_id in _roles(template):
        for statement in _resolved_statements(template, logical_id):
            for action in _as_list(statement["Action"]):
                assert action != "dynamodb:Scan", logical_id
                assert "*" not in action or action in EXACT_WILDCARD_ACTIONS, (logical_id, action)


def test_batch_writes_reach_audience_entries_only(template: Template):
    """BatchWriteItem cannot be made conditional and also grants deletes: it is allowed only
    on the audience entries' keys, which never hold a send's state (an entry rewritten by a
    repeated listing page changes no Delivery row, so nobody can be mailed twice)."""
    writers = set()
    for logical_id in _roles(template):
        for statement in _resolved_statements(template, logical_id):
            if "dynamodb:BatchWriteItem" in _as_list(statement["Action"]):
                writers.add(logical_id)
                assert statement.get("Condition") == AUDIENCE_ENTRIES_ONLY, logical_id
                assert _as_list(statement["Resource"]) == ["DeliveriesTable"], logical_id
    assert writers == {"CampaignAudiencePageFunction"}


def test_no_delete_outside_the_idempotency_records(template: Template):
    deletes = {
        (logical_id, resource)
        for logical_id in _roles(template)
        for action, resource in granted(template, logical_id)
        if action == "dynamodb:DeleteItem"
    }
    assert deletes
    assert {resource for _, resource in deletes} == {"IdempotencyTable"}
    assert not any(resource in ENTITY_TABLES for _, resource in deletes)


def test_indexes_are_only_queried(template: Template):
    for logical_id in _roles(template):
        for action, resource in granted(template, logical_id):
            if "/index/" in resource:
                assert action == "dynamodb:Query", (logical_id, action, resource)


@pytest.mark.parametrize("logical_id", sorted(CONTRACT))
def test_every_resource_only_for_actions_iam_cannot_scope(template: Template, logical_id: str):
    """Resource "*" only for actions without resource-level permissions (X-Ray's, log
    delivery, SES GetAccount), in the role's statements and in the AWS managed policies on
    it: not AWSLambdaBasicExecutionRole (every log group of the account) nor an event
    source's (every queue or stream)."""
    grants = granted(template, logical_id) | aws_managed_grants(template, logical_id)
    everywhere = {action for action, resource in grants if resource == "*"}
    assert everywhere - ACTIONS_WITHOUT_RESOURCES == set()


def _function_ids(template: Template) -> list[str]:
    return [
        logical_id
        for logical_id, resource in template.resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
    ]


def test_each_function_writes_only_its_own_log_group(template: Template):
    """Its LoggingConfig names a log group of the template (kept for a set time), its role
    writes there and nowhere else, and no other role writes there."""
    writers: dict[str, set[str]] = {}
    for logical_id in _roles(template):
        for action, resource in granted(template, logical_id) | aws_managed_grants(
            template, logical_id
        ):
            if action in ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"):
                writers.setdefault(resource, set()).add(logical_id)
    functions = _function_ids(template)
    assert len(functions) == 25
    for logical_id in functions:
        log_group = template.function(logical_id).properties["LoggingConfig"]["LogGroup"]
        assert log_group == {"Ref": f"{logical_id}LogGroup"}, logical_id
        group = template.resources[log_group["Ref"]]
        assert group["Type"] == "AWS::Logs::LogGroup", logical_id
        assert "RetentionInDays" in group["Properties"], logical_id
        logs = {grant for grant in granted(template, logical_id) if grant[0].startswith("logs:")}
        assert logs == _writes_own_log_group(logical_id), logical_id
        assert writers[log_group["Ref"]] == {logical_id}
    assert "*" not in writers, writers.get("*")


def test_the_scheduler_role_is_passed_to_scheduler_only(template: Template):
    passing = []
    for logical_id in _roles(template):
        for statement in _resolved_statements(template, logical_id):
            if "iam:PassRole" in _as_list(statement["Action"]):
                passing.append(logical_id)
                assert statement["Resource"] == "SchedulerRole"
                assert statement["Condition"] == {
                    "StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}
                }
    assert set(passing) == {"TriggerApiFunction", "ScheduleCampaignFunction"}


def test_vector_index_paths_name_the_configured_index(template: Template):
    index = template.function_globals["Environment"]["Variables"]["OPENSEARCH_INDEX"]
    paths = {
        resource.split("/", 1)[1]
        for logical_id in _roles(template)
        for action, resource in granted(template, logical_id)
        if action.startswith("es:")
    }
    assert paths == {index, f"{index}/*", "_bulk", f"*/{index}", f"*/{index}/*", "*/_bulk"}


def test_serverless_grant_names_the_endpoints_collection(template: Template):
    """The collection id is the endpoint's first host label."""
    context = _symbolic_context(template, OPENSEARCH_SCENARIOS["existing Serverless collection"])
    statements, _ = _statements_and_managed(template, "IndexDocumentFunction", context)
    arns = {
        statement["Resource"]
        for statement in statements
        if statement["Action"] == "aoss:APIAccessAll"
    }
    assert arns == {f"arn:aws:aoss:{REGION}:{ACCOUNT}:collection/{COLLECTION_ID}"}


def _sam_policy_templates_file() -> Path | None:
    found = glob.glob(
        str(
            REPO_ROOT
            / ".venv-sam/lib/python*/site-packages/samtranslator/policy_templates_data"
            / "policy_templates.json"
        )
    )
    return Path(found[0]) if found else None


def test_policy_template_table_matches_sam():
    path = _sam_policy_templates_file()
    if path is None:
        pytest.skip("SAM CLI is not installed in .venv-sam (make sam-venv)")
    definitions = json.loads(path.read_text())["Templates"]
    for name, (actions, resource_parameter) in SAM_POLICY_TEMPLATES.items():
        template_definition = definitions[name]
        statements = template_definition["Definition"]["Statement"]
        assert [statement["Action"] for statement in statements] == [list(actions)], name
        assert list(template_definition["Parameters"]) == [resource_parameter], name


#: Translates template.yaml with SAM's own translator (SAM CLI's environment), local code
#: paths replaced by S3 placeholders as `sam validate` does; prints the CloudFormation JSON.
_SAM_TRANSLATE = """
import json, os, sys
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse
document = yaml_parse(open(sys.argv[1]).read())
for resource in document["Resources"].values():
    properties = resource.get("Properties") or {}
    for key in ("CodeUri", "DefinitionUri", "ContentUri"):
        if isinstance(properties.get(key), str):
            properties[key] = "s3://bucket/key"
class NoManagedPolicyNames:
    def load(self):
        return {}
print(json.dumps(transform(document, {}, NoManagedPolicyNames())))
"""


def test_aws_managed_policies_match_sams_translation(template: Template):
    """The model above of what SAM attaches (event source policies included) is SAM's."""
    sam_python = REPO_ROOT / ".venv-sam" / "bin" / "python"
    if not sam_python.exists():
        pytest.skip("SAM CLI is not installed in .venv-sam (make sam-venv)")
    result = subprocess.run(
        [str(sam_python), "-c", _SAM_TRANSLATE, str(TEMPLATE_PATH)],
        capture_output=True,
        text=True,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
    )
    assert result.returncode == 0, result.stderr
    translated = json.loads(result.stdout)["Resources"]
    context = _symbolic_context(template, {})
    for logical_id in _roles(template):
        role = (
            logical_id
            if logical_id in _standalone_roles(template)
            else (_explicit_role(template, logical_id) or f"{logical_id}Role")
        )
        arns = resolve(translated[role]["Properties"].get("ManagedPolicyArns", []), context)
        names = {match.group(1) for arn in arns if (match := _AWS_MANAGED_ARN.match(arn))}
        assert names == aws_managed_policies(template, logical_id), logical_id
