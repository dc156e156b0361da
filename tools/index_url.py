"""Print the package index address for Poetry, derived from the installer's own configuration.

Poetry on some machines cannot read per-version metadata from its built-in default source;
declaring pip's configured (or default) simple index as the primary source fixes that. The
address is read at run time so no registry host is written into any file.
"""

import os
import subprocess
import sys


def index_url() -> str:
    url = os.environ.get("PIP_INDEX_URL", "").strip()
    if not url:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
            capture_output=True,
            text=True,
            check=False,
        )
        url = out.stdout.strip() if out.returncode == 0 else ""
    if not url:
        from pip._internal.models.index import PyPI

        url = PyPI.simple_url
    return url


if __name__ == "__main__":
    print(index_url())
