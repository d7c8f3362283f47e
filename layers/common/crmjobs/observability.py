"""Powertools singletons: every module logs, traces and counts through these."""

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
#: The namespace falls back to the template's value when imported outside a function.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "CrmJobs"))
