"""Powertools singletons and the one way run metrics (counts, durations) are emitted.

Metrics are written per point with `single_metric` (the task as their dimension) rather
than through a shared Metrics object, because the local runtime runs many functions in one
process and a shared object's dimensions would mix.
"""

import os

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

logger = Logger()
tracer = Tracer()


def emit_metric(
    name: str, task: str, value: float = 1, unit: MetricUnit = MetricUnit.Count
) -> None:
    """Emit one metric point (CloudWatch EMF) with the task as its dimension, unless
    POWERTOOLS_METRICS_DISABLED (which `single_metric` alone does not honour)."""
    if is_metrics_disabled():
        return
    with single_metric(
        name=name,
        unit=unit,
        value=value,
        namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "CrmJobs"),
    ) as metric:
        metric.add_dimension(name="task", value=task)
