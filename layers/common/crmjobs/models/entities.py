"""The CRM's entities (spec: domain.md), one PynamoDB model per table.

Attributes are snake_case in Python and camelCase in DynamoDB, as the app writes them.
Timestamps and numbers are read in the forms other apps write (models/base.py); createdAt
and updatedAt are set on new records only, never invented for a stored one without them.
"""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    MapAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

from crmjobs.models.base import (
    Number,
    ReadableModel,
    Timestamp,
    WorkspaceScoped,
    table_meta,
    utcnow,
)

TIER_CONCURRENCY = {"free": 1, "starter": 5, "professional": 20, "enterprise": 20}
SYSTEM_CONCURRENCY = 10
ACTIVE_SHARD = "active"


class ActiveWorkspacesIndex(GlobalSecondaryIndex):
    """Sparse: only active workspaces carry activeShard."""

    class Meta:
        index_name = "active-index"
        projection = AllProjection()

    active_shard = UnicodeAttribute(hash_key=True, attr_name="activeShard")
    id = UnicodeAttribute(range_key=True)


class Workspace(ReadableModel):
    Meta = table_meta("WORKSPACES_TABLE")

    id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    slug = UnicodeAttribute(null=True)
    subscription_tier = UnicodeAttribute(default="free", attr_name="subscriptionTier")
    is_active = BooleanAttribute(default=True, attr_name="isActive")
    timezone = UnicodeAttribute(default="UTC")
    active_shard = UnicodeAttribute(null=True, attr_name="activeShard")
    active_index = ActiveWorkspacesIndex()

    def save(self, *args, **kwargs):
        self.active_shard = ACTIVE_SHARD if self.is_active else None
        return super().save(*args, **kwargs)

    @property
    def concurrency_limit(self) -> int:
        return TIER_CONCURRENCY.get(self.subscription_tier, TIER_CONCURRENCY["free"])

    @classmethod
    def active(cls):
        return cls.active_index.query(ACTIVE_SHARD)


class Prospect(WorkspaceScoped):
    Meta = table_meta("PROSPECTS_TABLE")

    workspace_id = UnicodeAttribute(hash_key=True, attr_name="workspaceId")
    id = UnicodeAttribute(range_key=True)
    name = UnicodeAttribute()
    email = UnicodeAttribute(null=True)
    phone = UnicodeAttribute(null=True)
    company = UnicodeAttribute(null=True)
    title = UnicodeAttribute(null=True)
    stage = UnicodeAttribute(default="new")
    estimated_value = Number(null=True, attr_name="estimatedValue")
    last_contacted_at = Timestamp(null=True, attr_name="lastContactedAt")
    email_opt_out = BooleanAttribute(default=False, attr_name="emailOptOut")
    score = Number(null=True)
    score_breakdown = MapAttribute(null=True, attr_name="scoreBreakdown")
    scored_at = Timestamp(null=True, attr_name="scoredAt")
    score_rules_version = Number(null=True, attr_name="scoreRulesVersion")
    created_at = Timestamp(null=True, default_for_new=utcnow, attr_name="createdAt")
    updated_at = Timestamp(null=True, default_for_new=utcnow, attr_name="updatedAt")
    #: Optimistic lock: every writer (the app and the scorer) bumps it.
    version = VersionAttribute()


class Contact(WorkspaceScoped):
    Meta = table_meta("CONTACTS_TABLE")

    workspace_id = UnicodeAttribute(hash_key=True, attr_name="workspaceId")
    id = UnicodeAttribute(range_key=True)
    first_name = UnicodeAttribute(null=True, attr_name="firstName")
    last_name = UnicodeAttribute(null=True, attr_name="lastName")
    email = UnicodeAttribute()
    phone = UnicodeAttribute(null=True)
    title = UnicodeAttribute(null=True)
    company = UnicodeAttribute(null=True)
    last_contacted_at = Timestamp(null=True, attr_name="lastContactedAt")
    email_opt_out = BooleanAttribute(default=False, attr_name="emailOptOut")


class KnowledgeItem(WorkspaceScoped):
    Meta = table_meta("KNOWLEDGE_TABLE")

    workspace_id = UnicodeAttribute(hash_key=True, attr_name="workspaceId")
    id = UnicodeAttribute(range_key=True)
    title = UnicodeAttribute()
    type = UnicodeAttribute(default="document")
    status = UnicodeAttribute(default="processing")
    content = UnicodeAttribute(null=True)
    mime_type = UnicodeAttribute(null=True, attr_name="mimeType")
    file_name = UnicodeAttribute(null=True, attr_name="fileName")
    source_url = UnicodeAttribute(null=True, attr_name="sourceUrl")
    processing_error = UnicodeAttribute(null=True, attr_name="processingError")
    chunk_count = Number(null=True, attr_name="chunkCount")
    indexed_at = Timestamp(null=True, attr_name="indexedAt")
    content_hash = UnicodeAttribute(null=True, attr_name="contentHash")
    embedding_model = UnicodeAttribute(null=True, attr_name="embeddingModel")
    created_at = Timestamp(null=True, default_for_new=utcnow, attr_name="createdAt")
    updated_at = Timestamp(null=True, default_for_new=utcnow, attr_name="updatedAt")
