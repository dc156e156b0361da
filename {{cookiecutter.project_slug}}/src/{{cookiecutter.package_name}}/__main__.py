"""``python -m <package>``: the same command line as the installed script."""

import sys

from .runtime.cli import main

sys.exit(main())
