"""Hostile free-text answers either bake a safe project (the text arrives as data) or stop cleanly."""

import tomllib

import pytest
import yaml

from tests.baked import BakedProject, bake
from tests.test_bake import assert_clean, runtime_view

HOSTILE = [
    "Quote \" and apostrophe ' inside",
    "Triple \"\"\" and ''' quotes",
    "Braces {{ cookiecutter.project_slug }} and {% if 1 %}x{% endif %}",
    "Jinja {{ 7 * 7 }} math",
    "Back\\slash \\n \\u0041 and trailing\\",
    "Ünïcödé Prøjéct 日本語 🚀",
    "Shell $(touch pwned) `id` ; rm -rf / && echo",
    "<script>alert(1)</script> & [link](javascript:x)",
    "Toml = [inline] # comment",
    "x" * 80,
    "Zero\u200bwidth, bidi \u202e override, family 👨\u200d👩\u200d👧, tag \U000e0041 and \ufeff",
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_text_is_data_not_code(cookies, tmp_path, text):
    answers = {"project_name": text, "description": text, "author_name": text, "project_slug": "hostile-case"}
    result = cookies.bake(extra_context=answers)
    if result.exit_code != 0:
        # cookiecutter renders --no-input answers as Jinja; one it cannot render stops before any file is written.
        assert "Unable to render variable" in str(result.exception)
        assert not any((tmp_path / "cookies").rglob("*"))
        return
    project = BakedProject(result.project_path, result.context)
    # What cookiecutter resolved (it evaluates Jinja in --no-input answers) must arrive verbatim, as data.
    text = project.context["description"]
    meta = tomllib.loads(project.read("pyproject.toml"))["project"]
    assert meta["description"] == text
    assert meta["authors"][0]["name"] == text
    assert text in project.read("README.md")
    assert yaml.safe_load(project.read("infrastructure/Pulumi.yaml"))["description"] == text
    assert not list(project.path.parent.glob("pwned")) and not (project.path / "pwned").exists()
    assert_clean(project)


# Answers that read as a number to a person (and to int()) but are no Python literal as written. max_workers is
# rendered into code: `Project(max_workers=...)` in src/<package>/__init__.py, which every run imports.
NUMBERISH = ["08", " 8", "8 ", "\u0668", "\u00b2", "+8", "8.0", "1_0", "0x10"]  # U+0668: Arabic-Indic eight


@pytest.mark.parametrize("value", NUMBERISH, ids=[ascii(v) for v in NUMBERISH])
def test_a_numberish_max_workers_is_refused_or_declared_as_that_number(cookies, capfd, tmp_path, value):
    """Either the pre-gen hook refuses it with its one line, or the bake declares exactly that number: the package's
    __init__.py parses, the runtime's `Project` accepts it and reads int(value), and the bake is clean."""
    result = cookies.bake(extra_context={"max_workers": value})
    if result.exit_code != 0:
        err = capfd.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("ERROR: ")]
        assert len(lines) == 1 and lines[0].startswith("ERROR: max_workers "), err
        assert "Traceback" not in err, err
        assert list((tmp_path / "cookies" / "bake00").iterdir()) == []
        return
    project = BakedProject(result.project_path, result.context)
    assert runtime_view(project.path, project.package)["Project.max_workers"] == int(value)
    assert_clean(project)


@pytest.mark.parametrize(
    ("name", "expected_slug"),
    [("Ünïcödé Prøjéct", "unicode-prjct"), ("Churn: Model v2!", "churn-model-v2"), ("  spaced   out  ", "spaced-out")],
)
def test_project_name_slugifies(cookies, name, expected_slug):
    project = bake(cookies, project_name=name)
    assert project.path.name == project.context["project_slug"]
    assert project.context["project_slug"].startswith(expected_slug.split("-")[0])
    assert project.context["package_name"] == project.context["project_slug"].replace("-", "_")


@pytest.mark.parametrize("name", ["x" * 80, "42 is the answer", "A", "!!!"])
def test_name_without_a_usable_slug_stops_cleanly(cookies, capfd, tmp_path, name):
    result = cookies.bake(extra_context={"project_name": name})
    err = capfd.readouterr().err
    assert result.exit_code != 0
    assert [line for line in err.splitlines() if line.startswith("ERROR: ")][0].startswith("ERROR: project_slug ")
    assert list((tmp_path / "cookies" / "bake00").iterdir()) == []
