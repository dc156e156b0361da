"""Upper bounds in the generated pyproject.toml: each carries its reason, and a cap that excludes a released
version is shown to still be needed (a cap that no longer holds is a defect).

The probes install the newest excluded release over the installed default project (pip --target, no
dependencies, first on PYTHONPATH) and run the smallest use that broke; the same use must work with the
locked version. When a probe stops failing, upstream has fixed it: drop the cap, re-lock, run the tests.
"""

from __future__ import annotations

import re
import subprocess
import tomllib

import pytest
from packaging.requirements import Requirement

from tests.baked import bake

# Every upper bound the generated project declares, and why (README "Version caps" says the same).
CAPS = {
    "scipy": "<1.18",  # probed below: dask-glm's lbfgs breaks
    "bokeh": "<3.10",  # probed below: the scheduler's dashboard does not stop
    "prefect": "<4",  # major version: nothing released is excluded
    "pulumi": "<4",  # major version: nothing released is excluded
    "pulumi-aws": "<8",  # major version: nothing released is excluded
}
# Exact pins and one-minor ranges that are the pin guard's, not caps (see pins.py).
PINNED = {"dask", "distributed"}

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
    """Each dependency string of [project] and [dependency-groups] with the source line it is on."""
    data = tomllib.loads(text)
    specs = list(data["project"]["dependencies"])
    for group in data.get("dependency-groups", {}).values():
        specs.extend(s for s in group if isinstance(s, str))
    lines = text.splitlines()
    return [(Requirement(spec), next(line for line in lines if f'"{spec}"' in line)) for spec in specs]


def test_every_upper_bound_is_listed_and_gives_its_reason(cookies):
    project = bake(cookies)
    capped = {}
    for req, line in requirements_with_lines(project.read("pyproject.toml")):
        uppers = [s for s in req.specifier if s.operator in ("<", "<=", "==", "~=", "===")]
        if not uppers or req.name in PINNED:
            continue
        capped[req.name] = ",".join(str(s) for s in uppers)
        assert re.search(r'",\s+#\s+\S.{15,}', line), f"{req.name}: an upper bound without its reason: {line.strip()}"
    assert capped == CAPS
    readme = project.read("README.md")
    section = readme.split("## Version caps", 1)[1].split("\n## ", 1)[0]
    for name, cap in CAPS.items():
        assert f"`{name}{cap}`" in section, f"README 'Version caps' does not explain {name}{cap}"


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
        "drop it from the generated pyproject.toml, CAPS here and README 'Version caps', then re-run the slow tests"
    )
