"""`python -m crmjobs_local.cli`, as the `crmjobs` script."""

import sys

from crmjobs_local.cli import main

sys.exit(main())
