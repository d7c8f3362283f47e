"""Write template.yaml's task-queue section from the task registry (crmjobs/tasks.py TASKS).

Every task has the same resources: its queue, its dead-letter queue, an alarm on that
dead-letter queue and, once the template has its function (a `<Task>Function` resource),
the role the function runs with (the task runtime's managed policy, its own queue and dead-letter
queue); one policy lets the trigger API and the schedules send to every task queue.
This script renders them for each registered task between the BEGIN/END GENERATED
markers of template.yaml and leaves the rest of the file alone. (`Fn::ForEach` would say
the same inside the template, but `sam build` fails on it.)
`--check` only compares and exits 1 when the section is out of date.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = REPO_ROOT / "template.yaml"
sys.path.insert(0, str(REPO_ROOT / "layers" / "common"))

from crmjobs.tasks import TASK_TIMEOUT_SECONDS, TASKS, TaskSpec  # noqa: E402

BEGIN = "  # BEGIN GENERATED task queues"
END = "  # END GENERATED task queues"
HEADER = (
    f"{BEGIN}: scripts/gen_template.py writes this section from the task registry\n"
    "  # (layers/common/crmjobs/tasks.py); do not edit it, run `make template` instead.\n"
)

#: AWS's advice: a queue hides a message at least six times its consumer's timeout.
VISIBILITY_TIMEOUT_SECONDS = 6 * TASK_TIMEOUT_SECONDS
QUEUE_RETENTION_SECONDS = 4 * 24 * 3600
#: Longer than the queue's: a standard queue keeps a message's first enqueue time when it is
#: dead-lettered, so the dead-letter queue must keep it longer.
DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def render_task(task: TaskSpec, *, with_role: bool) -> str:
    """One task's queue, dead-letter queue and alarm, and its function's role if it has one."""
    prefix, name = task.resource_prefix, task.name
    queues = f"""\
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
    role = f"""
  {prefix}FunctionRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - {{Effect: Allow, Principal: {{Service: lambda.amazonaws.com}}, Action: sts:AssumeRole}}
      ManagedPolicyArns:
        - !Sub "arn:${{AWS::Partition}}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
        - !Sub "arn:${{AWS::Partition}}:iam::aws:policy/AWSXrayWriteOnlyAccess"
        - !Ref TaskRuntimePolicy
      Policies:
        - PolicyName: own-queue
          PolicyDocument:
            Version: "2012-10-17"
            Statement:
              - Sid: ConsumeRequeueAndBackOff
                Effect: Allow
                Action: [sqs:ReceiveMessage, sqs:DeleteMessage, sqs:GetQueueAttributes,
                         sqs:ChangeMessageVisibility, sqs:SendMessage]
                Resource: !GetAtt {prefix}Queue.Arn
              - {{Sid: DeadLetter, Effect: Allow, Action: sqs:SendMessage,
                 Resource: !GetAtt {prefix}DeadLetterQueue.Arn}}
"""
    return queues + role if with_role else queues


def render_send_policy(tasks: list[TaskSpec]) -> str:
    queues = "".join(f"              - !GetAtt {task.resource_prefix}Queue.Arn\n" for task in tasks)
    return f"""\
  # Runs of any task are sent by the trigger API and delivered by the schedules (SchedulerRole).
  # (SendMessageBatch is authorized as SendMessage.)
  SendToTaskQueuesPolicy:
    Type: AWS::IAM::ManagedPolicy
    Properties:
      PolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Sid: SendToAnyTaskQueue
            Effect: Allow
            Action: sqs:SendMessage
            Resource:
{queues}"""


def render_section(tasks: list[TaskSpec], function_ids: set[str]) -> str:
    """The generated section, markers included; `function_ids`: the template's functions."""
    blocks = [
        render_task(task, with_role=f"{task.resource_prefix}Function" in function_ids)
        for task in tasks
    ]
    blocks.append(render_send_policy(tasks))
    return HEADER + "\n" + "\n".join(blocks) + f"{END}\n"


def _split(text: str) -> tuple[str, str]:
    """(the text before the BEGIN marker's line, the text after the END marker's line)."""
    lines = text.splitlines(keepends=True)
    starts = [n for n, line in enumerate(lines) if line.startswith(BEGIN)]
    ends = [n for n, line in enumerate(lines) if line.rstrip("\n") == END]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise SystemExit(f"{TEMPLATE.name}: expected one {BEGIN!r} line, then one {END!r} line")
    return "".join(lines[: starts[0]]), "".join(lines[ends[0] + 1 :])


def regenerate(text: str) -> str:
    """`text` with its generated section rendered afresh from the registry."""
    before, after = _split(text)
    # Keys indented once: resources (and parameters, conditions, outputs: none is a function).
    resource_ids = set(re.findall(r"^  ([A-Za-z0-9]+):\s*$", before + after, re.M))
    return before + render_section(list(TASKS.values()), resource_ids) + after


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if template.yaml's generated section is out of date instead of writing it",
    )
    args = parser.parse_args(argv)
    current = TEMPLATE.read_text()
    expected = regenerate(current)
    if args.check:
        if current != expected:
            print(
                "template.yaml's task queues are out of date: run `make template`",
                file=sys.stderr,
            )
            return 1
        return 0
    if current != expected:
        TEMPLATE.write_text(expected)
        print("wrote template.yaml's task queues")
    return 0


if __name__ == "__main__":
    sys.exit(main())
