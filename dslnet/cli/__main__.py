import sys

from dslnet.cli import main

sys.exit(main())
