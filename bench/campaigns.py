"""Campaign sending figures: one send-campaign run of N recipients through the embedded
local runtime (queue -> task Lambda -> sending state machine -> batch Lambdas -> SES in
moto) at a configured MaxSendRate, then the same with throttles injected.

Per run: the achieved send rate as a share of the configured one (over the sending
phase: first to last SES call), the most SES calls in any one-second window (must not
exceed the rate), the sending phase's idle time (gaps between sends longer than three slot
intervals: round changes) and the sends that missed their slot, DynamoDB requests per
recipient by table and operation, SES requests per recipient, and wall time.

Run: python bench/campaigns.py [--recipients 10000] [--rate 200] [--throttle 0.01]
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from aws_requests import by_service, counting_aws_requests, uncounted  # noqa: E402

from crmjobs import client  # noqa: E402
from crmjobs.adapters import aws, state_machines  # noqa: E402
from crmjobs.adapters.mailer import SendThrottled, SesMailer  # noqa: E402
from crmjobs.domain.execution_chains import ChainedExecution  # noqa: E402
from crmjobs.domain.pacing import max_in_window  # noqa: E402
from crmjobs.models import Campaign, Prospect, Workspace  # noqa: E402
from crmjobs.models.campaigns import CampaignContent  # noqa: E402
from crmjobs.runtime import execution_name  # noqa: E402
from crmjobs.services import campaign_sending  # noqa: E402
from crmjobs_local.stack import LocalRuntime  # noqa: E402

WORKSPACE = "ws-bench-campaigns"


class TimedMailer(SesMailer):
    """The real mailer (moto's SES), recording when each call starts; throttles a share of
    calls the way SES does (TooManyRequests, nothing sent)."""

    def __init__(self, rate: float, throttle: float) -> None:
        super().__init__(max_rate_override=rate)
        self.throttle = throttle
        self.rng = random.Random(5)
        self.calls: list[float] = []
        self.throttled = 0
        self._lock = threading.Lock()

    def send(self, email):
        with self._lock:
            self.calls.append(time.time())
            throttled = self.rng.random() < self.throttle
            self.throttled += throttled
        if throttled:
            raise SendThrottled("TooManyRequestsException: Maximum sending rate exceeded.")
        return super().send(email)


def seed(recipients: int) -> None:
    Workspace(id=WORKSPACE, name="Bench", subscription_tier="enterprise").save()
    with Prospect.batch_write() as batch:
        for n in range(recipients):
            batch.save(
                Prospect(
                    workspace_id=WORKSPACE,
                    id=f"p-{n:06d}",
                    name=f"Prospect {n} Smith",
                    email=f"prospect{n}@bench.example.com",
                    company="Initech",
                )
            )


def _quiet_collector() -> None:
    """The emulator keeps every table in this process: a full collection over them stalls
    every simulated Lambda at once (measured: 0.1-1 s, so sends miss their slots), which a
    Lambda's own small heap never does. The store so far is frozen (never collected) and
    the collector stops at its second generation while the campaign is sent."""
    gc.collect()
    gc.freeze()
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, 1_000_000)


def _history_events(machine: str, chain: str) -> list[int]:
    """How many events each execution of the sending chain holds (Step Functions keeps
    25,000 per execution)."""
    sfn = aws.client("stepfunctions")
    counts = []
    execution = ChainedExecution.parse(chain)
    while state_machines.status(machine, execution.name) is not None:
        arn = state_machines.execution_arn(machine, execution.name)
        events, token = 0, None
        while True:
            page = sfn.get_execution_history(
                executionArn=arn, maxResults=1000, **({"nextToken": token} if token else {})
            )
            events += len(page["events"])
            token = page.get("nextToken")
            if not token:
                break
        counts.append(events)
        execution = execution.successor()
    return counts


def send_once(stack: LocalRuntime, campaign_id: str, mailer: TimedMailer, recipients: int) -> dict:
    Campaign(
        workspace_id=WORKSPACE,
        id=campaign_id,
        name="Bench",
        audience="all_leads",
        content=CampaignContent(subject="Hi {{firstName}}", body="News for {{company}}\nBye"),
    ).save()
    campaign_sending.mailer_from_config = lambda: mailer
    _quiet_collector()
    with counting_aws_requests() as counts:
        started = time.perf_counter()
        with uncounted():
            run = client.trigger("send-campaign", {"workspaceId": WORKSPACE,
                                                   "campaignId": campaign_id})
            done = client.wait(run.id, timeout=24 * 3600, poll=1.0)
        wall = time.perf_counter() - started
    if done.status != "COMPLETED" or done.output.get("sent") != recipients:
        raise SystemExit(f"run {done.status}: {done.output} {done.error}")
    history = _history_events(
        stack.resources.state_machines["SendCampaignStateMachine"],
        execution_name(run.id, done.attempts),
    )
    services = by_service(counts)
    sent_calls = sorted(mailer.calls)
    phase = sent_calls[-1] - sent_calls[0]
    achieved = (len(sent_calls) - 1) / phase if phase > 0 else float("inf")
    slot = 1 / mailer.max_send_rate()
    gaps = [b - a for a, b in zip(sent_calls, sent_calls[1:], strict=False) if b - a > 3 * slot]
    return {
        "recipients": recipients,
        "wall_s": wall,
        "sending_s": phase,
        "achieved_per_s": achieved,
        "max_in_1s": max_in_window(sent_calls),
        "idle_s": sum(gaps),
        "gaps": len(gaps),
        "late": done.output.get("lateSends", 0),
        "passes": done.output.get("passes"),
        "dynamodb_per_recipient": services["dynamodb"] / recipients,
        "ses_per_recipient": services["sesv2"] / recipients,
        "throttled": mailer.throttled,
        "history_events": sum(history),
        "executions": len(history),
        "by_operation": {k: v for k, v in sorted(counts.items()) if k.startswith("dynamodb:")},
        # The local runtime's own polling of table streams (Lambda's event source mapping
        # in AWS), not the application's requests.
        "stream_polls": services["dynamodbstreams"],
    }


def report(title: str, rate: float, figures: dict) -> None:
    print(f"\n{title}")
    print(f"  wall time               {figures['wall_s']:.1f} s "
          f"(sending phase {figures['sending_s']:.1f} s)")
    print(f"  achieved rate           {figures['achieved_per_s']:.1f}/s = "
          f"{100 * figures['achieved_per_s'] / rate:.1f} % of {rate:g}/s")
    print(f"  most in any 1 s window  {figures['max_in_1s']} (limit {rate:g})")
    print(f"  idle while sending      {figures['idle_s']:.1f} s in {figures['gaps']} gaps; "
          f"{figures['late']} sends missed their slot; {figures['passes']} passes")
    print(f"  DynamoDB per recipient  {figures['dynamodb_per_recipient']:.3f}")
    recipients = figures["recipients"]
    for operation, count in figures["by_operation"].items():
        _, name, table = operation.split(":")
        print(f"    {table:14} {name:15} {count:7}  {count / recipients:.3f}")
    print(f"  SES calls per recipient {figures['ses_per_recipient']:.3f} "
          f"({figures['throttled']} throttled)")
    print(f"  (not counted: {figures['stream_polls']} stream polls by the local runtime)")
    print(f"  execution history       {figures['history_events']} events in "
          f"{figures['executions']} execution(s) "
          f"({figures['history_events'] / recipients:.3f} per recipient; 25,000 per execution)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--throttle", type=float, default=0.01)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir, LocalRuntime(
        data_dir=Path(data_dir), in_process=True, parameters={"MaxSendRate": f"{args.rate:g}"}
    ) as stack:
        seed(args.recipients)
        with stack.serving():
            plain = send_once(stack, "bench-plain", TimedMailer(args.rate, 0.0), args.recipients)
            report(f"{args.recipients} recipients at {args.rate:g}/s", args.rate, plain)
            throttled = send_once(
                stack, "bench-throttled", TimedMailer(args.rate, args.throttle), args.recipients
            )
            report(f"the same with {100 * args.throttle:g} % throttles", args.rate, throttled)
    ok = all(f["max_in_1s"] <= args.rate for f in (plain, throttled))
    print(f"\nwindow limit held: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
