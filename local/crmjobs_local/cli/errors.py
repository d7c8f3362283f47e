"""The CLI's own error."""


class CliError(Exception):
    """A problem the user can fix (no dev server, bad arguments); printed without a trace."""
