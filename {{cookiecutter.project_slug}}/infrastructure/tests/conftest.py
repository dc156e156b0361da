"""Make the Pulumi program (infrastructure/) and the test harness importable; no cloud, no Pulumi CLI needed."""

import sys
from pathlib import Path

INFRA_DIR = Path(__file__).resolve().parents[1]
for path in (INFRA_DIR, INFRA_DIR / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
