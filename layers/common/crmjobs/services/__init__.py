"""Service functions: what one task (or one state-machine step) does, given its payload."""
