"""What the campaign and agent pages show, read through the families' stores: a campaign's
progress (its counters, recomputed by the sender from the ledger, the send rate of its
sending run, the first recipients) and an agent execution's transcript (its rounds, each
tool call with its result, the tokens). Every read names its workspace."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crmjobs import ledger
from crmjobs.domain.campaigns import FEEDBACK_COUNTERS, LEDGER_COUNTERS
from crmjobs.errors import NotFound
from crmjobs.models import Agent, AgentExecution, Campaign, Delivery, ToolCallRecord
from crmjobs.stores import campaigns, deliveries, executions

RECIPIENTS_SHOWN = 50
LISTED = 100


@dataclass(frozen=True)
class CampaignProgress:
    campaign: Campaign
    recipients_total: int
    by_status: dict[str, int]
    excluded: dict[str, int]
    feedback: dict[str, int]
    sends_per_second: float | None
    sending_run: str | None
    recipients: list[Delivery]


def _plain(value: Any) -> Any:
    """A raw map attribute's value as a dict."""
    return value.as_dict() if hasattr(value, "as_dict") else value


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _send_rate(run_id: str | None, workspace_id: str, sent: int) -> float | None:
    """Sent recipients per second over the sending run's time so far (or its whole run)."""
    run = ledger.get(run_id, workspace_id) if run_id else None
    started = _moment(run.started_at) if run is not None else None
    if started is None:
        return None
    until = _moment(run.finished_at) or datetime.now(UTC)
    seconds = (until - started).total_seconds()
    return sent / seconds if seconds > 0 else None


def campaign_progress(workspace_id: str, campaign_id: str) -> CampaignProgress:
    campaign = campaigns.get(workspace_id, campaign_id)
    counters = _plain(campaign.counters) or {}
    by_status = {name: int(counters.get(name, 0)) for name in LEDGER_COUNTERS[1:]}
    excluded = {
        name: int(count) for name, count in (_plain(counters.get("excluded")) or {}).items()
    }
    recipients = deliveries.ledger_page(workspace_id, campaign_id, None, RECIPIENTS_SHOWN).items
    return CampaignProgress(
        campaign=campaign,
        recipients_total=int(counters.get("recipients", 0)),
        by_status=by_status,
        excluded=excluded,
        feedback={name: int(counters.get(name, 0)) for name in FEEDBACK_COUNTERS},
        sends_per_second=_send_rate(campaign.sending_run, workspace_id, by_status["sent"]),
        sending_run=campaign.sending_run,
        recipients=recipients,
    )


def campaigns_of(workspace_id: str) -> list[Campaign]:
    return list(Campaign.query(workspace_id, limit=LISTED, page_size=LISTED))


@dataclass(frozen=True)
class TranscriptBlock:
    """One piece of a round: the model's text, or a tool call with its recorded result."""

    text: str | None = None
    tool: ToolCallRecord | None = None
    tool_use: dict[str, Any] | None = None
    other: Any = None


@dataclass(frozen=True)
class TranscriptRound:
    number: int
    stop_reason: str
    input_tokens: int
    output_tokens: int
    model: str | None
    latency_ms: int | None
    blocks: list[TranscriptBlock] = field(default_factory=list)


@dataclass(frozen=True)
class Transcript:
    execution: AgentExecution
    rounds: list[TranscriptRound]


def _blocks(content: list[dict[str, Any]], calls: dict[str, ToolCallRecord]) -> list:
    blocks = []
    for block in content or []:
        if "text" in block:
            blocks.append(TranscriptBlock(text=block["text"]))
        elif "toolUse" in block:
            use = block["toolUse"]
            blocks.append(TranscriptBlock(tool=calls.get(use.get("toolUseId")), tool_use=use))
        else:
            blocks.append(TranscriptBlock(other=block))
    return blocks


def transcript(workspace_id: str, execution_id: str) -> Transcript:
    execution = executions.find(workspace_id, execution_id)
    if execution is None:
        raise NotFound(f"agent execution {execution_id} not found")
    calls = executions.tool_calls_of(execution)
    rounds = [
        TranscriptRound(
            number=int(saved.number),
            stop_reason=saved.stop_reason,
            input_tokens=int(saved.input_tokens),
            output_tokens=int(saved.output_tokens),
            model=saved.model,
            latency_ms=int(saved.latency_ms) if saved.latency_ms is not None else None,
            blocks=_blocks(saved.assistant, calls),
        )
        for saved in executions.rounds_of(execution)
    ]
    return Transcript(execution=execution, rounds=rounds)


def agents_of(workspace_id: str) -> list[tuple[Agent, list[AgentExecution]]]:
    """The workspace's agents, each with its latest executions."""
    return [
        (agent, executions.latest_of_agent(workspace_id, agent.id, 5))
        for agent in Agent.query(workspace_id, limit=LISTED, page_size=LISTED)
    ]
