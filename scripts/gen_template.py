"""Write template.yaml's generated sections: the task queues (from the task registry,
crmjobs/tasks.py TASKS) and every function's role and log group.

Every task has the same resources: its queue, its dead-letter queue and an alarm on that
dead-letter queue; one policy lets the trigger API and the schedules send to every task
queue. Every function (each `AWS::Serverless::Function` written in the template) has its
own log group, kept `LogRetentionDays`, and a role that writes its log lines there and
nowhere else, sends X-Ray traces, and for a task's function (`<Task>Function`) carries the
task runtime's managed policy and consumes its own queue. The function names both
(`Role`, `LoggingConfig`); what its code needs beyond that is the `<Function>Policy` beside
it. (SAM's generated roles would add AWSLambdaBasicExecutionRole: every log group of the
account; `Fn::ForEach` would say the same inside the template, but `sam build` fails on it.)
This script renders each section between its BEGIN/END GENERATED markers and leaves the
rest of the file alone. `--check` only compares and exits 1 when a section is out of date.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import generated_file

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = REPO_ROOT / "template.yaml"
REGISTRY = REPO_ROOT / "layers" / "common" / "crmjobs" / "tasks.py"


def _load_registry():
    """crmjobs/tasks.py on its own (it needs only the standard library): the package's
    __init__ imports Powertools, which the interpreter `make` runs this with may not have."""
    spec = importlib.util.spec_from_file_location("crmjobs_task_registry", REGISTRY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


_registry = _load_registry()
TASK_TIMEOUT_SECONDS = _registry.TASK_TIMEOUT_SECONDS
TASKS = _registry.TASKS
TaskSpec = _registry.TaskSpec

TASK_QUEUES = "task queues"
FUNCTION_ROLES = "function roles"
SECTIONS = (TASK_QUEUES, FUNCTION_ROLES)
SOURCES = {
    TASK_QUEUES: "from the task registry\n  # (layers/common/crmjobs/tasks.py)",
    FUNCTION_ROLES: "for every function\n  # written in the template",
}
#: The function that triggers any task: it sends to every task queue.
TRIGGER_API_FUNCTION = "TriggerApiFunction"


def _begin(section: str) -> str:
    return f"  # BEGIN GENERATED {section}"


def _end(section: str) -> str:
    return f"  # END GENERATED {section}"


def _header(section: str) -> str:
    return (
        f"{_begin(section)}: scripts/gen_template.py writes this section {SOURCES[section]};"
        " do not edit it, run `make template` instead.\n"
    )


#: AWS's advice: a queue hides a message at least six times its consumer's timeout.
VISIBILITY_TIMEOUT_SECONDS = 6 * TASK_TIMEOUT_SECONDS
QUEUE_RETENTION_SECONDS = 4 * 24 * 3600
#: Longer than the queue's: a standard queue keeps a message's first enqueue time when it is
#: dead-lettered, so the dead-letter queue must keep it longer.
DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _kebab(logical_id: str) -> str:
    """ScoreLeadFunction -> score-lead (a function's service name, as its queue is named)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", logical_id.removesuffix("Function")).lower()


def render_task(task: TaskSpec) -> str:
    """One task's queue, dead-letter queue and alarm."""
    prefix, name = task.resource_prefix, task.name
    return f"""\
  {prefix}Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${{AWS::StackName}}-{name}"
      SqsManagedSseEnabled: true
      VisibilityTimeout: {VISIBILITY_TIMEOUT_SECONDS}
      MessageRetentionPeriod: {QUEUE_RETENTION_SECONDS}
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt {prefix}DeadLetterQueue.Arn
        maxReceiveCount: {task.max_receive_count}

  {prefix}DeadLetterQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${{AWS::StackName}}-{name}-dlq"
      SqsManagedSseEnabled: true
      MessageRetentionPeriod: {DEAD_LETTER_RETENTION_SECONDS}

  {prefix}DeadLetterAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: !Sub "${{AWS::StackName}}: {_article(name)} {name} run exhausted its \
attempts (dead-letter queue not empty)"
      Namespace: AWS/SQS
      MetricName: ApproximateNumberOfMessagesVisible
      Dimensions: [{{Name: QueueName, Value: !GetAtt {prefix}DeadLetterQueue.QueueName}}]
      Statistic: Maximum
      Period: 60
      EvaluationPeriods: 1
      Threshold: 1
      ComparisonOperator: GreaterThanOrEqualToThreshold
      TreatMissingData: notBreaching
      AlarmActions: [!Ref AlarmTopic]
"""


def render_send_policy(tasks: list[TaskSpec], function_ids: list[str]) -> str:
    queues = "".join(f"              - !GetAtt {task.resource_prefix}Queue.Arn\n" for task in tasks)
    roles = (
        f"      Roles: [!Ref {TRIGGER_API_FUNCTION}Role]\n"
        if TRIGGER_API_FUNCTION in function_ids
        else ""
    )
    return f"""\
  # Runs of any task are sent by the trigger API and delivered by the schedules (SchedulerRole).
  # (SendMessageBatch is authorized as SendMessage.)
  SendToTaskQueuesPolicy:
    Type: AWS::IAM::ManagedPolicy
    Properties:
{roles}\
      PolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Sid: SendToAnyTaskQueue
            Effect: Allow
            Action: sqs:SendMessage
            Resource:
{queues}"""


def render_function(logical_id: str, task: TaskSpec | None) -> str:
    """A function's log group and role; a task's function also runs the task runtime on its
    own queue and dead-letter queue."""
    name = task.name if task else _kebab(logical_id)
    runtime_policy = "\n        - !Ref TaskRuntimePolicy" if task else ""
    own_queue = (
        f"""
        - PolicyName: own-queue
          PolicyDocument:
            Version: "2012-10-17"
            Statement:
              - Sid: ConsumeRequeueAndBackOff
                Effect: Allow
                Action: [sqs:ReceiveMessage, sqs:DeleteMessage, sqs:GetQueueAttributes,
                         sqs:ChangeMessageVisibility, sqs:SendMessage]
                Resource: !GetAtt {task.resource_prefix}Queue.Arn
              - {{Sid: DeadLetter, Effect: Allow, Action: sqs:SendMessage,
                 Resource: !GetAtt {task.resource_prefix}DeadLetterQueue.Arn}}"""
        if task
        else ""
    )
    return f"""\
  {logical_id}LogGroup:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: !Sub "/aws/lambda/${{AWS::StackName}}-{name}"
      RetentionInDays: !Ref LogRetentionDays

  {logical_id}Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - {{Effect: Allow, Principal: {{Service: lambda.amazonaws.com}}, Action: sts:AssumeRole}}
      ManagedPolicyArns:
        - !Sub "arn:${{AWS::Partition}}:iam::aws:policy/AWSXrayWriteOnlyAccess"\
{runtime_policy}
      Policies:
        - PolicyName: own-log-group
          PolicyDocument:
            Version: "2012-10-17"
            Statement:
              - Sid: WriteOwnLogGroup
                Effect: Allow
                Action: [logs:CreateLogStream, logs:PutLogEvents]
                Resource: !GetAtt {logical_id}LogGroup.Arn\
{own_queue}
"""


def render_section(section: str, tasks: list[TaskSpec], function_ids: list[str]) -> str:
    """A generated section, markers included; `function_ids`: the template's functions."""
    if section == TASK_QUEUES:
        blocks = [render_task(task) for task in tasks]
        blocks.append(render_send_policy(tasks, function_ids))
    else:
        task_of = {f"{task.resource_prefix}Function": task for task in tasks}
        blocks = [render_function(name, task_of.get(name)) for name in function_ids]
    return _header(section) + "\n" + "\n".join(blocks) + f"{_end(section)}\n"


def _split(text: str, section: str) -> tuple[str, str]:
    """(the text before the section's BEGIN marker line, the text after its END marker line)."""
    begin, end = _begin(section), _end(section)
    lines = text.splitlines(keepends=True)
    starts = [n for n, line in enumerate(lines) if line.startswith(begin)]
    ends = [n for n, line in enumerate(lines) if line.rstrip("\n") == end]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise SystemExit(f"{TEMPLATE.name}: expected one {begin!r} line, then one {end!r} line")
    return "".join(lines[: starts[0]]), "".join(lines[ends[0] + 1 :])


#: A resource written in the template (keys indented once) of type AWS::Serverless::Function.
_FUNCTION = re.compile(r"^  ([A-Za-z0-9]+):\n    Type: AWS::Serverless::Function\s*$", re.M)


def regenerate(text: str) -> str:
    """`text` with its generated sections rendered afresh from the registry and functions."""
    written = text
    for section in SECTIONS:
        before, after = _split(written, section)
        written = before + after
    function_ids = _FUNCTION.findall(written)
    tasks = list(TASKS.values())
    for section in SECTIONS:
        before, after = _split(text, section)
        text = before + render_section(section, tasks, function_ids) + after
    return text


if __name__ == "__main__":
    sys.exit(
        generated_file.main(
            TEMPLATE,
            lambda current: regenerate(current or ""),
            description=__doc__,
            make_target="template",
        )
    )
