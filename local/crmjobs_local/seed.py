"""The data `crmjobs dev` starts with (`crmjobs seed` writes it into a running dev server,
`crmjobs invoke` into its fresh runtime): the demo's two workspaces with their prospects
and documents. The README's commands and the sample events in events/ name these records
(workspace ws-demo, prospect p-0001, document doc-pricing), so they run as written.

Seeding is idempotent: a data dir whose demo workspace exists is left as it is.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from crmjobs_local.demo import (
    ACME_DOCUMENTS,
    DEMO_WORKSPACE,
    GLOBEX_DOCUMENTS,
    OTHER_WORKSPACE,
    seed_workspace,
)

#: Prospects of the demo workspace (the demo's default too); the other one gets a dozen.
DEFAULT_PROSPECTS = 300
OTHER_PROSPECTS = 12
#: The demo's seed: the same prospects every time.
RANDOM_SEED = 20261129


@dataclass
class Seeded:
    created: bool
    """False when the demo workspace was there already (nothing written)."""
    workspaces: dict[str, int] = field(default_factory=dict)
    """Workspace id -> prospects written."""
    indexing_runs: list[str] = field(default_factory=list)
    """The bulk-index-documents runs that index the seeded documents."""


def seed(prospects: int = DEFAULT_PROSPECTS, *, index_documents: bool = True) -> Seeded:
    """Write the demo data into the stack the environment points at; with
    `index_documents`, trigger a bulk-index-documents run per workspace (a running stack
    indexes them, so `crmjobs search` finds them)."""
    from crmjobs import client
    from crmjobs.models import Workspace

    try:
        Workspace.get(DEMO_WORKSPACE)
    except Workspace.DoesNotExist:
        pass
    else:
        return Seeded(created=False)
    rng = random.Random(RANDOM_SEED)
    seed_workspace(DEMO_WORKSPACE, "Acme Robotics", "professional", prospects, ACME_DOCUMENTS, rng)
    seed_workspace(
        OTHER_WORKSPACE, "Globex Logistics", "starter", OTHER_PROSPECTS, GLOBEX_DOCUMENTS, rng
    )
    seeded = Seeded(
        created=True, workspaces={DEMO_WORKSPACE: prospects, OTHER_WORKSPACE: OTHER_PROSPECTS}
    )
    if index_documents:
        for workspace_id in seeded.workspaces:
            run = client.trigger(
                "bulk-index-documents",
                {"workspaceId": workspace_id},
                idempotency_key="seed",
                tags=["seed"],
            )
            seeded.indexing_runs.append(run.id)
    return seeded


def describe(seeded: Seeded) -> str:
    if not seeded.created:
        return f"demo data already there ({DEMO_WORKSPACE})"
    workspaces = ", ".join(f"{ws} ({count} prospects)" for ws, count in seeded.workspaces.items())
    indexing = " (documents indexing)" if seeded.indexing_runs else ""
    return f"seeded {workspaces}{indexing}"
