"""The local tools find the project's template and its dev server from any folder of it."""

from __future__ import annotations

import pytest

from crmjobs_local.project import (
    DATA_DIR_ENV,
    TEMPLATE_ENV,
    ProjectNotFound,
    default_data_dir,
    dev_server_endpoint_file,
    find_template,
)

SAM_TEMPLATE = "Transform: AWS::Serverless-2016-10-31\nResources: {}\n"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with a SAM template and a nested folder; no env overrides."""
    monkeypatch.delenv(TEMPLATE_ENV, raising=False)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    root = tmp_path / "app"
    (root / "functions" / "score_lead").mkdir(parents=True)
    (root / "template.yaml").write_text(SAM_TEMPLATE)
    return root


def test_the_template_is_found_from_a_nested_folder(project):
    assert find_template(project / "functions" / "score_lead") == project / "template.yaml"


def test_a_template_yaml_that_is_not_sam_is_passed_over(project):
    nested = project / "functions" / "score_lead"
    (nested / "template.yaml").write_text("AWSTemplateFormatVersion: '2010-09-09'\n")
    assert find_template(nested) == project / "template.yaml"


def test_the_environment_names_the_template(project, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text(SAM_TEMPLATE)
    monkeypatch.setenv(TEMPLATE_ENV, str(elsewhere))
    assert find_template(project) == elsewhere
    monkeypatch.setenv(TEMPLATE_ENV, str(tmp_path / "missing.yaml"))
    with pytest.raises(ProjectNotFound, match="missing.yaml: no such file"):
        find_template(project)


def test_no_template_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv(TEMPLATE_ENV, raising=False)
    with pytest.raises(ProjectNotFound, match=f"run from the project or set {TEMPLATE_ENV}"):
        find_template(tmp_path)


def test_local_state_lives_beside_the_template_unless_configured(project, tmp_path, monkeypatch):
    assert default_data_dir(project / "template.yaml") == project / ".crmjobs"
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "state"))
    assert default_data_dir(project / "template.yaml") == tmp_path / "state"


def test_the_dev_server_is_found_from_any_folder_of_the_project(project, tmp_path, monkeypatch):
    nested = project / "functions" / "score_lead"
    # Not started yet: where `crmjobs dev` will write it, beside the template.
    assert dev_server_endpoint_file(nested) == project / ".crmjobs" / "endpoint.json"
    # A dev server started in another folder of the project is found upward.
    started = project / "functions" / ".crmjobs" / "endpoint.json"
    started.parent.mkdir()
    started.write_text("{}")
    assert dev_server_endpoint_file(nested) == started
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "state"))
    assert dev_server_endpoint_file(nested) == tmp_path / "state" / "endpoint.json"


def test_outside_any_project_there_is_no_dev_server_to_find(tmp_path, monkeypatch):
    monkeypatch.delenv(TEMPLATE_ENV, raising=False)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    with pytest.raises(ProjectNotFound):
        dev_server_endpoint_file(tmp_path)
