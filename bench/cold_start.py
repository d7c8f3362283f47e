"""What each function's cold start pays to import its handler, as Lambda would import it.

For every function of template.yaml, ``import app`` runs in fresh interpreters with the
function's folder and the layer's folder first on ``sys.path``, in the environment Lambda
gives it: the template's variables (resources replaced by placeholder names, which is all
an import may read) plus Lambda's own (``LAMBDA_TASK_ROOT``, ``AWS_LAMBDA_FUNCTION_NAME``,
``AWS_LAMBDA_RUNTIME_API``), so Powertools and crmjobs behave as deployed (Powertools'
Tracer enables itself in Lambda; crmjobs pauses garbage collection during the import).

Each measured run is two interpreters, one after the other: a plain one, whose wall clock
around ``import app`` is the figure (``-X importtime`` prints a line per module, which adds
0-7 % here), and one under ``python -X importtime`` for the breakdown by package.

Bytecode: by default every module is imported from its bytecode (the layer's and the
functions' modules are compiled first, whatever PYTHONDONTWRITEBYTECODE says, so checkouts
compare alike). With ``--no-bytecode`` every module of the layer's packages and of the
function is compiled from its source in every run (the standard library keeps its
bytecode, as Lambda's runtime has it): that is what a layer built by ``sam build`` costs,
which ships no ``.pyc`` files, on a read-only ``/opt`` where none can be written.

Printed per function: the median import time with the range and the CPU time; the five
most expensive packages (what their outermost imports cost, median over the runs; a
package shared by several is charged to the first to import it); and which of the packages
a cold start should never pay for unless the function uses them were imported (the X-Ray
SDK, opensearch-py, numpy, the local runtime and CLI, moto).

This interpreter (the project venv's) is used, not Lambda's python3.12: figures compare
functions and commits on one machine; they are not Lambda's init durations.

Run: python bench/cold_start.py [--runs 5] [--root DIR ...] [--function score_lead ...]
[--set NAME=VALUE ...] [--no-bytecode] (--root: checkouts to compare, e.g. an older commit
from `git archive`, their runs interleaved; --set: a variable for every function, such as
XRAY_SDK_TRACING=true).
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import json
import os
import py_compile
import re
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crmjobs_local.project import find_template
from crmjobs_local.template import ResolutionContext, Template, UnresolvedReference, resolve

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
STACK_NAME = "crmjobs-bench"
BUDGET_MS = 350
TOP_PACKAGES = 5
#: Packages whose import a function should pay only if it uses them.
WATCHED = ("aws_xray_sdk", "opensearchpy", "numpy", "crmjobs_local", "moto", "rich")
#: The import is timed from this line of stderr on, so the interpreter's own start-up
#: imports are left out.
MARKER = "crmjobs-cold-start-import-begins"
_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)$")
OWN_PACKAGES = ("app", "crmjobs")

CHILD = f"""
import sys, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
print({MARKER!r}, file=sys.stderr, flush=True)
started, started_cpu = time.perf_counter(), time.process_time()
import app
print(time.perf_counter() - started, time.process_time() - started_cpu)
"""
#: Prints the source files of the standard library modules `import app` loaded.
STDLIB_FILES = """
import json, sys, sysconfig
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import app
stdlib = sysconfig.get_paths()["stdlib"] + "/"
print(json.dumps(sorted(
    module.__file__ for module in list(sys.modules.values())
    if (getattr(module, "__file__", None) or "").endswith(".py")
    and module.__file__.startswith(stdlib) and "site-packages" not in module.__file__
)))
"""


class _Placeholders(ResolutionContext):
    """Resolves any resource reference to a plausible physical name: an import may read a
    table's or queue's name, never use it."""

    resource_types: dict[str, str]

    def ref(self, name: str) -> Any:
        try:
            return super().ref(name)
        except UnresolvedReference:
            if self.resource_types.get(name) == "AWS::SQS::Queue":
                return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{STACK_NAME}-{name}"
            return f"{STACK_NAME}-{name}"

    def get_att(self, logical_id: str, attribute: str) -> Any:
        try:
            return super().get_att(logical_id, attribute)
        except UnresolvedReference:
            if attribute == "Arn":
                return f"arn:aws:bench:{REGION}:{ACCOUNT_ID}:{STACK_NAME}-{logical_id}"
            return f"{logical_id.lower()}-{attribute.lower()}.{REGION}.example"


@dataclass(frozen=True)
class FunctionUnderTest:
    logical_id: str
    folder: Path
    environment: dict[str, str]


def functions_of(template_path: Path) -> list[FunctionUnderTest]:
    """Every function of the template with its environment as deployed (placeholders)."""
    template = Template.load(template_path)
    base = template.context(region=REGION, account_id=ACCOUNT_ID, stack_name=STACK_NAME)
    context = _Placeholders(**{name: getattr(base, name) for name in _CONTEXT_FIELDS})
    context.resource_types = {
        logical_id: resource.get("Type", "") for logical_id, resource in template.resources.items()
    }
    found = []
    for logical_id, function in template.functions().items():
        environment = {}
        for name, value in function.environment.items():
            resolved = resolve(value, context)
            if isinstance(resolved, str | int | float | bool):
                environment[name] = str(resolved)
        found.append(FunctionUnderTest(logical_id, function.handler_file.parent, environment))
    return sorted(found, key=lambda function: function.folder.name)


_CONTEXT_FIELDS = (
    "region",
    "account_id",
    "stack_name",
    "parameters",
    "condition_definitions",
    "mappings",
)


def lambda_environment(
    function: FunctionUnderTest, overrides: dict[str, str] | None = None
) -> dict[str, str]:
    """The process environment of the function in Lambda (none of this shell's AWS or
    Powertools settings, such as a test run's POWERTOOLS_TRACE_DISABLED)."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "POWERTOOLS_", "CRMJOBS_", "_X_AMZN"))
        and name not in ("LAMBDA_TASK_ROOT", "PYTHONPATH")
    }
    return {
        **kept,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_NAME": f"{STACK_NAME}-{function.logical_id}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
        "LAMBDA_TASK_ROOT": str(function.folder),
        **function.environment,
        **(overrides or {}),
    }


@dataclass(frozen=True)
class ImportRun:
    seconds: float
    cpu_seconds: float
    """The process's CPU time: what the import costs without waiting for a busy machine."""
    ms_by_package: dict[str, float]
    """What each top-level package cost ``import app``: the cumulative time of its
    outermost imports (so it includes what it was first to import, as X-Ray's SDK does
    asyncio); the project's own package and ``app`` are left out (they hold everything)."""
    modules: frozenset[str]


@dataclass
class _Node:
    module: str
    depth: int
    cumulative_us: int
    children: list[_Node]


def import_tree(lines: list[str]) -> list[_Node]:
    """The ``-X importtime`` lines (printed children first, indented by depth) as trees."""
    pending: list[_Node] = []
    for line in lines:
        match = _IMPORTTIME.match(line)
        if not match:
            continue
        _, cumulative, indent, module = match.groups()
        depth = len(indent) // 2
        node = _Node(module, depth, int(cumulative), [])
        while pending and pending[-1].depth > depth:
            node.children.insert(0, pending.pop())
        pending.append(node)
    return pending


def cost_by_package(roots: list[_Node]) -> dict[str, float]:
    costs: dict[str, float] = defaultdict(float)

    def visit(node: _Node, enclosing_package: str | None) -> None:
        package = node.module.split(".")[0]
        if package != enclosing_package and package not in OWN_PACKAGES:
            costs[package] += node.cumulative_us / 1000
        for child in node.children:
            visit(child, package)

    for root in roots:
        visit(root, None)
    return dict(costs)


def _all_modules(roots: list[_Node]) -> frozenset[str]:
    found: set[str] = set()
    pending = list(roots)
    while pending:
        node = pending.pop()
        found.add(node.module)
        pending.extend(node.children)
    return frozenset(found)


def _run_child(
    code: str,
    function: FunctionUnderTest,
    layer: Path,
    overrides: dict[str, str] | None,
    *,
    flags: tuple[str, ...] = (),
    pycache_prefix: Path | None = None,
) -> subprocess.CompletedProcess:
    environment = lambda_environment(function, overrides)
    if pycache_prefix is not None:
        environment.update(PYTHONDONTWRITEBYTECODE="1", PYTHONPYCACHEPREFIX=str(pycache_prefix))
    result = subprocess.run(
        [sys.executable, *flags, "-c", code, str(function.folder), str(layer)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{function.folder.name}: import app failed:\n{result.stderr[-3000:]}")
    return result


def import_once(
    function: FunctionUnderTest,
    layer: Path,
    overrides: dict[str, str] | None = None,
    pycache_prefix: Path | None = None,
) -> ImportRun:
    """One plain interpreter for the time, then one under -X importtime for the packages."""
    timed = _run_child(CHILD, function, layer, overrides, pycache_prefix=pycache_prefix)
    wall, cpu = timed.stdout.strip().splitlines()[-1].split()
    traced = _run_child(
        CHILD, function, layer, overrides, flags=("-X", "importtime"), pycache_prefix=pycache_prefix
    )
    lines = traced.stderr.splitlines()
    roots = import_tree(lines[lines.index(MARKER) + 1 :])
    return ImportRun(
        seconds=float(wall),
        cpu_seconds=float(cpu),
        ms_by_package=cost_by_package(roots),
        modules=_all_modules(roots),
    )


def compile_bytecode(root: Path) -> None:
    """Writes the bytecode of the checkout's layer and functions, as the default runs use
    it (an interpreter under PYTHONDONTWRITEBYTECODE, as some shells set, writes none, and
    a stale file would be compiled again in every run)."""
    for folder in (_layer(root), root / "functions"):
        compileall.compile_dir(folder, quiet=1)


def stdlib_bytecode(
    prefix: Path, function: FunctionUnderTest, layer: Path, overrides: dict[str, str]
) -> None:
    """Writes into the pycache `prefix` the bytecode of the standard library modules the
    function imports, so that a run with that prefix (and PYTHONDONTWRITEBYTECODE) compiles
    every other module from its source: the layer without .pyc files, on Lambda's runtime
    whose standard library has them."""
    files = json.loads(_run_child(STDLIB_FILES, function, layer, overrides).stdout)
    own_prefix = sys.pycache_prefix
    sys.pycache_prefix = str(prefix)
    try:
        for source in files:
            cached = importlib.util.cache_from_source(source)
            if not os.path.exists(cached):
                py_compile.compile(source, cfile=cached, doraise=True)
    finally:
        sys.pycache_prefix = own_prefix


@dataclass(frozen=True)
class Measured:
    function: FunctionUnderTest
    runs: list[ImportRun]

    @property
    def median_ms(self) -> float:
        return statistics.median(run.seconds for run in self.runs) * 1000

    @property
    def median_cpu_ms(self) -> float:
        return statistics.median(run.cpu_seconds for run in self.runs) * 1000

    def range_ms(self) -> tuple[float, float]:
        seconds = [run.seconds for run in self.runs]
        return min(seconds) * 1000, max(seconds) * 1000

    def top_packages(self) -> list[tuple[str, float]]:
        packages = {name for run in self.runs for name in run.ms_by_package}
        medians = {
            name: statistics.median(run.ms_by_package.get(name, 0.0) for run in self.runs)
            for name in packages
        }
        return sorted(medians.items(), key=lambda pair: -pair[1])[:TOP_PACKAGES]

    def watched_imports(self) -> list[str]:
        loaded = {module.split(".")[0] for module in self.runs[0].modules}
        return [name for name in WATCHED if name in loaded]


def measure(
    checkouts: dict[Path, FunctionUnderTest],
    runs: int,
    overrides: dict[str, str],
    pycache_prefix: Path | None = None,
) -> dict[Path, Measured]:
    """One function in each checkout, its runs interleaved so load changes hit all alike
    (`pycache_prefix`: the --no-bytecode runs' standard library bytecode)."""
    for root, function in checkouts.items():
        if pycache_prefix is not None:
            stdlib_bytecode(pycache_prefix, function, _layer(root), overrides)
        import_once(function, _layer(root), overrides, pycache_prefix)  # a warm-up, not counted
    results: dict[Path, list[ImportRun]] = {root: [] for root in checkouts}
    for _ in range(runs):
        for root, function in checkouts.items():
            results[root].append(import_once(function, _layer(root), overrides, pycache_prefix))
    return {root: Measured(checkouts[root], results[root]) for root in checkouts}


def _layer(root: Path) -> Path:
    return root / "layers" / "common"


def _print_results(
    results: dict[Path, Measured],
    name: str,
    roots: list[Path],
    measured: dict[Path, list[Measured]],
) -> None:
    for root, result in results.items():
        measured[root].append(result)
        low, high = result.range_ms()
        top = ", ".join(f"{package} {ms:.0f}" for package, ms in result.top_packages())
        label = name if len(roots) == 1 else f"{name} [{roots.index(root) + 1}]"
        timing = (
            f"{result.median_ms:>6.0f}ms{low:>7.0f}-{high:<4.0f}ms{result.median_cpu_ms:>6.0f}ms"
        )
        print(f"{label:<28}{timing}  {top}", flush=True)
        if result.watched_imports():
            print(f"{'':<28}imports {', '.join(result.watched_imports())}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured interpreters per function")
    parser.add_argument(
        "--root",
        type=Path,
        action="append",
        help="a checkout of the project (repeatable, e.g. an older commit from `git archive`,"
        " to compare; default: this one)",
    )
    parser.add_argument("--function", action="append", help="a function folder (repeatable)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for every function (e.g. XRAY_SDK_TRACING=true)",
    )
    parser.add_argument(
        "--no-bytecode",
        action="store_true",
        help="compile the layer's packages and the function from source in every run, as a"
        " layer built by `sam build` (no .pyc files) is imported",
    )
    args = parser.parse_args()
    overrides = dict(setting.split("=", 1) for setting in args.set)
    roots = [root.resolve() for root in args.root or [find_template().parent]]
    by_root = {
        root: {function.folder.name: function for function in functions_of(root / "template.yaml")}
        for root in roots
    }
    names = sorted(set().union(*by_root.values()))
    if args.function:
        names = [name for name in names if name in args.function]
    for root in roots:
        compile_bytecode(root)
    bytecode = "every module compiled from source" if args.no_bytecode else "from bytecode"
    print(
        f"import app: median of {args.runs} fresh interpreters per function ({bytecode}), "
        f"{sys.implementation.name} {sys.version.split()[0]}"
    )
    print(
        f"{'function':<28}{'median':>8}{'range':>14}{'cpu':>8}"
        f"  top {TOP_PACKAGES} imports (ms, inclusive)"
    )
    measured: dict[Path, list[Measured]] = {root: [] for root in roots}
    with tempfile.TemporaryDirectory(prefix="cold-start-pycache-") as prefix:
        pycache_prefix = Path(prefix) if args.no_bytecode else None
        for name in names:
            checkouts = {root: by_root[root][name] for root in roots if name in by_root[root]}
            results = measure(checkouts, args.runs, overrides, pycache_prefix)
            _print_results(results, name, roots, measured)
    print()
    for number, root in enumerate(roots, 1):
        medians = [result.median_ms for result in measured[root]]
        cpu = [result.median_cpu_ms for result in measured[root]]
        over = [r.function.folder.name for r in measured[root] if r.median_ms > BUDGET_MS]
        print(
            f"[{number}] {root}: {len(medians)} functions, {min(medians):.0f}-{max(medians):.0f}"
            f" ms (median {statistics.median(medians):.0f}), cpu {min(cpu):.0f}-{max(cpu):.0f}"
            f" ms; over {BUDGET_MS} ms: {', '.join(over) or 'none'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
