"""The project's own version pins agree, and the installed environment matches them."""

from ml_workflows.deploy import pins
from ml_workflows.project import root

ROOT = root()  # the project the tests run in (its directory is the working directory)


def _python_version() -> str:
    """The project's Python minor version, as its .python-version names it."""
    report = pins.Report()
    pins.read_python_version(ROOT, report)
    [claim] = report.claims
    return claim.value


def test_project_pins_agree():
    report = pins.check(ROOT)
    assert report.problems == []
    assert {c.file for c in report.claims} >= {"pyproject.toml", "Dockerfile", ".python-version"}


def test_installed_environment_matches_pins():
    report = pins.check(ROOT, environment=True)
    assert report.problems == []
    assert any(c.file == "(this environment)" and c.what == "dask" for c in report.claims)


def test_cli_reports_a_disagreement(tmp_path, capsys):
    for name in ("pyproject.toml", "Dockerfile", ".python-version"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    dockerfile = tmp_path / "Dockerfile"
    original = dockerfile.read_text()
    dockerfile.write_text(original.replace(f"-py{_python_version()}", "-py3.99"))
    assert dockerfile.read_text() != original
    assert pins.main(["--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Dockerfile:" in err and "python 3.99 here" in err
