"""Finish the generated project: prune files the answers do not need, run the pin guard, print next steps.

Runs with cookiecutter's own interpreter, so it uses the standard library only; the pin
guard it runs is the generated project's own stdlib-only checker (one implementation,
also behind `make check-pins`, CI and pre-commit).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

# Paths removed for a given (answer, value); everything else is always generated.
PRUNE = {
    ("ci", "none"): [".github"],
}


def prune(root: Path, ctx: dict) -> list[str]:
    removed = []
    for (field, value), paths in PRUNE.items():
        if str(ctx.get(field)) != value:
            continue
        for rel in paths:
            target = root / rel
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            removed.append(rel)
    return removed


def main() -> int:
    ctx = json.loads(r"""{{ cookiecutter | tojson }}""")
    root = Path.cwd()
    prune(root, ctx)
    checker = root / "src" / ctx["package_name"] / "pins.py"
    result = subprocess.run([sys.executable, str(checker), "--root", str(root)], check=False)
    if result.returncode != 0:
        print(
            "ERROR: the generated project failed its own pin check (see above); please report this template bug",
            file=sys.stderr,
        )
        return 1
    print(
        f"\nCreated {ctx['project_slug']} (python {ctx['python_version']}, dask {ctx['dask_version']}).\n"
        "Next steps:\n"
        f"  cd {ctx['project_slug']}\n"
        "  make install     # Poetry env with the pinned versions\n"
        "  make run         # the sample pipeline on a local Dask cluster\n"
        "  make test        # the project's own tests\n"
        "  make help        # everything else, including make deploy\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
