"""Pure business logic of the CRM jobs: no AWS, no I/O, stdlib only."""
