"""What a handler gets when it runs in-process: its module loaded by file path, a context.

Every function folder has an `app.py`, so importing them by module name would make the
second `app` shadow the first. `load_handler` imports each file under its own module name
instead; a folder's sibling modules are not put on sys.path (handlers stay thin and import
the shared `crmjobs` package).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Handler = Callable[[Any, Any], Any]

_load_lock = threading.Lock()


def module_name_for(handler_file: Path) -> str:
    """Unique per file: `functions/score_lead/app.py` -> `crmjobs_fn_score_lead_app_<hash>`."""
    handler_file = handler_file.resolve()
    digest = hashlib.sha1(str(handler_file).encode()).hexdigest()[:10]
    readable = re.sub(r"\W", "_", f"{handler_file.parent.name}_{handler_file.stem}")
    return f"crmjobs_fn_{readable}_{digest}"


def load_handler(handler_file: str | Path, handler_name: str = "handler") -> Handler:
    """Import `handler_file` once (like a warm Lambda container) and return its handler."""
    handler_file = Path(handler_file).resolve()
    module_name = module_name_for(handler_file)
    with _load_lock:
        module = sys.modules.get(module_name)
        if module is None:
            if not handler_file.is_file():
                raise FileNotFoundError(f"handler file {handler_file} does not exist")
            spec = importlib.util.spec_from_file_location(module_name, handler_file)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot import {handler_file}")
            module = importlib.util.module_from_spec(spec)
            # Registered before running so dataclasses and pickling can find the module.
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[module_name]
                raise
    handler = getattr(module, handler_name, None)
    if not callable(handler):
        raise AttributeError(f"{handler_file} has no callable {handler_name!r}")
    return handler


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: float
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    _deadline: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/[{self.function_version}]{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
