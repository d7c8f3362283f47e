"""A function's settings, checked once per environment with errors that name the variable."""

from __future__ import annotations

import pytest

from crmjobs import config
from crmjobs.config import ConfigurationError, check_environment, function_environment
from crmjobs.errors import PermanentError

GOOD = {
    "RUNS_TABLE": "crmjobs-dev-runs",
    "IDEMPOTENCY_TABLE": "crmjobs-dev-idempotency",
    "CONCURRENCY_TABLE": "crmjobs-dev-concurrency",
    "WORKSPACES_TABLE": "crmjobs-dev-workspaces",
    "QUEUE_URL_PREFIX": "https://sqs.us-east-1.amazonaws.com/123456789012/crmjobs-dev-",
    "SCHEDULER_ROLE_ARN": "arn:aws:iam::123456789012:role/crmjobs-dev-SchedulerRole",
    "SCHEDULE_GROUP_NAME": "crmjobs-dev",
    "STATE_MACHINE_ARN_BULK_SCORE_LEADS": (
        "arn:aws:states:us-east-1:123456789012:stateMachine:crmjobs-dev-BulkScoreLeads"
    ),
    "RUN_RETENTION_DAYS": "30",
    "SCORING_TIMEZONE": "Europe/Paris",
    "VECTOR_BACKEND": "opensearch",
    "OPENSEARCH_ENDPOINT": "https://search-crmjobs.us-east-1.es.amazonaws.com",
    "EMBEDDINGS_BACKEND": "bedrock",
    "EMBEDDINGS_DIMENSION": "512",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Only the variables a test gives; nothing from the developer's shell or other tests."""
    for name in list(config._settings_variables()):
        monkeypatch.delenv(name, raising=False)


def _check(variables: dict[str, str], required=config.RUNTIME_VARIABLES) -> config.Settings:
    with function_environment(variables):
        return check_environment(required)


def test_a_complete_deployment_passes_with_its_values_typed():
    settings = _check(GOOD)
    assert settings.tables["RUNS_TABLE"] == "crmjobs-dev-runs"
    assert settings.run_retention_days == 30
    assert settings.state_machines == {
        "STATE_MACHINE_ARN_BULK_SCORE_LEADS": GOOD["STATE_MACHINE_ARN_BULK_SCORE_LEADS"]
    }


def test_a_missing_runtime_setting_is_named():
    without = {name: value for name, value in GOOD.items() if name != "QUEUE_URL_PREFIX"}
    with pytest.raises(
        ConfigurationError, match="environment variable QUEUE_URL_PREFIX is not set"
    ):
        _check(without)
    assert issubclass(ConfigurationError, PermanentError)  # the runtime never retries it


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RUN_RETENTION_DAYS", "thirty"),
        ("RUN_RETENTION_DAYS", "0"),
        ("SCORING_TIMEZONE", "Mars/Olympus"),
        ("QUEUE_URL_PREFIX", "sqs/crmjobs-dev-"),
        ("SCHEDULER_ROLE_ARN", "SchedulerRole"),
        ("STATE_MACHINE_ARN_BULK_SCORE_LEADS", "arn:aws:lambda:us-east-1:1:function:x"),
        ("PROSPECTS_TABLE", "no spaces allowed"),
        ("VECTOR_BACKEND", "elasticsearch"),
        ("AUTH_MODE", "basic"),
    ],
)
def test_a_bad_setting_is_named_with_its_value(name, value):
    with pytest.raises(ConfigurationError) as raised:
        _check({**GOOD, name: value})
    assert f"environment variable {name}" in str(raised.value)
    assert repr(value) in str(raised.value)


def test_a_backend_without_its_own_settings_is_a_deployment_error():
    without = {name: value for name, value in GOOD.items() if name != "OPENSEARCH_ENDPOINT"}
    with pytest.raises(ConfigurationError, match="OPENSEARCH_ENDPOINT is not set"):
        _check(without)
    with pytest.raises(ConfigurationError, match="LOCAL_DATA_DIR is not set"):
        _check({**without, "VECTOR_BACKEND": "local"})


def test_an_environment_is_validated_once(monkeypatch):
    calls = []
    validate = config.Settings.model_validate

    def counted(value):
        calls.append(value)
        return validate(value)

    monkeypatch.setattr(config.Settings, "model_validate", counted)
    variables = {**GOOD, "SCHEDULE_GROUP_NAME": "crmjobs-once"}
    for _ in range(3):
        _check(variables)
    for _ in range(2):
        with pytest.raises(ConfigurationError, match="AUTH_MODE"):
            _check({**variables, "AUTH_MODE": "basic"})
    assert len(calls) == 2
    # Variables the settings do not read (Lambda's trace id changes per invocation) do not
    # make an environment new.
    _check({**variables, "_X_AMZN_TRACE_ID": "Root=1-abc"})
    assert len(calls) == 2
