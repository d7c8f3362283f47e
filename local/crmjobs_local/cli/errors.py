"""The CLI's own error."""


class CliError(Exception):
    """A problem the user can fix (no dev server, bad arguments); printed without a trace."""


#: The command's exit codes (README: "Exit codes").
EXIT_OK = 0
#: A run the command waited for or ran ended FAILED or CANCELED.
EXIT_RUN_FAILED = 1
#: Bad arguments, no dev server, invalid input, an AWS error: nothing or not all was done.
EXIT_ERROR = 2
#: `--wait` gave up: the run had not finished within `--timeout` seconds (it goes on).
EXIT_TIMED_OUT = 3
