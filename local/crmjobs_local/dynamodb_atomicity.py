"""DynamoDB's atomic writes for the moto that runs in this process.

DynamoDB applies each request to an item atomically: two UpdateItems that ADD to one number
both count, and of two conditional writes on one item only one can find the condition
true. moto's DynamoDB backend is plain Python with no lock, so requests from two threads can
interleave: both read the item, both write it, and one update is lost. This was measured in
the local runtime: two batch workers reserved the same send slots from the shared send
schedule and made 38 sends in one second at a rate of 20. So the local runtime runs moto's
DynamoDB requests one at a time, which is the atomicity DynamoDB gives.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.RLock()
_install_lock = threading.Lock()
_original_call_action: Any = None
_installs = 0


def install() -> None:
    """Serialize moto's DynamoDB requests (counted: each install needs its uninstall)."""
    global _original_call_action, _installs
    from moto.dynamodb.responses import DynamoHandler

    with _install_lock:
        _installs += 1
        if _installs > 1:
            return
        original = _original_call_action = DynamoHandler.__dict__["call_action"]

        def call_action(self: Any) -> Any:
            with _lock:
                return original(self)

        DynamoHandler.call_action = call_action


def uninstall() -> None:
    global _original_call_action, _installs
    from moto.dynamodb.responses import DynamoHandler

    with _install_lock:
        if _installs == 0:
            return
        _installs -= 1
        if _installs == 0:
            DynamoHandler.call_action = _original_call_action
            _original_call_action = None
