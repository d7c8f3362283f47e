"""The embedded local runtime as a whole: what it reports, each function's own
environment and timeout, mail to the outbox, and a run served by its background pollers."""

from __future__ import annotations

import email

from crmjobs import client, config
from crmjobs.adapters.aws import client as aws_client
from crmjobs.models import Prospect
from crmjobs_local.stack import LOCAL_MAIL_DOMAIN


def test_unemulated_resources_are_reported_by_name(stack):
    reported = {(item.logical_id, item.resource_type) for item in stack.resources.unsupported}
    assert ("OpenSearchDomain", "AWS::OpenSearchService::Domain") in reported
    # The HTTP API itself is provisioned (its endpoint is the local HTTP API's URL).
    assert ("Api", "AWS::ApiGatewayV2::Api") not in reported
    assert ("ApiStage", "AWS::ApiGatewayV2::Stage") in reported
    assert ("FinishBulkRunFunction.BulkRunEnded", "EventBridgeRule event") in reported


def test_functions_run_with_their_own_environment_and_timeout(stack, monkeypatch):
    seen = {}

    def probe(event, context):
        seen["timezone"] = config.env("SCORING_TIMEZONE")
        seen["backend"] = config.env("EMBEDDINGS_BACKEND")
        seen["remaining_ms"] = context.get_remaining_time_in_millis()
        return {}

    monkeypatch.setattr("crmjobs_local.stack.load_handler", lambda *args: probe)
    stack.invoke("ScheduledLeadScoringFunction", {})
    assert seen["timezone"] == "UTC" and seen["backend"] == "local"
    assert 299_000 < seen["remaining_ms"] <= 300_000
    stack.invoke("TriggerApiFunction", {})
    assert seen["timezone"] is None
    assert 28_000 < seen["remaining_ms"] <= 29_000


def test_sent_mail_lands_in_the_outbox(stack):
    aws_client("sesv2").send_email(
        FromEmailAddress=f"campaigns@{LOCAL_MAIL_DOMAIN}",
        Destination={"ToAddresses": ["ada@example.com"]},
        Content={"Simple": {"Subject": {"Data": "Hello"}, "Body": {"Text": {"Data": "Hi Ada"}}}},
    )
    [path] = stack.outbox.sync()
    message = email.message_from_bytes(path.read_bytes())
    assert message["To"] == "ada@example.com" and message["Subject"] == "Hello"


def test_served_stack_runs_a_triggered_task(stack, workspace):
    Prospect(workspace_id=workspace.id, id="p-1", name="Ada", email="ada@acme.com").save()
    with stack.serving():
        run = client.trigger("score-lead", {"workspaceId": workspace.id, "prospectId": "p-1"})
        done = client.wait(run.id, timeout=30)
    assert done.status == "COMPLETED" and done.output["score"] == 35
