"""Finish the generated project: prune files the answers do not need, run the pin guard, print next steps.

Runs with cookiecutter's own interpreter, so it uses the standard library only; the pin
guard it runs is the stdlib-only checker of the runtime the project pins (one implementation, also behind
`make check-pins`, CI, pre-commit and the image build), read from the project's vendored runtime wheel.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

# Paths removed for a given (answer, value); everything else is always generated. `{package}` is the
# package name. An option that is off leaves no code behind.
PRUNE = {
    ("ci", "none"): [".github"],
    ("prefect_worker", "False"): ["infrastructure/infra/worker.py"],
}
YES, NO = ("true", "yes", "y", "1", "on"), ("false", "no", "n", "0", "off")
# The poetry.lock files the template's CI proved, one per set of answers that changes pyproject.toml's
# dependencies (tools/locks.py writes them; a test holds every other answer to not changing them).
LOCKS_DIR = ".locks"
LOCK_ANSWERS = ("dask_version", "python_version", "tracking")


def answer(value: object) -> str:
    """An answer as PRUNE spells it: a yes/no answer (a bool, or its text from --no-input) as True/False."""
    text = str(value).strip().lower()
    return "True" if text in YES else "False" if text in NO else str(value)


def prune(root: Path, ctx: dict) -> list[str]:
    removed = []
    for (field, value), paths in PRUNE.items():
        if answer(ctx.get(field)) != value:
            continue
        for rel in paths:
            rel = rel.format(package=ctx["package_name"])
            target = root / rel
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            removed.append(rel)
    return removed


def lock_name(ctx: dict) -> str:
    """The shipped lock of these answers: `.locks/<dask>-py<python>-<tracking>.lock`."""
    return "{}-py{}-{}.lock".format(*(str(ctx[key]) for key in LOCK_ANSWERS))


def install_lock(root: Path, ctx: dict) -> bool:
    """Put the lock the template's CI proved for these answers in place as poetry.lock; drop the others."""
    locks = root / LOCKS_DIR
    chosen = locks / lock_name(ctx)
    found = chosen.is_file()
    if found:
        chosen.replace(root / "poetry.lock")
    shutil.rmtree(locks, ignore_errors=True)
    return found


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


PINS_MODULE = "ml_workflows/deploy/pins.py"


def run_pin_guard(root: Path, package: str) -> int:
    """Run the pin checker of the project's runtime (``ml_workflows.deploy.pins`` in ``vendor/``) on ``root``.

    The same code and ``main`` as `make check-pins`, read from the wheel and run in this process rather than a
    second interpreter: a second start and its imports were about a third of the hook's time.
    """
    wheels = sorted((root / "vendor").glob("ml_workflows-*.whl"))
    if len(wheels) != 1:
        print(f"the project's vendor/ holds {len(wheels)} ml_workflows wheels, not one", file=sys.stderr)
        return 1
    spec = importlib.util.spec_from_loader(f"_{package}_pins", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up there
    try:
        with zipfile.ZipFile(wheels[0]) as wheel:
            source = wheel.read(PINS_MODULE)
        exec(compile(source, f"{wheels[0].name}/{PINS_MODULE}", "exec"), module.__dict__)  # noqa: S102 - the runtime's own checker
        return module.main(["--root", str(root)])
    except Exception:  # a crash of the checker is reported as a failed pin check, with its traceback
        import traceback

        traceback.print_exc()
        return 1
    finally:
        sys.modules.pop(spec.name, None)


WORKER_POLICY_MARK = "<!-- worker-policy -->"


def worker_policy_document(root: Path, ctx: dict) -> str:
    """The Prefect worker's IAM policy for the default stack `dev`, from the project's own code
    (infrastructure/infra/identity.py: worker_policy, the policy the stack gives its worker role). Pulumi is not
    installed where this hook runs and the policy documents need none of it, so empty stand-ins take its place."""
    import importlib.util
    import types

    saved = {name: sys.modules.get(name) for name in ("pulumi", "pulumi_aws", "_template_identity")}
    sys.modules["pulumi"] = types.ModuleType("pulumi")
    sys.modules["pulumi_aws"] = types.ModuleType("pulumi_aws")
    try:
        spec = importlib.util.spec_from_file_location(
            "_template_identity", root / "infrastructure" / "infra" / "identity.py"
        )
        identity = importlib.util.module_from_spec(spec)
        sys.modules["_template_identity"] = identity
        spec.loader.exec_module(identity)
        arns = identity.Arns(
            partition="aws",
            region=ctx["aws_region"],
            account="ACCOUNT_ID",
            base_name=f"{ctx['project_slug']}-dev".lower(),
            bucket_name="",
            log_group_name=f"/ecs/{ctx['project_slug']}-dev".lower(),  # infra/logs.py log_group_name_for
        )
        return identity.worker_policy(arns)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def write_worker_policy(root: Path, ctx: dict) -> None:
    """prefect_worker = no: the README gives the worker's exact policy, for the user to attach where it runs."""
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    if WORKER_POLICY_MARK not in text:
        return
    block = "```json\n" + worker_policy_document(root, ctx) + "\n```"
    readme.write_text(text.replace(WORKER_POLICY_MARK, block), encoding="utf-8")


def main() -> int:
    ctx = json.loads(r"""{{ cookiecutter | tojson }}""")
    root = Path.cwd()
    sys.dont_write_bytecode = True  # this hook runs files of the new project: it leaves no bytecode cache in it
    prune(root, ctx)
    if not install_lock(root, ctx):
        print(
            f"WARNING: the template ships no lock for {lock_name(ctx)[:-5]}; `make lock` resolves one "
            "(versions the template's CI has not tested)",
            file=sys.stderr,
        )
    write_worker_policy(root, ctx)
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
        "  make install     # Poetry env with the locked versions (poetry.lock, as the template's CI tested them)\n"
        "  make run         # the sample pipeline on a local Dask cluster\n"
        "  make test        # the project's own tests\n"
        "  make help        # everything else, including make deploy\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
