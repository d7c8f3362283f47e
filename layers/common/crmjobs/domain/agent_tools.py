"""The agents' twelve tools as the model sees them: a pydantic input model each, whose JSON
Schema is the tool's input schema, a description, and the capability that grants it.

No input names a workspace: a tool acts in its agent's workspace only, and an unknown
field (a `workspaceId` too) makes the call invalid. What the tools do is in
services/agent_tools.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

#: Converse's tool name pattern (OpenAI's function names are the same).
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
STAGES = ("new", "contacted", "qualified", "proposal", "negotiation", "won", "lost")

RecordId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
Email = Annotated[str, Field(pattern=EMAIL_PATTERN, max_length=254)]
Stage = Literal["new", "contacted", "qualified", "proposal", "negotiation", "won", "lost"]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]


class ToolInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CreateLeadInput(ToolInput):
    name: ShortText = Field(description="The lead's full name.")
    email: Email | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None
    company: ShortText | None = None
    title: ShortText | None = Field(None, description="Job title, e.g. 'VP of Operations'.")
    estimatedValue: Annotated[int, Field(ge=0)] | None = Field(
        None, description="Estimated deal value in cents."
    )


class SearchLeadsInput(ToolInput):
    query: Annotated[str, Field(max_length=200)] | None = Field(
        None, description="Text found in the name, email, company or title (any case)."
    )
    stage: Stage | None = None
    minScore: Annotated[int, Field(ge=0, le=100)] | None = None
    limit: Annotated[int, Field(ge=1, le=25)] = 10


class UpdateLeadStageInput(ToolInput):
    prospectId: RecordId
    stage: Stage


class CreateContactInput(ToolInput):
    email: Email
    firstName: ShortText | None = None
    lastName: ShortText | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None
    title: ShortText | None = None
    company: ShortText | None = None


class GetHotLeadsInput(ToolInput):
    minScore: Annotated[int, Field(ge=0, le=100)] = 70
    limit: Annotated[int, Field(ge=1, le=25)] = 10


class GetPipelineSummaryInput(ToolInput):
    pass


class _Recipient(ToolInput):
    recipientType: Literal["prospect", "contact"]
    recipientId: RecordId


class DraftEmailInput(ToolInput):
    recipientType: Literal["prospect", "contact"] | None = None
    recipientId: RecordId | None = None
    subject: Annotated[str, Field(min_length=1, max_length=200)]
    body: Annotated[str, Field(min_length=1, max_length=20_000)] = Field(
        description="Plain text; {{firstName}}, {{name}} and {{company}} are filled in."
    )

    @model_validator(mode="after")
    def _recipient_whole(self) -> DraftEmailInput:
        if (self.recipientType is None) != (self.recipientId is None):
            raise ValueError("recipientType and recipientId go together")
        return self


class SendEmailInput(_Recipient):
    subject: Annotated[str, Field(min_length=1, max_length=200)]
    body: Annotated[str, Field(min_length=1, max_length=20_000)] = Field(
        description="Plain text; {{firstName}}, {{name}} and {{company}} are filled in."
    )


class ScheduleMeetingInput(ToolInput):
    title: ShortText
    startsAt: AwareDatetime = Field(description="ISO-8601 with a time zone offset.")
    durationMinutes: Annotated[int, Field(ge=5, le=480)] = 30
    attendees: Annotated[list[Email], Field(max_length=20)] = Field(default_factory=list)
    prospectId: RecordId | None = None
    contactId: RecordId | None = None
    notes: Annotated[str, Field(max_length=2000)] | None = None

    @model_validator(mode="after")
    def _one_party(self) -> ScheduleMeetingInput:
        if self.prospectId is not None and self.contactId is not None:
            raise ValueError("a meeting is with a prospect or a contact, not both")
        return self


class GetUpcomingEventsInput(ToolInput):
    days: Annotated[int, Field(ge=1, le=90)] = 7
    limit: Annotated[int, Field(ge=1, le=50)] = 10


class SearchKnowledgeInput(ToolInput):
    query: Annotated[str, Field(min_length=1, max_length=500)]
    limit: Annotated[int, Field(ge=1, le=10)] = 5


class CreateDocumentInput(ToolInput):
    title: ShortText
    content: Annotated[str, Field(min_length=1, max_length=100_000)]
    type: Literal["text", "document"] = "text"


@dataclass(frozen=True)
class ToolDefinition:
    name: str
    capability: str
    description: str
    input_model: type[ToolInput]
    #: Changes something outside the execution (a record, an email, a run).
    side_effects: bool

    @property
    def input_schema(self) -> dict[str, Any]:
        """The input model's JSON Schema: the tool's input schema."""
        return self.input_model.model_json_schema()


TOOLS: dict[str, ToolDefinition] = {
    tool.name: tool
    for tool in (
        ToolDefinition(
            "create_lead",
            "crm",
            "Create a lead (prospect) in the CRM; it is scored right after.",
            CreateLeadInput,
            True,
        ),
        ToolDefinition(
            "search_leads",
            "crm",
            "Find leads by text, stage or minimum score; best scores first.",
            SearchLeadsInput,
            False,
        ),
        ToolDefinition(
            "update_lead_stage",
            "crm",
            f"Move a lead to another pipeline stage ({', '.join(STAGES)}).",
            UpdateLeadStageInput,
            True,
        ),
        ToolDefinition(
            "create_contact", "crm", "Create a contact in the CRM.", CreateContactInput, True
        ),
        ToolDefinition(
            "get_hot_leads",
            "crm",
            "The leads with the highest scores (at least minScore).",
            GetHotLeadsInput,
            False,
        ),
        ToolDefinition(
            "get_pipeline_summary",
            "crm",
            "Number of leads and their estimated value (cents) per pipeline stage.",
            GetPipelineSummaryInput,
            False,
        ),
        ToolDefinition(
            "draft_email",
            "email",
            "Draft an email (subject and body, placeholders filled in) without sending it; "
            "says whether the recipient can be mailed.",
            DraftEmailInput,
            False,
        ),
        ToolDefinition(
            "send_email",
            "email",
            "Send one email to a lead or contact (opt-outs and suppressions are respected).",
            SendEmailInput,
            True,
        ),
        ToolDefinition(
            "schedule_meeting",
            "calendar",
            "Put a meeting in the calendar, optionally with a lead or a contact.",
            ScheduleMeetingInput,
            True,
        ),
        ToolDefinition(
            "get_upcoming_events",
            "calendar",
            "The meetings from now on, soonest first.",
            GetUpcomingEventsInput,
            False,
        ),
        ToolDefinition(
            "search_knowledge",
            "knowledge",
            "Search the knowledge base (keyword and semantic); returns the best passages.",
            SearchKnowledgeInput,
            False,
        ),
        ToolDefinition(
            "create_document",
            "knowledge",
            "Add a text document to the knowledge base; it is indexed for search right after.",
            CreateDocumentInput,
            True,
        ),
    )
}

#: Each capability's tools, in the spec's order.
CAPABILITIES: dict[str, tuple[str, ...]] = {
    capability: tuple(tool.name for tool in TOOLS.values() if tool.capability == capability)
    for capability in dict.fromkeys(tool.capability for tool in TOOLS.values())
}
