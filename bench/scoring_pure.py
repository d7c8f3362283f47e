"""Throughput of the pure scoring function, without any storage around it.

Run: python bench/scoring_pure.py
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

from crmjobs.domain.scoring import STAGE_POINTS, ProspectFacts, score_prospect

_EMAILS = (None, "", "ann@acme.com", "bob@gmail.com", "cy@yahoo.co.uk", "dee@corp.example.org")
_TITLES = (None, "", "CEO", "Software Engineer", "VP of Sales", "Head of Growth", "MVP Lead")


def synthetic_prospects(count: int, now: datetime, seed: int = 7) -> list[ProspectFacts]:
    """Prospects that exercise every factor, in a reproducible mix."""
    rng = random.Random(seed)
    stages = list(STAGE_POINTS)
    return [
        ProspectFacts(
            email=rng.choice(_EMAILS),
            phone=rng.choice((None, "+1 555 0100")),
            company=rng.choice((None, "  ", "Acme")),
            title=rng.choice(_TITLES),
            stage=rng.choice(stages),
            estimated_value=rng.choice((None, rng.randint(0, 2_000_000))),
            last_contacted_at=rng.choice((None, now - timedelta(hours=rng.randint(0, 24 * 60)))),
        )
        for _ in range(count)
    ]


def measure_pure_scoring(n: int = 50_000) -> float:
    """Prospects scored per second by score_prospect alone."""
    now = datetime.now(UTC)
    prospects = synthetic_prospects(n, now)
    started = time.perf_counter()
    for prospect in prospects:
        score_prospect(prospect, now)
    return n / (time.perf_counter() - started)


if __name__ == "__main__":
    print(f"score_prospect: {measure_pure_scoring():,.0f} prospects/s")
