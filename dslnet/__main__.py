"""`python -m dslnet`: the `dslnet` command."""

import sys

from dslnet.cli import main

sys.exit(main())
