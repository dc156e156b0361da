"""Upper bounds a generated project installs under: each carries its reason, and a cap that excludes a released
version is shown to still be needed (a cap that no longer holds is a defect).

The caps live in two places: the project's own pyproject.toml (its model's libraries, the infra and dev groups) and
the runtime's, runtime/pyproject.toml (what ml_workflows needs: Prefect, bokeh, MLflow's client), which every bake
gets through its vendored ml-workflows wheel's metadata.

The probes install the newest excluded release over the installed default project (pip --target, no
dependencies, first on PYTHONPATH) and run the smallest use that broke; the same use must work with the
locked version. When a probe stops failing, upstream has fixed it: drop the cap, re-lock, run the tests.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
import zipfile
from email.parser import Parser

import pytest
from packaging.requirements import Requirement

from tests.baked import CONTEXT, TEMPLATE, bake

RUNTIME_PYPROJECT = TEMPLATE / "runtime" / "pyproject.toml"
RUNTIME_WHEEL = (
    TEMPLATE
    / "{{cookiecutter.project_slug}}"
    / "vendor"
    / f"ml_workflows-{CONTEXT['_runtime_version']}-py3-none-any.whl"
)

# Every upper bound a generated project installs under, and why (its "Version caps" documentation says the same).
CAPS = {
    # the project's pyproject.toml
    "scipy": "<1.18",  # probed below: dask-glm's lbfgs breaks
    "pulumi": "<4",  # major version: nothing released is excluded
    "pulumi-aws": "<8",  # major version: nothing released is excluded
    "mlflow": "<4",  # tracking=mlflow bakes' dev group; major version: nothing released is excluded
    # runtime/pyproject.toml
    "bokeh": "<3.10",  # probed below: the scheduler's dashboard does not stop
    "prefect": "<4",  # major version: nothing released is excluded
    "mlflow-skinny": "<4",  # the runtime's `mlflow` extra; major version: nothing released is excluded
}
PROJECT_CAPS = {"none": {"scipy", "pulumi", "pulumi-aws"}, "mlflow": {"scipy", "pulumi", "pulumi-aws", "mlflow"}}
RUNTIME_CAPS = {"bokeh", "prefect", "mlflow-skinny"}
# The runtime's caps a bake installs under: its `mlflow` extra only where the project pins ml-workflows[mlflow].
RUNTIME_CAPS_USED = {"none": {"bokeh", "prefect"}, "mlflow": RUNTIME_CAPS}
# Exact pins and one-minor ranges that are the pin guard's, not caps (see ml_workflows.deploy.pins).
PINNED = {"dask", "distributed", "ml-workflows"}

SCIPY_PROBE = """
import dask
import dask.array as da
import scipy
from dask_ml.linear_model import LogisticRegression

X = da.random.default_rng(0).random((400, 3), chunks=100)
y = X[:, 0] > 0.5
with dask.config.set(scheduler="sync"):
    try:
        LogisticRegression(solver="lbfgs", max_iter=5).fit(X, y)  # as model.py fits the sample model
    except TypeError as error:
        print(f"scipy {scipy.__version__}: fit FAILS: {error}")
    else:
        print(f"scipy {scipy.__version__}: fit works")
"""

BOKEH_PROBE = """
import bokeh
from distributed import LocalCluster

cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0")
cluster.close()
print(f"bokeh {bokeh.__version__}: cluster {cluster.status.name}")
"""

# (package, newest excluded release when the cap was last checked, probe, what the locked version prints,
#  what the excluded release prints)
PROBES = [
    ("scipy", "1.18.1", SCIPY_PROBE, r"fit works", r"fit FAILS: .*iprint"),
    ("bokeh", "3.10.2", BOKEH_PROBE, r"cluster closed", r"cluster closing"),
]


def requirements_with_lines(text: str) -> list[tuple[Requirement, str]]:
    """Each dependency string of [project] (its optional dependencies too) and [dependency-groups] with the source line
    it is on."""
    data = tomllib.loads(text)
    specs = list(data["project"].get("dependencies", []))
    for extra in data["project"].get("optional-dependencies", {}).values():
        specs.extend(extra)
    for group in data.get("dependency-groups", {}).values():
        specs.extend(s for s in group if isinstance(s, str))
    lines = text.splitlines()
    return [(Requirement(spec), next(line for line in lines if f'"{spec}"' in line)) for spec in specs]


def caps_with_reasons(text: str, where: str) -> dict[str, str]:
    """The upper bounds of a pyproject.toml, each of which must say why on its own line (a comment after it)."""
    capped = {}
    for req, line in requirements_with_lines(text):
        uppers = [s for s in req.specifier if s.operator in ("<", "<=", "==", "~=", "===")]
        if not uppers or req.name in PINNED:
            continue
        capped[req.name] = ",".join(str(s) for s in uppers)
        assert re.search(r'"\s*[,\]]\s*#\s+\S.{15,}', line), (
            f"{where}: {req.name}: an upper bound without its reason: {line.strip()}"
        )
    return capped


def caps_section(project) -> str:
    """The "Version caps" section of the project's documentation: README.md or the versions page it links."""
    sections = [
        text.split("## Version caps", 1)[1].split("\n## ", 1)[0]
        for rel in ("README.md", "docs/versions.md")
        if (project.path / rel).is_file() and "## Version caps" in (text := project.read(rel))
    ]
    assert len(sections) == 1, "the project documents its version caps in one 'Version caps' section"
    return sections[0]


def test_every_runtime_upper_bound_is_listed_and_gives_its_reason():
    capped = caps_with_reasons(RUNTIME_PYPROJECT.read_text(), "runtime/pyproject.toml")
    assert capped == {name: CAPS[name] for name in RUNTIME_CAPS}
    # What a bake installs under is the vendored wheel's metadata: the same caps.
    with zipfile.ZipFile(RUNTIME_WHEEL) as wheel:
        (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(wheel.read(name).decode())
    in_wheel = {}
    for spec in metadata.get_all("Requires-Dist"):
        req = Requirement(spec)
        uppers = [s for s in req.specifier if s.operator in ("<", "<=", "==", "~=", "===")]
        if uppers and req.name not in PINNED:
            in_wheel[req.name] = ",".join(str(s) for s in uppers)
    assert in_wheel == capped


@pytest.mark.parametrize("tracking", ["none", "mlflow"])
def test_every_upper_bound_is_listed_and_gives_its_reason(cookies, tracking):
    project = bake(cookies, tracking=tracking)
    capped = caps_with_reasons(project.read("pyproject.toml"), f"the {tracking} bake's pyproject.toml")
    assert capped == {name: CAPS[name] for name in PROJECT_CAPS[tracking]}
    (runtime,) = [r for r, _ in requirements_with_lines(project.read("pyproject.toml")) if r.name == "ml-workflows"]
    assert runtime.extras == ({"mlflow"} if tracking == "mlflow" else set())  # which runtime caps apply (the extra's)
    section = caps_section(project)
    for name in PROJECT_CAPS[tracking] | RUNTIME_CAPS_USED[tracking]:
        rows = [line for line in section.splitlines() if f"`{name}{CAPS[name]}`" in line]
        assert rows, f"'Version caps' does not explain {name}{CAPS[name]}"
        # and says where the cap is declared: the project's pyproject.toml, or the runtime (moves with its release)
        where = "runtime" if name in RUNTIME_CAPS else "pyproject.toml"
        assert all(where in row for row in rows), f"'Version caps' does not place {name}{CAPS[name]} in the {where}"


@pytest.mark.slow
@pytest.mark.xdist_group("installed")
@pytest.mark.parametrize(
    ("package", "excluded", "probe", "locked_says", "excluded_says"), PROBES, ids=[p[0] for p in PROBES]
)
def test_a_cap_that_excludes_a_release_still_holds(
    installed_project, tmp_path, package, excluded, probe, locked_says, excluded_says
):
    python = str(installed_project.path / ".venv" / "bin" / "python")
    env = {k: v for k, v in installed_project.env().items() if k != "PYTHONPATH"}

    def run(pythonpath: str | None) -> str:
        proc = subprocess.run(
            [python, "-c", probe],
            capture_output=True,
            text=True,
            timeout=600,
            env={**env, **({"PYTHONPATH": pythonpath} if pythonpath else {})},
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
        return proc.stdout.strip().splitlines()[-1]

    locked = run(None)
    assert re.search(locked_says, locked), f"the locked {package} fails the probe itself: {locked}"
    overlay = tmp_path / "overlay"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(overlay), f"{package}=={excluded}"],
        check=True,
        capture_output=True,
        env={**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        timeout=600,
    )
    newer = run(str(overlay))
    assert newer.startswith(f"{package} {excluded}:"), f"the probe did not import the overlay: {newer}"
    assert re.search(excluded_says, newer), (
        f"{package} {excluded} passes the probe now ({newer}): the cap {package}{CAPS[package]} no longer holds; "
        "drop it from the pyproject.toml that declares it (the generated project's or runtime/pyproject.toml), CAPS "
        "here and the 'Version caps' documentation, then re-run the slow tests"
    )
