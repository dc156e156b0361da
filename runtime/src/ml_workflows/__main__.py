"""``python -m ml_workflows``: the project's command line (the same as its console script)."""

import sys

from .cli import main

sys.exit(main())
