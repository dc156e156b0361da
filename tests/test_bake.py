"""Baking the template: file sets, every choice, every supported version pair, lint-clean output."""

import ast
import fnmatch
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import asdict
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.baked import CONTEXT, JINJA_LEFTOVER, TEMPLATE, bake, project_files, supported_pairs

TEMPLATE_PROJECT = TEMPLATE / "{{cookiecutter.project_slug}}"
CONTEXT_DEFAULT_PACKAGE = "batch_scoring"
RUNTIME_VERSION = CONTEXT["_runtime_version"]
RUNTIME_WHEEL = f"vendor/ml_workflows-{RUNTIME_VERSION}-py3-none-any.whl"
RUFF = Path(sys.executable).parent / "ruff"

# The default bake, file by file, written out by hand: a stray file in the template, or one the
# post-gen hook forgot to prune, fails the bake tests. `{package}` is the package name.
DEFAULT_FILES = {
    ".cruft.json",
    ".dockerignore",
    ".github/dependabot.yml",
    ".github/workflows/ci.yml",
    ".gitignore",
    ".python-version",
    "Dockerfile",
    "Makefile",
    "README.md",
    "poetry.lock",  # the template's shipped lock for these answers (hooks/post_gen_project.py: install_lock)
    "automations.yaml",
    "docs/deploy.md",
    "docs/lifecycle.md",
    "docs/pipeline.md",
    "docs/reliability.md",
    "docs/troubleshooting.md",
    "docs/upgrading.md",
    "docs/versions.md",
    "infrastructure/Pulumi.yaml",
    "infrastructure/__main__.py",
    "infrastructure/infra/__init__.py",
    "infrastructure/infra/compute.py",
    "infrastructure/infra/events.py",
    "infrastructure/infra/identity.py",
    "infrastructure/infra/log_retention_days.json",
    "infrastructure/infra/logs.py",
    "infrastructure/infra/network.py",
    "infrastructure/infra/registry.py",
    "infrastructure/infra/settings.py",
    "infrastructure/infra/stack.py",
    "infrastructure/infra/storage.py",
    "infrastructure/policy/PulumiPolicy.yaml",
    "infrastructure/policy/__main__.py",
    "infrastructure/tests/test_iam_audit.py",
    "infrastructure/tests/test_infra_stack.py",
    "prefect.yaml",
    "pyproject.toml",
    "src/{package}/__init__.py",
    "src/{package}/flows.py",
    "src/{package}/model.py",
    "src/{package}/sample_data.py",
    "src/{package}/schema.py",
    "tests/__init__.py",
    "tests/test_pipeline.py",
    "tests/test_seam.py",
    RUNTIME_WHEEL,  # the runtime the project pins, copied as is (the rest of the framework lives in it)
}
# Files only some answers generate, and files some answers remove.
# (code_source and tracking add no file: the runtime holds git_checkout and tracking, and the project's
# `Project(code_source=..., tracking=...)` selects them.)
ONLY_WITH = {
    ("prefect_worker", "True"): {"infrastructure/infra/worker.py"},
}
REMOVED_BY = {
    ("ci", "none"): {".github/workflows/ci.yml", ".github/dependabot.yml"},
}

# Non-default answers, one at a time (every choice value, plus free-form answers), each with the files that
# must differ from the default bake because of it and, where one is telling, a text the answer must put there,
# and what the runtime then reads differently (runtime_view: the project's `Project` and its Pulumi settings; every
# value not listed must read as in the default bake). The runtime's code is the same wheel in every bake: an answer
# reaches it only through these. An answer the template ignored leaves its files as in the default bake and fails here.
PKG = "src/{package}"
VARIATIONS = [
    (
        {"python_version": "3.11"},
        {
            ".python-version": "3.11",
            "Dockerfile": "-py3.11",
            "pyproject.toml": ">=3.11,<3.12",
            ".github/workflows/ci.yml": '"3.11"',
        },
        {},
    ),
    (
        {"python_version": "3.13"},
        {
            ".python-version": "3.13",
            "Dockerfile": "-py3.13",
            "pyproject.toml": ">=3.13,<3.14",
            ".github/workflows/ci.yml": '"3.13"',
        },
        {},
    ),
    (
        {"nat_strategy": "per-az"},
        {"infrastructure/Pulumi.yaml": "default: per-az"},
        {"stack.nat_gateways": 2},
    ),
    (
        {"use_fargate_spot": False},
        {"infrastructure/Pulumi.yaml": "default: false"},
        {"stack.fargate_spot": False},
    ),
    (
        {"worker_vcpus": "2"},
        {f"{PKG}/__init__.py": "worker_vcpus=2,"},
        {"Project.worker_vcpus": 2},
    ),
    (
        {"worker_vcpus": "4"},
        {f"{PKG}/__init__.py": "worker_vcpus=4,"},
        {"Project.worker_vcpus": 4},
    ),
    ({"log_retention_days": "7"}, {"infrastructure/Pulumi.yaml": "default: 7"}, {}),
    ({"log_retention_days": "365"}, {"infrastructure/Pulumi.yaml": "default: 365"}, {}),
    ({"log_retention_days": "3653"}, {"infrastructure/Pulumi.yaml": "default: 3653"}, {}),
    ({"ci": "none"}, {"README.md": None}, {}),
    (
        {"code_source": "git"},
        {
            "prefect.yaml": "git_clone",
            f"{PKG}/__init__.py": 'code_source="git",',
            "README.md": None,
            ".github/workflows/ci.yml": "PIPELINE_GIT_BRANCH: ${{ github.ref_name }}",
        },
        {"Project.code_source": "git"},
    ),
    (
        {"tracking": "mlflow"},
        {
            "pyproject.toml": f'"ml-workflows[mlflow]=={RUNTIME_VERSION}"',
            "poetry.lock": 'name = "mlflow-skinny"',
            f"{PKG}/__init__.py": 'tracking="mlflow",',
            "infrastructure/infra/identity.py": 'TRACKING_PREFIX = "mlflow"',
            "infrastructure/tests/test_infra_stack.py": "assert TRACKING_PREFIX == tracking.S3_PREFIX",
            "README.md": None,
        },
        {"Project.tracking": "mlflow"},
    ),
    (
        {"prefect_worker": False},
        {
            "infrastructure/Pulumi.yaml": "default: false",
            "infrastructure/infra/settings.py": "prefect_worker: bool = False",
            "infrastructure/infra/stack.py": None,
            "infrastructure/tests/test_infra_stack.py": "def test_no_worker_resources_in_this_project",
            "README.md": '"Sid": "PassOnlyTheFlowRunRoles"',
        },
        {"stack.prefect_worker": False},
    ),
    (
        {"aws_region": "eu-west-1"},
        {
            "infrastructure/Pulumi.yaml": "aws:region: eu-west-1",
            ".github/workflows/ci.yml": "eu-west-1",
        },
        {"stack.region": "eu-west-1"},
    ),
    (
        {"vpc_cidr": "172.20.0.0/20", "dask_access_cidr": "172.20.0.0/20"},
        {"infrastructure/Pulumi.yaml": "default: 172.20.0.0/20"},
        {},
    ),
    ({"dask_access_cidr": "203.0.113.7/32"}, {"infrastructure/Pulumi.yaml": "default: 203.0.113.7/32"}, {}),
    (
        {"max_workers": "32"},
        {f"{PKG}/__init__.py": "max_workers=32,"},
        {"Project.max_workers": 32},
    ),
    (
        {"project_name": "Churn Model", "author_name": "Ana Lytics", "author_email": "ana@corp.example"},
        {
            "pyproject.toml": '"Ana Lytics", email = "ana@corp.example"',
            "README.md": "# Churn Model",
            "prefect.yaml": "name: churn-model",
            "infrastructure/Pulumi.yaml": "name: churn-model",
        },
        {"Project.name": "churn-model", "Project.package": "churn_model", "stack.name_prefix": "churn-model"},
    ),
]
# What the runtime reads of the default bake (runtime_view), written out by hand.
DEFAULT_RUNTIME_VIEW = {
    "Project.name": "batch-scoring",
    "Project.package": "batch_scoring",
    "Project.tracking": "none",
    "Project.code_source": "image",
    "Project.worker_vcpus": 1,
    "Project.max_workers": 8,
    "stack.region": "us-east-1",
    "stack.name_prefix": "batch-scoring",
    "stack.nat_gateways": 1,
    "stack.fargate_spot": True,
    "stack.prefect_worker": True,
}


def runtime_module(root: Path, member: str) -> ModuleType:
    """`member` (e.g. ml_workflows/project.py) of the runtime wheel vendored in the bake at `root`, loaded on its own,
    as the post-gen hook loads the pin guard (the modules read here import only the standard library and yaml)."""
    (wheel,) = (root / "vendor").glob("ml_workflows-*.whl")
    name = "_bake_" + member.removesuffix(".py").replace("/", "_")
    module = ModuleType(name)
    sys.modules[name] = module  # dataclasses look the module up there
    try:
        with zipfile.ZipFile(wheel) as zf:
            exec(compile(zf.read(member), f"{wheel}/{member}", "exec"), module.__dict__)  # noqa: S102
    finally:
        sys.modules.pop(name, None)
    return module


def runtime_view(root: Path, package: str) -> dict:
    """What the runtime reads of a bake, flat: the `project = Project(...)` its package's __init__.py declares, built
    (and so validated) by the vendored runtime's own `Project`, and the stack settings its Pulumi files give the deploy
    tools (`ml_workflows.deploy.stack_config.read`, stack dev)."""
    tree = ast.parse((root / "src" / package / "__init__.py").read_text())
    (call,) = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["project"]
    ]
    assert isinstance(call, ast.Call) and ast.unparse(call.func) == "Project" and not call.args, ast.unparse(call)
    fields = {
        kw.arg: package if ast.unparse(kw.value) == "__name__" else ast.literal_eval(kw.value) for kw in call.keywords
    }
    project = runtime_module(root, "ml_workflows/project.py").Project(**fields)
    stack = runtime_module(root, "ml_workflows/deploy/stack_config.py").read(root, stack="dev")
    return {f"Project.{k}": v for k, v in asdict(project).items()} | {f"stack.{k}": v for k, v in asdict(stack).items()}


def expected_files(context: dict) -> set[str]:
    """The default file list, plus and minus what these answers add and remove."""
    files = set(DEFAULT_FILES)
    for (field, value), paths in ONLY_WITH.items():
        if str(context[field]) != value:
            files -= paths
        else:
            files |= paths
    for (field, value), paths in REMOVED_BY.items():
        if str(context[field]) == value:
            files -= paths
    return {f.format(package=context["package_name"]) for f in files}


def test_the_file_lists_name_only_template_files():
    """Every listed file exists in the template (a renamed or deleted file must be taken off the lists too)."""
    listed = set(DEFAULT_FILES).union(*ONLY_WITH.values()) - {".cruft.json", "poetry.lock"}  # written by the hook
    for rel in listed:
        path = TEMPLATE_PROJECT / rel.replace("{package}", "{{cookiecutter.package_name}}")
        assert path.is_file(), f"{rel} is listed but not in the template"


def assert_clean(project) -> None:
    """No unrendered Jinja, Python that compiles, TOML that parses, ruff-clean; vendor/ (the runtime wheel, binary)
    byte for byte the template's: copied, never rendered, the same runtime whatever the answers."""
    answers = [str(v) for k, v in project.context.items() if not k.startswith("_") and isinstance(v, str)]
    for rel in project_files(project.path):
        if rel.startswith("vendor/"):
            shipped = TEMPLATE_PROJECT / rel
            assert shipped.is_file(), f"{rel} is not a file of the template's vendor/"
            assert (project.path / rel).read_bytes() == shipped.read_bytes(), f"{rel} differs from the template's"
            continue
        text = (project.path / rel).read_text()
        # An answer may legitimately contain braces: it is data, not template. A match that lies
        # inside where an answer was written is no leftover (removing the answers from the text
        # instead could break the allowed Prefect placeholders and flag them).
        written = [
            range(m.start(), m.end()) for answer in answers if answer for m in re.finditer(re.escape(answer), text)
        ]
        leftovers = [
            m.group()
            for m in JINJA_LEFTOVER.finditer(text)
            if not any(m.start() in span and m.end() - 1 in span for span in written)
        ]
        assert not leftovers, f"unrendered Jinja in {rel}: {leftovers}"
        if rel.endswith(".py"):
            compile((project.path / rel).read_text(), rel, "exec")
        if rel.endswith(".toml"):
            tomllib.loads((project.path / rel).read_text())
        if rel.endswith((".yaml", ".yml")):
            yaml.safe_load((project.path / rel).read_text())
    for args in (["check", "."], ["format", "--check", "."]):
        proc = subprocess.run([str(RUFF), *args], cwd=project.path, capture_output=True, text=True)
        assert proc.returncode == 0, f"ruff {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}"


def test_default_bake(cookies):
    project = bake(cookies)
    assert project.path.name == "batch-scoring"
    assert project.package == "batch_scoring"
    assert project_files(project.path) == expected_files(project.context)
    assert ".github/workflows/ci.yml" in project_files(project.path)
    assert project.read("Dockerfile").count("FROM ghcr.io/dask/dask:2026.7.1-py3.12") == 1
    assert project.read(".python-version").strip() == "3.12"
    meta = tomllib.loads(project.read("pyproject.toml"))["project"]
    assert meta["requires-python"] == ">=3.12,<3.13"
    assert "dask[dataframe]==2026.7.1" in meta["dependencies"]
    assert "distributed==2026.7.1" in meta["dependencies"]
    assert f"ml-workflows=={RUNTIME_VERSION}" in meta["dependencies"]  # exactly the vendored runtime
    poetry = tomllib.loads(project.read("pyproject.toml"))["tool"]["poetry"]["dependencies"]
    assert poetry["ml-workflows"] == {"path": RUNTIME_WHEEL}
    assert runtime_view(project.path, project.package) == DEFAULT_RUNTIME_VIEW
    assert_clean(project)


def test_leftover_check_sees_past_short_answers_and_catches_real_leftovers(cookies):
    project = bake(cookies, description="b")  # "b" occurs inside allowed placeholders such as {{ webhook_url }}
    assert_clean(project)
    readme = project.path / "README.md"
    readme.write_text(readme.read_text() + "\n{{ cookiecutter.forgotten }}\n")
    with pytest.raises(AssertionError, match="unrendered Jinja in README.md"):
        assert_clean(project)


@pytest.fixture(scope="module")
def default_bake(cookies_session):
    result = cookies_session.bake()
    assert result.exception is None, result.exception
    return Path(result.project_path)


@pytest.mark.parametrize(
    ("answers", "must_change", "runtime_reads"),
    VARIATIONS,
    ids=[",".join(f"{k}={v}" for k, v in a.items()) for a, *_ in VARIATIONS],
)
def test_each_answer_varied_alone(cookies, default_bake, answers, must_change, runtime_reads):
    project = bake(cookies, **answers)
    assert project_files(project.path) == expected_files(project.context)
    for rel, text in sorted(must_change.items()):
        mine = project.read(rel.format(package=project.package))
        theirs = (default_bake / rel.format(package=CONTEXT_DEFAULT_PACKAGE)).read_text()
        assert mine != theirs, f"{answers}: {rel} is the same as in the default bake: the answer was ignored"
        assert text is None or text in mine, f"{answers}: {rel} lacks {text!r}"
    mine = runtime_view(project.path, project.package)
    theirs = runtime_view(default_bake, CONTEXT_DEFAULT_PACKAGE)
    assert {k: v for k, v in mine.items() if v != theirs[k]} == runtime_reads, f"{answers}: the runtime reads {mine}"
    assert_clean(project)


def mlflow_mentions(root: Path) -> dict[str, list[str]]:
    """The lines of a bake's text files that mention MLflow, by file. Not scanned: vendor/ (the runtime wheel: binary,
    the template's own bytes in every bake, see assert_clean) and poetry.lock (read as data: lock_mlflow_mentions)."""
    found = {}
    for rel in sorted(project_files(root)):
        if rel.startswith("vendor/") or rel == "poetry.lock":
            continue
        lines = [line.strip() for line in (root / rel).read_text().splitlines() if "mlflow" in line.lower()]
        if lines:
            found[rel] = lines
    return found


def lock_mlflow_mentions(root: Path) -> set[tuple]:
    """Where poetry.lock mentions MLflow: the path of every key and string that does (a package by its name)."""

    def walk(value, path):
        if isinstance(value, dict):
            for key, item in value.items():
                if "mlflow" in key.lower():
                    yield (*path, key)
                yield from walk(item, (*path, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                yield from walk(item, (*path, i))
        elif isinstance(value, str) and "mlflow" in value.lower():
            yield path

    lock = tomllib.loads((root / "poetry.lock").read_text())
    found = {path for pkg in lock.pop("package") for path in walk(pkg, (pkg["name"],))}
    return found | set(walk(lock, ()))


def test_tracking_none_leaves_no_mlflow_behind(cookies):
    """tracking = none (the default): no MLflow code, dependency or mention anywhere in the bake.

    The runtime's MLflow code (ml_workflows.tracking, its `mlflow` extra) is in the vendored wheel of every bake: the
    wheel is binary and the same whatever the answers (assert_clean), so it is left out of the text scan. In a none
    bake nothing installs that extra: the pin is plain `ml-workflows==V`, `Project(tracking="none")`, and poetry.lock
    locks no MLflow package; its one mention is data, the ml-workflows package's record of the extras it offers.
    The mlflow bake, scanned the same way, shows the scan finds what that answer adds.
    """
    project = bake(cookies)
    assert project.context["tracking"] == "none"
    assert mlflow_mentions(project.path) == {}
    in_lock = lock_mlflow_mentions(project.path)  # all within the runtime's `mlflow` extra: its name and its list
    assert ("ml-workflows", "extras", "mlflow") in in_lock
    assert {path[:3] for path in in_lock} == {("ml-workflows", "extras", "mlflow")}, in_lock
    assert (
        f"ml-workflows=={RUNTIME_VERSION}" in tomllib.loads(project.read("pyproject.toml"))["project"]["dependencies"]
    )
    assert runtime_view(project.path, project.package)["Project.tracking"] == "none"

    with_mlflow = bake(cookies, tracking="mlflow")
    assert set(mlflow_mentions(with_mlflow.path)) >= {
        "pyproject.toml",
        "README.md",
        f"src/{with_mlflow.package}/__init__.py",
        "infrastructure/infra/identity.py",
    }
    assert ("mlflow-skinny", "name") in lock_mlflow_mentions(with_mlflow.path)
    with zipfile.ZipFile(with_mlflow.path / RUNTIME_WHEEL) as wheel:
        assert "import mlflow" in wheel.read("ml_workflows/tracking.py").decode()


@pytest.mark.parametrize("tracking", ["none", "mlflow"])
def test_generated_tests_shed_the_callers_make_flags_and_environment(cookies, tmp_path, tracking):
    """The bake's tests, started with a hostile environment, see none of it, from their first import on.

    The isolation is the runtime's: its pytest plugin (the vendored wheel's `pytest11` entry point,
    ml_workflows.testing.plugin) runs ml_workflows.testing.isolation when pytest starts. Here pytest runs in the bake's
    directory with its pyproject.toml's configuration and the wheel on PYTHONPATH, so pytest finds the plugin through
    the entry point as in the installed project; a probe test module records the environment at its import. The same
    isolation for both trackings: MLFLOW_* goes in a none bake too.

    (The whole generated suite runs under such an environment in test_generated_project.py.)
    """
    project = bake(cookies, tracking=tracking)
    hostile = {
        "MAKEFLAGS": "s",
        "MAKELEVEL": "1",
        "PREFECT_API_URL": "http://127.0.0.1:9/api",
        "AWS_PROFILE": "hostile-no-such-profile",
        "PIPELINE_CLUSTER": "fargate",
        "POETRY_VIRTUALENVS_CREATE": "false",
        "PULUMI_BACKEND_URL": "file://nowhere",
        "MLFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:9",
    }
    seen = tmp_path / "environment.json"
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        f"import json, os\n\nAT_IMPORT = dict(os.environ)\n\n\ndef test_probe():\n"
        f"    open({str(seen)!r}, 'w').write(json.dumps(AT_IMPORT))\n"
    )
    caller = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            ".",
            "-c",
            "pyproject.toml",
            str(probe),
        ],
        cwd=project.path,
        env={**caller, **hostile, "PYTHONPATH": str(project.path / RUNTIME_WHEEL)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    plugins = next(line for line in proc.stdout.splitlines() if line.startswith("plugins: "))
    assert f"ml-workflows-{RUNTIME_VERSION}" in plugins.split(": ", 1)[1].split(", "), plugins
    header = next(line for line in proc.stdout.splitlines() if line.startswith("inherited environment removed"))
    assert set(hostile) <= set(header.split(": ", 1)[1].split(", ")), header
    left = json.loads(seen.read_text())
    assert {k for k in hostile if k in left} == set()
    assert left["AWS_EC2_METADATA_DISABLED"] == "true" and left["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert left["AWS_CONFIG_FILE"] == left["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull


def test_ci_none_prunes_the_workflow(cookies):
    project = bake(cookies, ci="none")
    assert not (project.path / ".github").exists()


@pytest.mark.parametrize(("dask", "python"), supported_pairs(), ids=lambda v: str(v))
def test_every_supported_pair_gets_its_image(cookies, dask, python):
    project = bake(cookies, dask_version=dask, python_version=python)
    from_lines = [line for line in project.read("Dockerfile").splitlines() if line.startswith("FROM ")]
    assert from_lines == [f"FROM ghcr.io/dask/dask:{dask}-py{python}"]
    assert project.read(".python-version").strip() == python
    minor = int(python.split(".")[1])
    assert tomllib.loads(project.read("pyproject.toml"))["project"]["requires-python"] == f">={python},<3.{minor + 1}"


def test_files_copied_without_rendering_hold_no_jinja():
    """`_copy_without_render` saves the bake a Jinja compile per file; it may list plain files only."""
    root = TEMPLATE / "{{cookiecutter.project_slug}}"
    files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    for pattern in CONTEXT["_copy_without_render"]:
        matched = [rel for rel in files if fnmatch.fnmatch(rel, pattern)]
        assert matched, f"{pattern!r} in _copy_without_render matches no template file"
        for rel in matched:
            if rel.startswith("vendor/"):  # the runtime wheel: a zip, which cookiecutter copies as is anyway
                assert zipfile.is_zipfile(root / rel), f"{rel} is not a wheel"
                continue
            assert not re.search(r"\{\{|\{%|\{#", (root / rel).read_text()), (
                f"{rel} has Jinja but is copied without rendering: take {pattern!r} out of _copy_without_render"
            )


def test_supported_table_is_consistent():
    assert CONTEXT["python_version"][0] == "3.12"  # the documented default
    assert set(CONTEXT["python_version"]) == set(CONTEXT["_supported_python"])
    assert CONTEXT["dask_version"] in CONTEXT["_dask_images"]
    assert supported_pairs(), "no (dask, python) pair is bakeable"


def test_supported_table_matches_the_upstream_image_build():
    """_dask_images lists, per release, exactly the Pythons dask-docker builds images for; the default is its
    newest tag; the README says which published Pythons are not offered, and why."""
    upstream = json.loads((TEMPLATE / "tests" / "data" / "dask-docker-builds.json").read_text())
    for release, pythons in CONTEXT["_dask_images"].items():
        assert release in upstream["builds"], f"dask-docker has no {release} tag: no image"
        assert pythons == upstream["builds"][release]["python"], release
    assert CONTEXT["dask_version"] == upstream["newest_tag"]
    readme = (TEMPLATE / "README.md").read_text()
    section = readme.split("## Supported versions", 1)[1].split("\n## ", 1)[0]
    for release, pythons in CONTEXT["_dask_images"].items():
        offered = [p for p in pythons if p in CONTEXT["_supported_python"]]
        not_offered = [p for p in pythons if p not in CONTEXT["_supported_python"]]
        row = next(line for line in section.splitlines() if line.startswith(f"| {release} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == ", ".join(pythons) and cells[2] == ", ".join(offered), row
        for python in not_offered:
            assert re.search(rf"{re.escape(python)}: \w+", cells[3]), f"python {python}: no reason given in {row}"
