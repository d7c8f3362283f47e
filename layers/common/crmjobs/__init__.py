"""crmjobs: a multi-tenant CRM's background jobs on AWS serverless.

Cold start: while a function imports its handler, Python's cyclic garbage collector runs
100-odd times and frees next to nothing (modules, classes and validation schemas live as
long as the process), each run walking the growing heap: 20-50 ms of a function's import
(bench/cold_start.py). So in Lambda (where its runtime API is set) collection is paused
from this package's import until the handler is made (`handler_made`, which
crmjobs.observability calls when it decorates a handler, the last thing a function's module
does); then what the import made is frozen (`gc.freeze`: no later collection walks it
again) and collection resumes, before any invocation.
"""

import gc
import os

_collection_paused = bool(os.environ.get("AWS_LAMBDA_RUNTIME_API")) and gc.isenabled()
if _collection_paused:
    gc.disable()


def handler_made() -> None:
    """The function's handler is made: freeze what its import made and resume collection."""
    global _collection_paused
    if _collection_paused:
        _collection_paused = False
        gc.freeze()
        gc.enable()
