"""Errors that decide how the runtime treats a failed run."""


class PermanentError(Exception):
    """The run cannot succeed by retrying: it fails at once and is never retried."""


class InvalidInput(PermanentError):
    """The payload or the entity it names is not acceptable (bad input)."""


class NotFound(PermanentError):
    """The entity does not exist in the run's workspace (or exists in another one)."""
