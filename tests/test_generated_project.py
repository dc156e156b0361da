"""Slow: baked projects are installed with Poetry and run their own commands, as a user would."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import locks
import pytest
import runtime_wheel as runtime_wheel_tool
from answer_matrix import CI_BAKES
from cookiecutter.main import cookiecutter

from tests.baked import TEMPLATE, BakedProject, bake, mirror

pytestmark = pytest.mark.slow

# The bakes installed and run whole here: between them every value of every answer (tools/answer_matrix.py).
NON_DEFAULT = CI_BAKES["non-default"]
MLFLOW = CI_BAKES["mlflow"]
# What the "older" template revision lacks; the update must bring it in.
ADDED_LATER = "{{cookiecutter.project_slug}}/tests/test_seam.py"


def git(cwd, *args) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


def template_history(dest):
    """A git repo of this template with two revisions: an older one (without ADDED_LATER), then today's."""
    files = git(TEMPLATE, "ls-files", "--cached", "--others", "--exclude-standard").splitlines()
    for rel in files:
        if (TEMPLATE / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(TEMPLATE / rel, dest / rel)
    git(dest, "init", "-q", "-b", "main")
    later = (dest / ADDED_LATER).read_text()
    (dest / ADDED_LATER).unlink()
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "older template")
    old = git(dest, "rev-parse", "HEAD")
    (dest / ADDED_LATER).write_text(later)
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "current template")
    return old, git(dest, "rev-parse", "HEAD")


# What a user's shell may hold when they type `make -s test`. Each one changed a test's outcome (MAKEFLAGS=s
# hid the commands `make security` echoes; AWS_ENDPOINT_URL sent the moto clients elsewhere) until the
# generated conftest.py removed them. Every address is a closed port on loopback.
HOSTILE_ENV = {
    "PREFECT_API_URL": "http://127.0.0.1:9/api",
    "PREFECT_API_KEY": "hostile",
    "PREFECT_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "true",
    "PREFECT_TASKS_DEFAULT_RETRIES": "3",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
    "AWS_PROFILE": "hostile-no-such-profile",
    "AWS_ACCESS_KEY_ID": "hostile",
    "AWS_SECRET_ACCESS_KEY": "hostile",
    "AWS_DEFAULT_REGION": "ap-south-1",
    "AWS_REGION": "ap-south-1",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "PIPELINE_CLUSTER": "existing",
    "PIPELINE_SCHEDULER_ADDRESS": "tcp://127.0.0.1:9",
    "PIPELINE_DATA_URL": "s3://hostile-bucket/data",
    "PIPELINE_N_WORKERS": "7",
    "PIPELINE_PROCESSES": "true",
    "PIPELINE_MEMORY_LIMIT": "3GiB",
    "PIPELINE_RETRIES": "5",
    "PIPELINE_SAMPLE_SCORE_ROWS": "5",
    "POETRY_REQUESTS_TIMEOUT": "1",
    "POETRY_ACTIVE": "1",
    "PULUMI_CONFIG_PASSPHRASE": "hostile",
}


@pytest.mark.xdist_group("installed")
def test_default_project_installs_the_shipped_lock_unchanged(installed_project: BakedProject):
    installed_project.assert_installs_the_shipped_lock()


@pytest.mark.xdist_group("installed")
def test_default_project_passes_its_own_checks(installed_project: BakedProject):
    installed_project.make("check-pins")
    installed_project.make("lint")


@pytest.mark.xdist_group("installed")
def test_default_project_suite_passes_under_the_callers_make_flags_and_environment(installed_project: BakedProject):
    """The generated suite, all of it, run the way a user with a busy shell runs it: `make -s test`.

    This is the one run of the generated suite in the template's tests (a clean environment adds
    nothing: the suite removes what it inherits, and the harness's own variables are present here too).
    """
    prefect_home = installed_project.path.parent / ".hostile-prefect-home"
    proc = installed_project.make("-s", "test", PREFECT_HOME=str(prefect_home), **HOSTILE_ENV)
    assert " passed" in proc.stdout and " failed" not in proc.stdout
    (header,) = [line for line in proc.stdout.splitlines() if line.startswith("inherited environment removed")]
    assert all(name in header for name in ("MAKEFLAGS", "PREFECT_HOME", *HOSTILE_ENV)), header


@pytest.mark.xdist_group("installed")
def test_the_runtime_tests_pass_against_the_default_project(installed_project: BakedProject):
    """The runtime's own tests (runtime/tests: plumbing, faults, deploy tools, names, pins, the image, the harness)
    run here once, against the default project as installed from its lock - not in every bake. The few that apply
    to other answers only (code_source = git, tracking = mlflow, no worker service) run in those bakes below."""
    proc = installed_project.runtime_tests("-rs")
    skipped = re.findall(r"^SKIPPED \[\d+\] (\S+?):\d+: (.*)$", proc.stdout, re.M)
    assert {path.rsplit("/", 1)[-1] for path, _ in skipped} <= {
        "test_git_checkout.py",
        "test_tracking.py",
        "test_deploy.py",
    }, skipped


@pytest.mark.xdist_group("installed")
def test_default_project_runs_its_sample_pipeline(installed_project: BakedProject):
    slug = installed_project.context["project_slug"]
    with installed_project.prefect_server():  # stopped after: commands start the project's server and leave it up
        proc = installed_project.make("run")
        # The CLI as the README shows it, without make's environment: Prefect's telemetry stays quiet.
        direct = installed_project.run("poetry", "run", slug, "run", unset=("PREFECT_SERVER_ANALYTICS_ENABLED",))
    assert "Prefect server up at" in proc.stdout  # make started it, then the run used it:
    assert f"Prefect API http://127.0.0.1:{installed_project.prefect_port}/api" in proc.stderr
    out = proc.stdout
    assert "quarantined" in out.lower(), out[-3000:]
    assert "predictions" in out.lower(), out[-3000:]
    # The run summary, printed once: by the CLI, not also through the flow's log.
    first = re.search(r"^run \S+ succeeded in [0-9.]+s$", out, re.M)
    assert first, out[-3000:]
    both = proc.stdout + proc.stderr
    assert both.count(first.group()) == 1 and both.count("predictions:  ") == 1, both[-6000:]
    assert "Traceback" not in direct.stderr and "database is locked" not in direct.stderr, direct.stderr[-3000:]


@pytest.mark.xdist_group("mlflow")
def test_mlflow_project_without_the_worker_service_passes_its_suite_runs_and_rehearses(cookies, tmp_path):
    """tracking = mlflow, prefect_worker = no, Python 3.13, 2-vCPU workers (CI_BAKES["mlflow"]): the shipped lock
    installs unchanged; the project's own lint and whole suite pass (its tracking test reads a run back through
    MLflow's API); `make run` records a run in the local store; and the cloud rehearsal runs the flow against a real
    MLflow tracking server on loopback, artifacts in the emulated S3, with the user's own worker (the README's
    policy) instead of the stack's worker service."""
    project = bake(cookies, **MLFLOW)
    project.make("install")
    project.assert_installs_the_shipped_lock()
    project.make("lint")
    tests = project.make("test", timeout=2400)
    assert " passed" in tests.stdout and " failed" not in tests.stdout.splitlines()[-1]
    # The runtime's tests of what only this bake has: tracking, and the user's own worker (the README's policy).
    runtime = project.runtime_tests("test_tracking.py", "deploy/test_deploy.py", "-v")
    assert re.search(r"test_tracking\.py::\S+ PASSED", runtime.stdout), runtime.stdout[-3000:]
    assert "SKIPPED" not in runtime.stdout, runtime.stdout[-3000:]
    with project.prefect_server():
        run = project.make("run")
    assert "decision:   promoted" in run.stdout, run.stdout[-3000:]
    read = (
        "import mlflow; mlflow.set_tracking_uri('sqlite:///data/sample/mlflow.db'); "
        "runs = mlflow.search_runs(search_all_experiments=True); "
        "print(len(runs), runs['tags.decision'].iloc[0], runs['tags.mlflow_model_uri'].iloc[0].startswith('models:/'))"
    )
    assert project.run("poetry", "run", "python", "-c", read).stdout.split() == ["1", "promoted", "True"]
    # A runtime release arrives as a version bump: its wheel in, both pins moved, re-locked keeping every other
    # version, then the project's install, lint and suite (make upgrade-runtime, docs/upgrading.md).
    before = locks.versions(project.path / "poetry.lock")
    upgraded = project.make("upgrade-runtime", f"WHEEL={next_release(project, tmp_path)}", timeout=2400)
    assert "ml-workflows 2026.12.6 -> 2099.1.1" in upgraded.stdout or " -> 2099.1.1" in upgraded.stdout, upgraded.stdout
    after = locks.versions(project.path / "poetry.lock")
    assert after.pop("ml-workflows") == "2099.1.1" and {k: v for k, v in before.items() if k != "ml-workflows"} == after
    assert project.run("poetry", "run", "python", "-c", "import ml_workflows; print(ml_workflows.__version__)").stdout
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("make rehearse-cloud runs each ECS task as the image's uid in a mount namespace: needs root")
    report_file = tmp_path / "cloud-rehearsal.json"
    negative = "-k 'not removing_a_needed_action'"  # the default project's run proves enforcement once
    proc = project.make(
        "rehearse-cloud", timeout=2400, check=False, REHEARSAL_REPORT=str(report_file), PYTEST_ADDOPTS=negative
    )
    summary = proc.stdout.strip().splitlines()[-1]
    assert proc.returncode == 0 and " passed" in summary and "failed" not in summary, (
        proc.stdout[-6000:] + proc.stderr[-3000:]
    )
    report = json.loads(report_file.read_text())
    assert report["state"] == "Completed" and report["scope_problems"] == [], report
    assert not [call for call in report["calls"] if call[2] == "denied"]
    tracking = report["tracking"]  # read back from the MLflow server through its client
    assert tracking["status"] == "FINISHED" and tracking["tags"]["decision"] == "promoted", tracking
    assert tracking["artifact_uri"].startswith("s3://") and "MLmodel" in tracking["model_artifacts"], tracking
    if Path("/proc/self/cmdline").exists():
        assert project.processes() == []


@pytest.mark.xdist_group("non-default")
def test_non_default_project_from_an_older_template_updates_and_passes(tmp_path):
    """Bake non-default answers from an older template revision, update it with cruft, then install and test."""
    template = tmp_path / "template"
    template.mkdir()
    old, new = template_history(template)
    git(template, "checkout", "-q", old)
    path = cookiecutter(str(template), no_input=True, extra_context=NON_DEFAULT, output_dir=str(tmp_path / "out"))
    git(template, "checkout", "-q", "main")
    state = json.loads((Path(path) / ".cruft.json").read_text())
    project = BakedProject(path, state["context"]["cookiecutter"])  # every answer, as the bake recorded them
    assert state["commit"] == old and state["context"]["cookiecutter"]["aws_region"] == "eu-west-1"
    assert not (project.path / "tests" / "test_seam.py").exists()
    assert project.read(".python-version").strip() == "3.11"

    # Through a package index of the user's (corporate mirrors): recorded in poetry.lock, every version kept.
    project.make("install", PYPI_MIRROR=mirror())
    project.assert_installs_the_shipped_lock()
    git(project.path, "init", "-q", "-b", "main")
    (project.path / "src" / "churn_model" / "features.py").write_text('"""Our own code: kept by updates."""\n')
    git(project.path, "add", "-A")
    git(project.path, "commit", "-qm", "baked from the template, with our own module")

    project.make("update-template")
    assert json.loads(project.read(".cruft.json"))["commit"] == new
    assert (project.path / "tests" / "test_seam.py").exists(), "the template's later file did not arrive"
    assert (project.path / "src" / "churn_model" / "features.py").exists()
    assert not list(project.path.rglob("*.rej"))

    project.make("check-pins")
    project.make("lint")
    # The whole suite, as `make test` runs it: Python 3.11 and code_source=git are proven by no other bake.
    proc = project.make("test", timeout=2400)
    assert " passed" in proc.stdout and " failed" not in proc.stdout.splitlines()[-1]
    assert "test_seam.py" in project.run("poetry", "run", "pytest", "--collect-only", "-q").stdout
    # The runtime's tests of code_source = git (the clone, its pull steps, the code shipped to Dask workers).
    runtime = project.runtime_tests("test_git_checkout.py", "deploy/test_names.py", "deploy/test_deploy_files.py", "-v")
    assert re.search(r"test_git_checkout\.py::\S+ PASSED", runtime.stdout), runtime.stdout[-3000:]
    # Nothing skipped but the CI workflow's check: this bake has none (ci = none).
    skips = re.findall(r"^SKIPPED \[\d+\] \S+: (.+)$", runtime.stdout, re.M)
    assert skips == ["generated without CI (ci = none): no .github/workflows/ci.yml"], runtime.stdout[-3000:]

    # The git code path on the AWS path: the project committed to a bare repository, cloned by the pull steps in the
    # flow-run task (as the image's user), its package shipped to the FargateCluster's workers; IAM enforced.
    if os.geteuid() == 0 and shutil.which("unshare"):
        report_file = tmp_path / "cloud-rehearsal.json"
        # The negative test (a needed action removed) proves the enforcement once, in the default project's run.
        negative = "-k 'not removing_a_needed_action'"
        proc = project.make(
            "rehearse-cloud", timeout=2400, check=False, REHEARSAL_REPORT=str(report_file), PYTEST_ADDOPTS=negative
        )
        summary = proc.stdout.strip().splitlines()[-1]
        assert proc.returncode == 0 and re.search(r"\b10 passed\b", summary), proc.stdout[-6000:] + proc.stderr[-3000:]
        report = json.loads(report_file.read_text())
        assert report["state"] == "Completed" and report["scope_problems"] == [], report
    else:  # the cloud rehearsal needs root: the local one still clones the code through the same pull steps
        out = project.make("rehearse", timeout=1500).stdout
        assert "rehearsal PASSED: flow run Completed" in out, out[-4000:]
        assert re.search(r"code from git: file://\S+/project\.git \(branch main\)", out)
        assert "project code from" in out  # the flow run sent the clone's package to the Dask worker

    # A dependency added by the user: `make install` refuses the stale lock, `make lock` resolves only what changed
    # (through the mirror recorded above) and every other locked version stays.
    before = locks.versions(project.path / "poetry.lock")
    pyproject = project.path / "pyproject.toml"
    declared = pyproject.read_text()
    assert '    "scikit-learn>=1.6",\n' in declared
    pyproject.write_text(
        declared.replace('    "scikit-learn>=1.6",\n', '    "scikit-learn>=1.6",\n    "tabulate>=0.9",\n')
    )
    assert "make lock" in project.make("install", check=False).stdout
    project.make("lock")
    after = locks.versions(project.path / "poetry.lock")
    assert "tabulate" in after and {k: v for k, v in after.items() if k != "tabulate"} == before
    project.make("install")


def next_release(project: BakedProject, tmp_path: Path) -> Path:
    """The project's runtime wheel as a later release would ship it (version 2099.1.1, the same code)."""
    [wheel] = (project.path / "vendor").glob("ml_workflows-*.whl")
    return runtime_wheel_tool.relabel(wheel, "2099.1.1", tmp_path)


def runtime_wheel() -> str:
    """The file name of the runtime wheel today's template vendors."""
    return "ml_workflows-{}-py3-none-any.whl".format(
        json.loads((TEMPLATE / "cookiecutter.json").read_text())["_runtime_version"]
    )


def template_at(dest: Path, revision: str) -> tuple[str, str]:
    """A git repo of this template with two commits: `revision` (an old one of this repository), then today's files.
    Returns both commits."""
    archive = subprocess.run(["git", "-C", str(TEMPLATE), "archive", revision], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", f"template at {revision[:12]}")
    old = git(dest, "rev-parse", "HEAD")
    for path in [p for p in dest.rglob("*") if p.is_file() and ".git" not in p.relative_to(dest).parts]:
        path.unlink()  # today's tree exactly: what it no longer has goes too
    for rel in git(TEMPLATE, "ls-files", "--cached", "--others", "--exclude-standard").splitlines():
        if (TEMPLATE / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(TEMPLATE / rel, dest / rel)
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "today's template")
    return old, git(dest, "rev-parse", "HEAD")


def revision_before(subject: str) -> str:
    """The last template revision before the commit whose message starts with `subject` (a breaking change the
    CHANGELOG names: "Layout:" 2026-11-29, "Runtime package:" 2026-12-06)."""
    commit = git(TEMPLATE, "log", "--format=%H", "--grep", f"^{subject}", "-1")
    assert commit, f"the template's history lacks the {subject!r} commit (a shallow clone?)"
    return git(TEMPLATE, "rev-parse", f"{commit}^")


@pytest.mark.xdist_group("runtime-migration")
def test_project_from_before_the_runtime_package_migrates_by_the_documented_path(tmp_path):
    """docs/upgrading.md, "Migrating a project baked before the runtime package": a default project of the previous
    revision, with the user's own module and an edit of model.py, takes `make update-template`; the framework's
    files leave, the runtime arrives pinned (vendor/, pyproject.toml, poetry.lock), nothing of the user's is lost,
    nothing waits to be merged, and the project installs, passes its suite and runs its pipeline on the runtime."""
    template = tmp_path / "template"
    template.mkdir()
    old, new = template_at(template, revision_before("Runtime package:"))
    git(template, "checkout", "-q", old)
    path = cookiecutter(str(template), no_input=True, output_dir=str(tmp_path / "out"))
    git(template, "checkout", "-q", "main")
    project = BakedProject(path, json.loads((Path(path) / ".cruft.json").read_text())["context"]["cookiecutter"])
    package = project.path / "src" / project.package
    assert (package / "runtime" / "steps.py").exists() and not (project.path / "vendor").exists()  # the old layout
    project.make("install")
    git(project.path, "init", "-q", "-b", "main")
    (package / "features.py").write_text('"""Our own code: kept by updates."""\n')
    model = package / "model.py"
    model.write_text(model.read_text() + "\n# our own change to the model\n")
    git(project.path, "add", "-A")
    git(project.path, "commit", "-qm", "baked, with our own module and a change to the model")

    proc = project.make("update-template")
    assert json.loads(project.read(".cruft.json"))["commit"] == new
    assert not list(project.path.rglob("*.rej")), proc.stdout[-3000:]
    tracked = git(project.path, "ls-files", "--cached", "--others", "--exclude-standard").splitlines()
    assert not [
        f
        for f in tracked
        if f.startswith(
            (f"src/{project.package}/runtime/", f"src/{project.package}/deploy/", "tests/runtime/", "tests/deploy/")
        )
    ]
    assert "conftest.py" not in tracked and "tests/conftest.py" not in tracked
    assert sorted(p.name for p in (project.path / "vendor").iterdir()) == [runtime_wheel()]
    assert (package / "features.py").exists() and "our own change to the model" in model.read_text()
    assert "from ml_workflows." in model.read_text()  # the template's import change merged with the user's edit

    project.make("check-pins")
    project.make("install")  # the new lock: every earlier version kept, the runtime added
    project.assert_installs_the_shipped_lock()
    tests = project.make("test", timeout=2400)
    assert " passed" in tests.stdout and " failed" not in tests.stdout.splitlines()[-1]
    with project.prefect_server():
        run = project.make("run")
    assert re.search(r"^run \S+ succeeded in [0-9.]+s$", run.stdout, re.M), run.stdout[-3000:]


@pytest.mark.xdist_group("breaking-update")
def test_project_from_before_the_breaking_layout_change_is_told_what_to_merge(tmp_path):
    """A project baked before the layout change, with the user's own edit of model.py, takes the update:
    the new files arrive, and `make update-template` ends with the list of what to merge by hand."""
    template = tmp_path / "template"
    template.mkdir()
    old, new = template_at(template, revision_before("Layout:"))
    git(template, "checkout", "-q", old)
    path = cookiecutter(str(template), no_input=True, output_dir=str(tmp_path / "out"))
    git(template, "checkout", "-q", "main")
    project = BakedProject(path, {"package_name": "batch_scoring"})
    assert (project.path / "src" / "batch_scoring" / "data.py").exists()  # the old layout

    project.make("install")
    git(project.path, "init", "-q", "-b", "main")
    model = project.path / "src" / "batch_scoring" / "model.py"
    model.write_text(model.read_text() + "\n# our own change to the model\n")
    git(project.path, "add", "-A")
    git(project.path, "commit", "-qm", "baked, and our change to the model")

    # The project's Makefile is the old one: its target is still called template-update. The update brings
    # the new Makefile, whose check-pins (the old target's last step) lists what waits to be merged.
    proc = project.make("template-update", check=False)
    out = proc.stdout
    assert proc.returncode != 0  # half-merged: the project says so until the .rej files are merged
    assert out.rstrip().splitlines()[-1].startswith("What changed and where things moved: CHANGELOG.md")
    assert json.loads(project.read(".cruft.json"))["commit"] == new
    assert (project.path / "src" / "batch_scoring" / "schema.py").exists()  # the new seam arrived
    assert sorted(p.name for p in (project.path / "vendor").iterdir()) == [runtime_wheel()]  # and the runtime
    assert "To merge by hand" in out, out
    assert "src/batch_scoring/model.py  (the template's change: src/batch_scoring/model.py.rej)" in out
    assert "our own change to the model" in model.read_text()  # nothing of the user's is lost
    # Merged by hand (here: the template's model.py taken as is). The project's own poetry.lock (resolved before
    # the template shipped locks) lacks the runtime: the pin guard says so and names the fix, after which the
    # project checks clean again (docs/upgrading.md).
    (project.path / "src" / "batch_scoring" / "model.py.rej").unlink()
    proc = project.make("check-pins", check=False)
    assert proc.returncode != 0 and "records no ml-workflows, which pyproject.toml pins: make lock" in proc.stderr
    project.make("lock")
    project.make("check-pins")
