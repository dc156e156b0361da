"""``python -m <package>.deploy ...``: the deploy commands (see :mod:`.commands`)."""

import sys

from .commands import main

sys.exit(main())
