"""Generated make targets that wrap a tool, run with a recording stand-in for Poetry (the real calls need the network
or AWS): the commands and environment each target hands on."""

from tests.baked import bake


def fake_poetry(tmp_path, answers: dict[str, str] | None = None):
    """A `poetry` that records each call (with the observer queue variable) and prints a canned answer."""
    calls = tmp_path / "poetry-calls"
    fake = tmp_path / "fake-poetry"
    cases = "".join(f'  *"{args}"*) echo "{out}" ;;\n' for args, out in (answers or {}).items())
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$* | ${{PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME:-}}" >> {calls}\n'
        f'case "$*" in\n{cases}esac\n'
    )
    fake.chmod(0o755)
    return fake, calls


def test_make_update_deps_moves_versions_then_runs_every_check(cookies, tmp_path):
    """The one target that moves versions on purpose: `poetry update` of the named packages, then the checks."""
    project = bake(cookies)
    fake, calls = fake_poetry(tmp_path)  # the real `poetry update` needs the network
    proc = project.make("update-deps", "PACKAGES=pandas pyarrow", f"POETRY={fake}")
    assert "Updated and checked" in proc.stdout
    assert calls.read_text().splitlines() == [
        "update --with dev,infra pandas pyarrow | ",
        "run ruff check . | ",
        "run ruff format --check . | ",
        "run pytest | ",
    ]


def test_make_install_compiles_what_runs_import_and_says_what_a_mirror_changed(cookies, tmp_path):
    """Poetry's --compile compiles nothing on an existing environment: make install imports what every command
    imports once, with bytecode writing on. A mirror goes into the tracked pyproject.toml and poetry.lock (Poetry
    reads package sources from nowhere else): make install says so, and how to undo it."""
    project = bake(cookies)
    mirror = "https://mirror.example.com/simple"
    fake, calls = fake_poetry(tmp_path)
    proc = project.make("install", f"POETRY={fake}", PYPI_MIRROR=mirror)
    python = project.read(".python-version").strip()
    assert calls.read_text().splitlines() == [
        f"env use python{python} | ",
        f"source add --priority=primary mirror {mirror} | ",
        "lock | ",
        "check --lock | ",
        "sync --with dev,infra | ",
        "run python -c import sys; sys.dont_write_bytecode = False; "
        f"import dask.dataframe, pyarrow.parquet, ml_workflows.cli, {project.package}.flows | ",
    ]
    said = next(line for line in proc.stdout.splitlines() if line.startswith(f"Added {mirror}"))
    assert "pyproject.toml" in said and "poetry.lock" in said and "git diff" in said and "undo: git checkout" in said


def test_make_worker_aws_names_the_stacks_event_queue_for_the_task_observer(cookies, tmp_path):
    """prefect_worker = no: the user's worker reads the stack's queue (identity.event_queue_name), which its README
    policy allows, not prefect-aws's shared default queue, which it does not. Both names come from the Pulumi files
    (ml_workflows.deploy.stack_config worker, its own tests check them), not from the stack's state."""
    project = bake(cookies, prefect_worker=False)
    names = "batch-scoring-prod-ecs batch-scoring-prod-ecs-events"
    fake, calls = fake_poetry(tmp_path, {"stack_config --stack prod worker": names})
    project.make("worker-aws", f"POETRY={fake}", PULUMI_STACK="prod")
    assert calls.read_text().splitlines() == [
        "env info --path | ",  # need-env: the environment exists
        "run python -m ml_workflows.deploy.stack_config --stack prod worker | ",
        "run prefect worker start --pool batch-scoring-prod-ecs --type ecs | batch-scoring-prod-ecs-events",
    ]
