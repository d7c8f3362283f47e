"""`crmjobs dev --parameter NAME=VALUE`: template parameters for the local stack."""

import pytest

from crmjobs_local.cli import web
from crmjobs_local.cli.parsing import build_parser


def test_parameters_and_jwt_become_the_local_stack_parameters():
    args = build_parser().parse_args(
        ["dev", "--parameter", "AgentModelBackend=openai", "--parameter", "AgentOpenAIModel=a=b",
         "--jwt"]
    )
    parameters = web.runtime_parameters(args)
    assert parameters["AgentModelBackend"] == "openai"
    assert parameters["AgentOpenAIModel"] == "a=b"
    assert parameters["JwtIssuer"] == web.LOCAL_JWT_ISSUER


def test_no_parameters_leave_the_template_defaults():
    assert web.runtime_parameters(build_parser().parse_args(["dev"])) is None


def test_a_parameter_without_a_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["dev", "--parameter", "AgentModelBackend"])
    assert exited.value.code == 2
    assert "expected NAME=VALUE" in capsys.readouterr().err
