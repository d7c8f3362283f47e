"""crmjobs: a multi-tenant CRM's background jobs on AWS serverless."""

# Powertools' batch utility is imported before anything imports pydantic: imported after
# it, the utility loads every Powertools parser model for its type hints (50-60 ms of an
# SQS-fed function's cold start, bench/cold_start.py), and nothing here uses them.
import aws_lambda_powertools.utilities.batch  # noqa: F401
