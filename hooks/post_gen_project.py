"""Finish the generated project: prune files the answers do not need, run the pin guard, print next steps.

Runs with cookiecutter's own interpreter, so it uses the standard library only; the pin
guard it runs is the generated project's own stdlib-only checker (one implementation,
also behind `make check-pins`, CI and pre-commit), loaded from its file into this process.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

# Paths removed for a given (answer, value); everything else is always generated. `{package}` is the
# package name. An option that is off leaves no code behind.
PRUNE = {
    ("ci", "none"): [".github"],
    ("code_source", "image"): ["src/{package}/runtime/git_checkout.py", "tests/runtime/test_git_checkout.py"],
    ("tracking", "none"): ["src/{package}/runtime/tracking.py", "tests/runtime/test_tracking.py"],
}


def prune(root: Path, ctx: dict) -> list[str]:
    removed = []
    for (field, value), paths in PRUNE.items():
        if str(ctx.get(field)) != value:
            continue
        for rel in paths:
            rel = rel.format(package=ctx["package_name"])
            target = root / rel
            if target.is_dir():
                import shutil  # here: most bakes remove no directory, and the import costs the hook ~6 ms

                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            removed.append(rel)
    return removed


ABBREVIATIONS = {"gh:": "https://github.com/", "gl:": "https://gitlab.com/", "bb:": "https://bitbucket.org/"}


def template_source(ctx: dict) -> tuple[str, str | None]:
    """(git URL or path of the template, commit it was baked from) for cruft."""
    template = str(ctx.get("_template", ""))
    for short, url in ABBREVIATIONS.items():
        if template.startswith(short):
            template = url + template[len(short) :]
            break
    if not template.startswith(("http://", "https://", "git@", "git+", "ssh://", "file://")):
        template = str(Path(ctx.get("_repo_dir") or template).resolve())
    repo_dir = ctx.get("_repo_dir") or template
    try:
        out = subprocess.run(["git", "-C", str(repo_dir), "rev-parse", "HEAD"], capture_output=True, text=True)
    except OSError:
        return template, None
    return template, out.stdout.strip() if out.returncode == 0 else None


def write_cruft_state(root: Path, ctx: dict) -> None:
    """Record the template and answers in cruft's format, so `make template-update` can apply later fixes.

    Under cruft (`cruft create`, or the bakes `cruft update` diffs) `_commit` is set and cruft
    writes this file itself; writing it here too would make every update conflict on it.
    """
    if ctx.get("_commit"):
        return
    template, commit = template_source(ctx)
    answers = {k: v for k, v in ctx.items() if not k.startswith("_") or k in ("_template", "_commit")}
    answers["_template"], answers["_commit"] = template, commit
    state = {
        "template": template,
        "commit": commit,
        "checkout": ctx.get("_checkout"),
        "context": {"cookiecutter": answers},
        "directory": None,
    }
    (root / ".cruft.json").write_text(json.dumps(state, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def run_pin_guard(root: Path, package: str) -> int:
    """Run the generated project's pin checker (``src/<package>/deploy/pins.py``) on ``root``; its exit status.

    The same file and ``main`` as `make check-pins`, run in this process rather than a second interpreter:
    a second start and its imports were about a third of the hook's time. No bytecode cache is written
    into the new project.
    """
    path = root / "src" / package / "deploy" / "pins.py"
    spec = importlib.util.spec_from_file_location(f"_{package}_pins", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up there
    sys.dont_write_bytecode = True
    try:
        spec.loader.exec_module(module)
        return module.main(["--root", str(root)])
    except Exception:  # a crash of the checker is reported as a failed pin check, with its traceback
        import traceback

        traceback.print_exc()
        return 1
    finally:
        sys.modules.pop(spec.name, None)


def main() -> int:
    ctx = json.loads(r"""{{ cookiecutter | tojson }}""")
    root = Path.cwd()
    prune(root, ctx)
    write_cruft_state(root, ctx)
    if run_pin_guard(root, ctx["package_name"]) != 0:
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
