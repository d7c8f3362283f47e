"""What the agents' tools do (their input models are in domain/agent_tools.py).

Every tool acts in its agent's workspace only: records are read by (workspace, id), so an
id of another workspace is "not found", and no input names a workspace. A tool that
creates something derives the new record's id, its runs' idempotency keys and its email's
dedupe key from the call (execution and toolUseId), so running the same call again after a
crash changes nothing more.

Results are JSON objects for the model. A tool's own failure (bad input, a record not
found, a conflict) raises ToolError or a PermanentError, which the loop hands back to the
model as the call's error result; anything else is an infrastructure error the attempt's
retry deals with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from crmjobs import client
from crmjobs.domain import agent_tools as tools
from crmjobs.domain.audience import contact_display_name, normalize_address
from crmjobs.domain.rendering import (
    RecipientFields,
    UnknownPlaceholder,
    render_subject,
    render_text,
)
from crmjobs.errors import Conflict
from crmjobs.models import Contact, KnowledgeItem, Meeting, Prospect
from crmjobs.services.documents import search_knowledge as hybrid_search
from crmjobs.services.mail import send_direct_email
from crmjobs.stores import agent_records, meetings, people, prospects, suppressions
from crmjobs.stores.executions import iso

#: The most prospects a lead tool reads (its workspace's partition, in key order).
MAX_LEADS_READ = 2_000
#: The most prospects the pipeline summary reads.
MAX_PIPELINE_READ = 10_000


class ToolError(Exception):
    """The call cannot be done as asked; the message goes back to the model."""


@dataclass(frozen=True)
class ToolContext:
    workspace_id: str
    agent_id: str
    execution_id: str
    tool_use_id: str
    now: datetime

    @property
    def record_id(self) -> str:
        """The id of the record this call creates: the same for every try of the call."""
        digest = hashlib.sha256(f"{self.execution_id}:{self.tool_use_id}".encode()).hexdigest()
        return f"ag-{digest[:24]}"

    @property
    def idempotency_key(self) -> str:
        """The key of a run this call triggers (one run per call, however often it runs)."""
        return f"agent-tool:{self.execution_id}:{self.tool_use_id}"

    @property
    def actor(self) -> str:
        return f"agent:{self.agent_id}"


def run_tool(name: str, raw_input: Any, context: ToolContext) -> dict[str, Any]:
    """Validate the input against the tool's model and run it."""
    definition = tools.TOOLS.get(name)
    if definition is None:
        raise ToolError(f"unknown tool {name!r}")
    try:
        arguments = definition.input_model.model_validate(raw_input)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'input'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ToolError(f"invalid input for {name}: {problems}") from None
    return IMPLEMENTATIONS[name](arguments, context)


# --- crm ---------------------------------------------------------------------------------


def _lead(prospect: Prospect) -> dict[str, Any]:
    return {
        "prospectId": prospect.id,
        "name": prospect.name,
        "email": prospect.email,
        "company": prospect.company,
        "title": prospect.title,
        "stage": prospect.stage or "new",
        "score": None if prospect.score is None else int(prospect.score),
        "estimatedValue": None
        if prospect.estimated_value is None
        else int(prospect.estimated_value),
    }


def create_lead(arguments: tools.CreateLeadInput, context: ToolContext) -> dict[str, Any]:
    prospect, created = agent_records.create_once(
        Prospect(
            workspace_id=context.workspace_id,
            id=context.record_id,
            name=arguments.name,
            email=arguments.email,
            phone=arguments.phone,
            company=arguments.company,
            title=arguments.title,
            estimated_value=arguments.estimatedValue,
            created_at=context.now,
            updated_at=context.now,
        )
    )
    scoring = client.trigger(
        "score-lead",
        {"workspaceId": context.workspace_id, "prospectId": prospect.id},
        idempotency_key=context.idempotency_key,
    )
    return {**_lead(prospect), "created": created, "scoringRunId": scoring.id}


def _matches(prospect: Prospect, arguments: tools.SearchLeadsInput) -> bool:
    if arguments.stage is not None and (prospect.stage or "new") != arguments.stage:
        return False
    if arguments.minScore is not None and (prospect.score or 0) < arguments.minScore:
        return False
    if arguments.query:
        needle = arguments.query.lower()
        haystack = (prospect.name, prospect.email, prospect.company, prospect.title)
        return any(needle in (value or "").lower() for value in haystack)
    return True


def _best_leads(workspace_id: str, keep: Callable[[Prospect], bool], limit: int) -> dict[str, Any]:
    query = agent_records.leads(workspace_id, most=MAX_LEADS_READ)
    found = [prospect for prospect in query if keep(prospect)]
    found.sort(key=lambda prospect: (-(prospect.score or -1), prospect.name))
    return {
        "leads": [_lead(prospect) for prospect in found[:limit]],
        "matched": len(found),
        # More prospects than one call reads: the matches are among the first ones only.
        "partial": query.last_evaluated_key is not None,
    }


def search_leads(arguments: tools.SearchLeadsInput, context: ToolContext) -> dict[str, Any]:
    return _best_leads(
        context.workspace_id, lambda prospect: _matches(prospect, arguments), arguments.limit
    )


def get_hot_leads(arguments: tools.GetHotLeadsInput, context: ToolContext) -> dict[str, Any]:
    return _best_leads(
        context.workspace_id,
        lambda prospect: prospect.score is not None and prospect.score >= arguments.minScore,
        arguments.limit,
    )


def update_lead_stage(
    arguments: tools.UpdateLeadStageInput, context: ToolContext
) -> dict[str, Any]:
    for _ in range(3):
        prospect = prospects.get(context.workspace_id, arguments.prospectId)
        previous = prospect.stage or "new"
        if previous == arguments.stage:
            return {"prospectId": prospect.id, "stage": previous, "changed": False}
        try:
            agent_records.set_stage(prospect, arguments.stage, context.now)
        except Conflict:
            continue  # edited meanwhile: read it again
        scoring = client.trigger(
            "score-lead",
            {"workspaceId": context.workspace_id, "prospectId": prospect.id},
            idempotency_key=context.idempotency_key,
        )
        return {
            "prospectId": prospect.id,
            "previousStage": previous,
            "stage": arguments.stage,
            "changed": True,
            "scoringRunId": scoring.id,
        }
    raise ToolError(f"prospect {arguments.prospectId} keeps changing; try again later")


def create_contact(arguments: tools.CreateContactInput, context: ToolContext) -> dict[str, Any]:
    contact, created = agent_records.create_once(
        Contact(
            workspace_id=context.workspace_id,
            id=context.record_id,
            email=normalize_address(arguments.email),
            first_name=arguments.firstName,
            last_name=arguments.lastName,
            phone=arguments.phone,
            title=arguments.title,
            company=arguments.company,
        )
    )
    return {
        "contactId": contact.id,
        "email": contact.email,
        "name": contact_display_name(contact.first_name, contact.last_name),
        "created": created,
    }


def get_pipeline_summary(
    arguments: tools.GetPipelineSummaryInput, context: ToolContext
) -> dict[str, Any]:
    query = agent_records.leads(
        context.workspace_id,
        most=MAX_PIPELINE_READ,
        fields=["workspaceId", "id", "stage", "estimatedValue"],
    )
    stages = {stage: {"count": 0, "estimatedValue": 0} for stage in tools.STAGES}
    total = 0
    for prospect in query:
        entry = stages.setdefault(prospect.stage or "new", {"count": 0, "estimatedValue": 0})
        entry["count"] += 1
        entry["estimatedValue"] += int(prospect.estimated_value or 0)
        total += 1
    return {
        "stages": stages,
        "leads": total,
        "partial": query.last_evaluated_key is not None,
    }


# --- email -------------------------------------------------------------------------------


def draft_email(arguments: tools.DraftEmailInput, context: ToolContext) -> dict[str, Any]:
    if arguments.recipientType is None:
        return {"subject": arguments.subject, "body": arguments.body, "sent": False}
    person = people.get(context.workspace_id, arguments.recipientType, arguments.recipientId)
    fields = RecipientFields(
        name=person.name,
        first_name=person.first_name,
        last_name=person.last_name,
        company=person.company,
        title=person.title,
        email=person.email,
    )
    try:
        subject = render_subject(arguments.subject, fields)
        body = render_text(arguments.body, fields)
    except UnknownPlaceholder as exc:
        raise ToolError(str(exc)) from None
    if not person.email.strip():
        blocked = "no email"
    elif person.opted_out:
        blocked = "opted out"
    elif suppressions.is_suppressed(context.workspace_id, person.address):
        blocked = "suppressed"
    else:
        blocked = None
    return {
        "to": person.email or None,
        "subject": subject,
        "body": body,
        "sent": False,
        "canSend": blocked is None,
        "cannotSendBecause": blocked,
    }


def send_email(arguments: tools.SendEmailInput, context: ToolContext) -> dict[str, Any]:
    result = send_direct_email(
        context.workspace_id,
        recipient_type=arguments.recipientType,
        recipient_id=arguments.recipientId,
        subject=arguments.subject,
        body=arguments.body,
        dedupe_key=f"{context.execution_id}:{context.tool_use_id}",
        sent_by=context.actor,
    )
    return {
        "status": result.status,
        "reason": result.reason,
        "messageId": result.message_id,
    }


# --- calendar ------------------------------------------------------------------------------


def _meeting(meeting: Meeting) -> dict[str, Any]:
    return {
        "meetingId": meeting.id,
        "title": meeting.title,
        "startsAt": meeting.starts_at,
        "endsAt": meeting.ends_at,
        "attendees": list(meeting.attendees or []),
        "prospectId": meeting.prospect_id,
        "contactId": meeting.contact_id,
        "notes": meeting.notes,
    }


def schedule_meeting(arguments: tools.ScheduleMeetingInput, context: ToolContext) -> dict[str, Any]:
    if arguments.startsAt <= context.now:
        raise ToolError(f"startsAt {arguments.startsAt.isoformat()} is not in the future")
    if arguments.prospectId is not None:
        people.get(context.workspace_id, "prospect", arguments.prospectId)
    if arguments.contactId is not None:
        people.get(context.workspace_id, "contact", arguments.contactId)
    starts = arguments.startsAt
    meeting, created = agent_records.create_once(
        Meeting(
            workspace_id=context.workspace_id,
            id=context.record_id,
            title=arguments.title,
            starts_at=iso(starts),
            ends_at=iso(starts + timedelta(minutes=arguments.durationMinutes)),
            attendees=[normalize_address(address) for address in arguments.attendees],
            prospect_id=arguments.prospectId,
            contact_id=arguments.contactId,
            notes=arguments.notes,
            created_by=context.actor,
            created_at=context.now,
            updated_at=context.now,
        )
    )
    return {**_meeting(meeting), "created": created}


def get_upcoming_events(
    arguments: tools.GetUpcomingEventsInput, context: ToolContext
) -> dict[str, Any]:
    found = meetings.between(
        context.workspace_id,
        iso(context.now),
        iso(context.now + timedelta(days=arguments.days)),
        arguments.limit,
    )
    return {"meetings": [_meeting(meeting) for meeting in found], "days": arguments.days}


# --- knowledge ----------------------------------------------------------------------------


def search_knowledge(arguments: tools.SearchKnowledgeInput, context: ToolContext) -> dict[str, Any]:
    hits = hybrid_search(context.workspace_id, arguments.query, arguments.limit)
    return {
        "results": [
            {"itemId": hit.item_id, "title": hit.title, "passage": hit.chunk, "score": hit.score}
            for hit in hits
        ]
    }


def create_document(arguments: tools.CreateDocumentInput, context: ToolContext) -> dict[str, Any]:
    item, created = agent_records.create_once(
        KnowledgeItem(
            workspace_id=context.workspace_id,
            id=context.record_id,
            title=arguments.title,
            type=arguments.type,
            status="processing",
            content=arguments.content,
            mime_type="text/plain",
            created_at=context.now,
            updated_at=context.now,
        )
    )
    indexing = client.trigger(
        "index-document",
        {"workspaceId": context.workspace_id, "itemId": item.id},
        idempotency_key=context.idempotency_key,
    )
    return {
        "itemId": item.id,
        "title": item.title,
        "created": created,
        "indexingRunId": indexing.id,
    }


IMPLEMENTATIONS: dict[str, Callable[[Any, ToolContext], dict[str, Any]]] = {
    "create_lead": create_lead,
    "search_leads": search_leads,
    "update_lead_stage": update_lead_stage,
    "create_contact": create_contact,
    "get_hot_leads": get_hot_leads,
    "get_pipeline_summary": get_pipeline_summary,
    "draft_email": draft_email,
    "send_email": send_email,
    "schedule_meeting": schedule_meeting,
    "get_upcoming_events": get_upcoming_events,
    "search_knowledge": search_knowledge,
    "create_document": create_document,
}
