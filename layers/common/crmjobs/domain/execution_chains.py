"""Names of a bulk run's executions.

One attempt of a bulk run goes on in a chain of state machine executions: each one lists
a bounded number of pages, then starts the next with the cursor and the running totals,
so no execution's history nears its 25,000-event limit. The first execution is named
`<run>-<attempt>` (the name the run ledger records for the attempt), the next ones
`<run>-<attempt>-<n>` from n = 2. Run ids have no hyphen, so a name says its run, attempt
and place in the chain; names are deterministic, so starting a successor twice (a retried
step) finds it already there instead of starting a second one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"^(?P<run>[^-]+)-(?P<attempt>[1-9][0-9]*)(?:-(?P<segment>[2-9]|[1-9][0-9]+))?$")


@dataclass(frozen=True)
class ChainedExecution:
    """One execution of an attempt's chain (segment 1 is the first)."""

    run_id: str
    attempt: int
    segment: int = 1

    @property
    def chain(self) -> str:
        """The chain's name: its first execution's, which the run ledger records."""
        return f"{self.run_id}-{self.attempt}"

    @property
    def name(self) -> str:
        return self.chain if self.segment == 1 else f"{self.chain}-{self.segment}"

    def successor(self) -> ChainedExecution:
        return ChainedExecution(self.run_id, self.attempt, self.segment + 1)

    @classmethod
    def parse(cls, name: str) -> ChainedExecution:
        match = _NAME.match(name)
        if match is None:
            raise ValueError(f"{name!r} is not the name of a bulk run's execution")
        return cls(match["run"], int(match["attempt"]), int(match["segment"] or 1))
