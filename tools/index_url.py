"""Print the package index address for Poetry, derived from the installer's own configuration.

A bake installs its shipped poetry.lock from Poetry's default source. Users whose machines cannot read it pass
their own index as `make install PYPI_MIRROR=...`; the template's tests prove that path with pip's configured (or
default) simple index, read at run time so that no registry host is written into any file.
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
