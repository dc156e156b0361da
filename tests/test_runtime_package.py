"""The runtime package (runtime/): the wheel every bake carries is built from exactly these sources, reproducibly,
at the version the template pins; its code is plain Python that no bake renders."""

from __future__ import annotations

import json
import re
import sys
import tomllib
import zipfile

from tests.baked import TEMPLATE

sys.path.insert(0, str(TEMPLATE / "tools"))
import runtime_wheel  # noqa: E402

RUNTIME = TEMPLATE / "runtime"


def test_the_vendored_wheel_holds_exactly_the_runtime_sources():
    assert runtime_wheel.check() == []


def test_a_rebuild_is_byte_identical(tmp_path):
    """Reproducible: the hash every shipped lock records stays valid until the sources change."""
    [vendored] = sorted(runtime_wheel.VENDOR.glob("ml_workflows-*.whl"))
    rebuilt = runtime_wheel.build(tmp_path)
    assert rebuilt.name == vendored.name and rebuilt.read_bytes() == vendored.read_bytes()


def test_one_version_everywhere():
    version = tomllib.loads((RUNTIME / "pyproject.toml").read_text())["project"]["version"]
    init = (RUNTIME / "src" / "ml_workflows" / "__init__.py").read_text()
    assert re.search(rf'^__version__ = "{re.escape(version)}"$', init, re.M)
    assert json.loads((TEMPLATE / "cookiecutter.json").read_text())["_runtime_version"] == version
    assert runtime_wheel.wheel_name() == f"ml_workflows-{version}-py3-none-any.whl"
    assert f"ml-workflows {version}" in (TEMPLATE / "CHANGELOG.md").read_text()  # every release says what changed


def test_the_wheel_declares_its_dependencies_extras_and_pytest_plugin():
    [vendored] = sorted(runtime_wheel.VENDOR.glob("ml_workflows-*.whl"))
    with zipfile.ZipFile(vendored) as wheel:
        info = vendored.name.split("-py3")[0] + ".dist-info"
        metadata = wheel.read(f"{info}/METADATA").decode()
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
        record = wheel.read(f"{info}/RECORD").decode()
        names = wheel.namelist()
    assert "Requires-Dist: prefect>=3.9.1,<4" in metadata
    assert (
        "Provides-Extra: mlflow" in metadata and "Requires-Dist: mlflow-skinny>=3.5,<4 ; extra == 'mlflow'" in metadata
    )
    assert "[pytest11]\nml_workflows = ml_workflows.testing.plugin" in entry_points
    assert all(f"{name}," in record for name in names)  # RECORD lists every file with its hash
    assert "ml_workflows/prices.json" in names and "ml_workflows/testing/netguard/sitecustomize.py" in names


def test_the_runtime_is_plain_python_with_no_bake_time_values():
    """Nothing in the runtime is rendered at bake time: a project's facts come from its Project declaration, its
    Pulumi files and its stack outputs."""
    leftovers = []
    for path in sorted((RUNTIME / "src").rglob("*.py")):
        for no, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"cookiecutter\.\w|\{%", line):
                leftovers.append(f"{path.relative_to(TEMPLATE)}:{no}: {line.strip()}")
    assert leftovers == []
