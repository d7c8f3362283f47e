"""Names of a bulk run's chain of executions."""

from __future__ import annotations

import pytest

from crmjobs.domain.execution_chains import ChainedExecution
from crmjobs.runtime import execution_name

RUN = "run_0b5c6f0e8b4a4c599a553f6c3c1f2d10"


def test_the_first_execution_is_named_as_the_runtime_names_the_attempt():
    first = ChainedExecution(RUN, 2)
    assert first.name == first.chain == execution_name(RUN, 2) == f"{RUN}-2"


def test_successors_carry_their_place_in_the_chain():
    second = ChainedExecution(RUN, 1).successor()
    third = second.successor()
    assert (second.name, third.name) == (f"{RUN}-1-2", f"{RUN}-1-3")
    assert second.chain == third.chain == f"{RUN}-1"
    assert ChainedExecution.parse(third.name) == third
    assert ChainedExecution.parse(f"{RUN}-1-12") == ChainedExecution(RUN, 1, 12)
    assert ChainedExecution.parse(f"{RUN}-3") == ChainedExecution(RUN, 3, 1)


@pytest.mark.parametrize(
    "name", [RUN, f"{RUN}-0", f"{RUN}-1-1", f"{RUN}-1-0", f"{RUN}-1-2-3", f"{RUN}-x", ""]
)
def test_other_names_are_refused(name):
    with pytest.raises(ValueError, match="is not the name of a bulk run's execution"):
        ChainedExecution.parse(name)
