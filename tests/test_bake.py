"""Baking the template: file sets, every choice, every supported version pair, lint-clean output."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.baked import CONTEXT, JINJA_LEFTOVER, TEMPLATE, bake, project_files, supported_pairs

TEMPLATE_PROJECT = TEMPLATE / "{{cookiecutter.project_slug}}"
RUFF = Path(sys.executable).parent / "ruff"

# Non-default answers, one at a time (every choice value, plus free-form answers that change files).
VARIATIONS = [
    {"python_version": "3.11"},
    {"python_version": "3.13"},
    {"nat_strategy": "per-az"},
    {"use_fargate_spot": False},
    {"worker_vcpus": "2"},
    {"worker_vcpus": "4"},
    {"log_retention_days": "7"},
    {"log_retention_days": "365"},
    {"ci": "none"},
    {"code_source": "git"},
    {"aws_region": "eu-west-1"},
    {"vpc_cidr": "172.20.0.0/20", "dask_access_cidr": "172.20.0.0/20"},
    {"dask_access_cidr": "203.0.113.7/32"},
    {"max_workers": "32"},
    {"project_name": "Churn Model", "author_name": "Ana Lytics", "author_email": "ana@corp.example"},
]


def expected_files(context: dict) -> set[str]:
    """The template's files with their names rendered, less what the post-gen hook prunes for these answers."""
    files = {
        p.relative_to(TEMPLATE_PROJECT).as_posix().replace("{{cookiecutter.package_name}}", context["package_name"])
        for p in TEMPLATE_PROJECT.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    if context["ci"] == "none":
        files = {f for f in files if not f.startswith(".github/")}
    return files | {".cruft.json"}  # written by the post-gen hook


def assert_clean(project) -> None:
    """No unrendered Jinja, Python that compiles, TOML that parses, ruff-clean."""
    answers = [str(v) for k, v in project.context.items() if not k.startswith("_") and isinstance(v, str)]
    for rel in project_files(project.path):
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
    assert_clean(project)


def test_leftover_check_sees_past_short_answers_and_catches_real_leftovers(cookies):
    project = bake(cookies, description="b")  # "b" occurs inside allowed placeholders such as {{ webhook_url }}
    assert_clean(project)
    readme = project.path / "README.md"
    readme.write_text(readme.read_text() + "\n{{ cookiecutter.forgotten }}\n")
    with pytest.raises(AssertionError, match="unrendered Jinja in README.md"):
        assert_clean(project)


@pytest.mark.parametrize("answers", VARIATIONS, ids=lambda a: ",".join(f"{k}={v}" for k, v in a.items()))
def test_each_answer_varied_alone(cookies, answers):
    project = bake(cookies, **answers)
    assert project_files(project.path) == expected_files(project.context)
    text = "\n".join((project.path / f).read_text() for f in project_files(project.path))
    for key, value in answers.items():
        if isinstance(value, str) and key != "ci":
            assert value in text, f"answer {key}={value!r} is not used anywhere in the baked project"
    assert_clean(project)


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


def test_supported_table_is_consistent():
    assert CONTEXT["python_version"][0] == "3.12"  # the documented default
    assert set(CONTEXT["python_version"]) == set(CONTEXT["_supported_python"])
    assert CONTEXT["dask_version"] in CONTEXT["_dask_images"]
    assert supported_pairs(), "no (dask, python) pair is bakeable"
