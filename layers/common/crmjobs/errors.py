"""The project's own errors: stores and adapters raise these instead of AWS error codes, and
the runtime decides by them how a failed run is treated."""


class PermanentError(Exception):
    """The run cannot succeed by retrying: it fails at once and is never retried."""


class InvalidInput(PermanentError):
    """The payload or the entity it names is not acceptable (bad input)."""


class MalformedRecord(InvalidInput):
    """A stored record the task reads has a value that cannot be read (or lacks a required
    one); the message names the record and the field."""


class NotFound(PermanentError):
    """The entity does not exist in the run's workspace (or exists in another one)."""


class RunCanceled(PermanentError):
    """Someone asked to cancel the run while it executed: it ends CANCELED, not FAILED."""


class Conflict(Exception):
    """A conditional write did not hold: the record is not as it was read (edited, deleted or
    in another state meanwhile). Whoever wrote can re-read and decide."""
