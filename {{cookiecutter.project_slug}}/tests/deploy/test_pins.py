"""The project's own version pins agree, and the installed environment matches them."""

from pathlib import Path

from {{ cookiecutter.package_name }}.deploy import pins

ROOT = Path(__file__).resolve().parents[2]


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
    dockerfile.write_text(dockerfile.read_text().replace("-py{{ cookiecutter.python_version }}", "-py3.99"))
    assert pins.main(["--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Dockerfile:" in err and "python 3.99 here" in err
