"""Bulk state machines' last step: record the run's outcome (totals or error), retry or
dead-letter it, and give its concurrency slot back. Also the target of the rule that
reports executions which ended without reaching that step."""

from typing import Any

from crmjobs.domain.execution_chains import ChainedExecution
from crmjobs.observability import logger, tracer
from crmjobs.services.fanout import FinishInput, finish_bulk_run


def _finish_input(event: dict[str, Any]) -> FinishInput:
    """The finish step's input, or EventBridge's "Step Functions Execution Status Change"
    for an execution that ended without reaching its finish step."""
    if "detail" not in event:
        return FinishInput.model_validate(event)
    detail = event["detail"]
    return FinishInput(
        runId=ChainedExecution.parse(detail["name"]).run_id,
        execution=detail["name"],
        stateMachine=detail["stateMachineArn"],
        error={"Error": f"Execution{detail['status'].title()}", "Cause": detail.get("cause")},
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event, context):
    finish = _finish_input(event)
    error = None
    if finish.error is not None:
        error = f"{finish.error.get('Error')}: {(finish.error.get('Cause') or '')[:500]}"
    finish_bulk_run(
        finish.runId,
        finish.execution,
        state_machine=finish.stateMachine,
        result=finish.result,
        error=error,
    )
    return {"recorded": finish.runId}
