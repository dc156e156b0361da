"""The pre-gen hook's rules, called directly (fast), and its refusals seen through a real bake."""

import importlib.util
import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

from tests.baked import CONTEXT, TEMPLATE, bake


def _load_hook(name):
    spec = importlib.util.spec_from_file_location(name, TEMPLATE / "hooks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pre_gen = _load_hook("pre_gen_project")


def answers(**overrides):
    """The default answers as cookiecutter renders them, with overrides."""
    ctx = {k: v for k, v in CONTEXT.items() if not k.startswith("__")}
    ctx.update(
        project_slug="batch-scoring",
        package_name="batch_scoring",
        python_version="3.12",
        nat_strategy="single",
        worker_vcpus="1",
        log_retention_days="30",
        ci="github",
        code_source="image",
        tracking="none",
        dask_access_cidr=CONTEXT["vpc_cidr"],
    )
    ctx.update(overrides)
    return ctx


def test_defaults_are_valid():
    assert pre_gen.validate(answers()) == []


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("project_slug", "Batch_Scoring", "lowercase letters"),
        ("project_slug", "ab", "3-32 characters"),
        ("project_slug", "a" * 33, "3-32 characters"),
        ("project_slug", "-scoring", "starting with a letter"),
        ("project_slug", "scoring--x", "single hyphens"),
        ("project_slug", "../escape", "lowercase letters"),
        ("package_name", "class", "not a keyword"),
        ("package_name", "json", "shadow the module 'json'"),
        ("package_name", "dask", "shadow the module 'dask'"),
        ("package_name", "prefect", "shadow the module 'prefect'"),
        ("package_name", "pulumi", "shadow the module 'pulumi'"),
        ("package_name", "1scoring", "Python identifier"),
        ("package_name", "my-pkg", "Python identifier"),
        ("dask_version", "2026.8.0", "no published ghcr.io/dask/dask image"),
        ("dask_version", "2025.9.0", "no published ghcr.io/dask/dask image"),
        ("dask_version", "latest", "a Dask release such as"),
        ("aws_region", "us-east-7", "choose one of"),
        ("aws_region", "US-EAST-1", "choose one of"),
        ("vpc_cidr", "10.0.0.0/8", "/16 to /24"),
        ("vpc_cidr", "8.8.0.0/16", "private IPv4"),
        ("vpc_cidr", "10.0.0.1/16", "private IPv4"),
        ("vpc_cidr", "not-a-cidr", "private IPv4"),
        ("dask_access_cidr", "0.0.0.0/0", "never 0.0.0.0/0"),
        ("dask_access_cidr", "0.0.0.0/1", "never 0.0.0.0/0"),
        ("dask_access_cidr", "::/0", "IPv4 network"),
        ("dask_access_cidr", "203.0.113.7/33", "IPv4 network"),
        ("use_fargate_spot", "maybe", "yes or no"),
        ("max_workers", "0", "from 1 to 100"),
        ("max_workers", "101", "from 1 to 100"),
        ("max_workers", "eight", "from 1 to 100"),
        ("log_retention_days", "10", "one of the periods CloudWatch accepts (1, 3, 5, 7, 14, 30,"),
        ("log_retention_days", "030", "3288, 3653)"),
        ("log_retention_days", "forever", "periods CloudWatch accepts"),
        ("author_email", "nobody", "e-mail address"),
        ("project_name", "", "is empty"),
        ("project_name", "two\nlines", "one line"),
        ("description", "C1 control \x85 inside", "one line"),
        ("author_name", "tab\there", "one line"),
        ("project_name", "x" * 81, "at most 80"),
        ("description", "x" * 201, "at most 200"),
    ],
)
def test_bad_answer_names_field_value_and_allowed(field, value, expected):
    errors = pre_gen.validate(answers(**{field: value}))
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{field} "), errors[0]
    assert expected in errors[0]
    assert repr(value)[:40] in errors[0] or len(repr(value)) > 60


def test_python_without_image_for_that_dask_is_refused_with_the_alternatives():
    ctx = answers(_dask_images={"2026.7.1": ["3.12", "3.13"]}, python_version="3.11")
    (error,) = pre_gen.validate(ctx)
    assert error.startswith("python_version '3.11' has no ghcr.io/dask/dask:2026.7.1 image")
    assert "choose python 3.12, 3.13" in error


@pytest.mark.parametrize("value", ["yes", "no", "true", "False", True, False])
def test_spot_accepts_yes_no_words(value):
    assert pre_gen.validate(answers(use_fargate_spot=value)) == []


def test_nested_slug_dirs_are_removed(tmp_path):
    project = tmp_path / "a" / "b"
    project.mkdir(parents=True)
    pre_gen.remove_created_parents(project, "a/b")
    assert list(tmp_path.iterdir()) == []


def test_nested_slug_cleanup_never_touches_existing_content(tmp_path):
    project = tmp_path / "a" / "b"
    project.mkdir(parents=True)
    (tmp_path / "a" / "keep.txt").write_text("mine")
    pre_gen.remove_created_parents(project, "a/b")
    assert (tmp_path / "a" / "keep.txt").exists() and project.exists()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"project_slug": "Bad Slug"}, "project_slug"),
        ({"project_slug": "nested/slug"}, "project_slug"),
        ({"project_slug": "../escape"}, "project_slug"),
        ({"package_name": "import"}, "package_name"),
        ({"dask_version": "2026.8.0"}, "dask_version"),
        ({"python_version": "3.12", "dask_version": "2025.9.0"}, "dask_version"),
        ({"aws_region": "mars-north-1"}, "aws_region"),
        ({"dask_access_cidr": "0.0.0.0/0"}, "dask_access_cidr"),
        ({"max_workers": "1000"}, "max_workers"),
    ],
)
def test_refused_bake_prints_one_line_and_leaves_nothing(cookies, capfd, tmp_path, extra, field):
    result = cookies.bake(extra_context=extra)
    err = capfd.readouterr().err
    assert result.exit_code != 0 and result.project_path is None
    lines = [line for line in err.splitlines() if line.startswith("ERROR: ")]
    assert len(lines) == 1 and lines[0].startswith(f"ERROR: {field} "), err
    # Nothing left: not in the output directory, nor beside it (a '../' slug).
    assert [p.name for p in tmp_path.iterdir()] == ["cookies"]
    assert [p.name for p in (tmp_path / "cookies").iterdir()] == ["bake00"]
    assert list((tmp_path / "cookies" / "bake00").iterdir()) == []


CHOICES = {k: v for k, v in CONTEXT.items() if isinstance(v, list) and not k.startswith("_")}


def test_choice_prompts_are_the_ones_the_hook_leaves_to_cookiecutter():
    assert set(CHOICES) == {"python_version", "nat_strategy", "worker_vcpus", "ci", "code_source", "tracking"}


OUTSIDE = [("python_version", "3.10"), ("nat_strategy", "none"), ("worker_vcpus", "3"), ("ci", "jenkins"),
           ("code_source", "s3"), ("tracking", "wandb")]  # fmt: skip


@pytest.mark.parametrize(("field", "value"), OUTSIDE)
def test_answer_outside_a_choice_list_is_refused_by_cookiecutter(cookies, tmp_path, field, value):
    """The hook has no check for choice answers: cookiecutter refuses them first, naming the choices."""
    assert value not in CHOICES[field]
    result = cookies.bake(extra_context={field: value})
    assert result.exit_code != 0 and result.project_path is None
    message = str(result.exception)
    assert f"{value} provided for choice variable {field}" in message
    assert all(choice in message for choice in CHOICES[field])
    assert not any((tmp_path / "cookies").rglob("*"))


# --- log retention: one list (cookiecutter.json's _log_retention_days) for the hook and the infrastructure ---


@pytest.mark.parametrize("days", CONTEXT["_log_retention_days"])
def test_every_cloudwatch_retention_period_is_accepted(days):
    assert pre_gen.validate(answers(log_retention_days=str(days))) == []


def test_the_retention_default_and_prompt_examples_are_in_the_list():
    allowed = CONTEXT["_log_retention_days"]
    assert len(allowed) == len(set(allowed)) == 22 and allowed == sorted(allowed)
    assert int(CONTEXT["log_retention_days"]) in allowed
    examples = re.findall(r"\d+", CONTEXT["__prompts__"]["log_retention_days"])
    assert examples and all(int(days) in allowed for days in examples)


def test_the_infrastructure_reads_the_same_retention_list(cookies):
    project = bake(cookies, log_retention_days="3653")
    assert json.loads(project.read("infrastructure/infra/log_retention_days.json")) == CONTEXT["_log_retention_days"]
    assert "LOG_RETENTION_DAYS = (" not in project.read("infrastructure/infra/settings.py")  # data, not a copy
    assert yaml.safe_load(project.read("infrastructure/Pulumi.yaml"))["config"]["log_retention_days"]["default"] == 3653


# --- a slug derived from a long project_name ---

LONG_NAME = "Customer Lifetime Value Propensity Scoring"  # 42 characters: its slug is too long


def test_derived_slug_refusal_says_where_it_came_from_and_how_to_pass_one():
    slug = "customer-lifetime-value-propensity-scoring"
    (error,) = pre_gen.validate(answers(project_name=LONG_NAME, project_slug=slug), derived_slug=slug)
    assert error.startswith(f"project_slug '{slug}', derived from project_name '{LONG_NAME}', is not allowed: 3-32")
    assert "project_slug=customer-lifetime-value`" in error
    assert pre_gen.check_slug("customer-lifetime-value") is None


def test_a_typed_slug_is_refused_without_mentioning_the_name():
    (error,) = pre_gen.validate(answers(project_slug="a" * 33), derived_slug="batch-scoring")
    assert error.startswith("project_slug 'aaa") and "derived" not in error


@pytest.mark.parametrize(
    "slug", ["customer-lifetime-value-propensity-scoring", "x" * 80, "42-is-the-answer", "a", "!!!", "a--b", "-x-"]
)
def test_the_suggested_slug_is_always_valid(slug):
    assert pre_gen.check_slug(pre_gen.suggest_slug(slug)) is None


def test_the_hook_derives_the_slug_as_cookiecutter_json_does():
    source = (TEMPLATE / "hooks" / "pre_gen_project.py").read_text()
    (expression,) = re.findall(r'r""" \{\{ \((.+)\) \| tojson \}\} """', source)
    assert CONTEXT["project_slug"] == "{{ " + expression + " }}"


def test_a_long_project_name_bake_stops_with_the_way_out_and_the_way_out_works(cookies, capfd):
    refused = cookies.bake(extra_context={"project_name": LONG_NAME})
    assert refused.exit_code != 0
    (line,) = [x for x in capfd.readouterr().err.splitlines() if x.startswith("ERROR: ")]
    assert f"derived from project_name '{LONG_NAME}'" in line
    suggested = re.search(r"project_slug=([a-z0-9-]+)`", line)[1]
    project = bake(cookies, project_name=LONG_NAME, project_slug=suggested)
    assert project.path.name == suggested and project.package == suggested.replace("-", "_")


# --- the post-gen hook runs the pin checker of the project's runtime, read from its vendored wheel ---


def _template_copy(dest: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=TEMPLATE,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for rel in files:
        if (TEMPLATE / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(TEMPLATE / rel, dest / rel)
    return dest


VENDOR = "{{cookiecutter.project_slug}}/vendor"
PINS = "ml_workflows/deploy/pins.py"  # in the wheel (post_gen_project.PINS_MODULE)


def _wheel(template: Path) -> Path:
    (wheel,) = (template / VENDOR).glob("ml_workflows-*.whl")
    return wheel


def _append_to_pins(template: Path, text: str) -> None:
    """Rewrite the template's vendored wheel with `text` appended to the pin checker, every other member as it was."""
    wheel = _wheel(template)
    with zipfile.ZipFile(wheel) as old:
        members = [(info, old.read(info)) for info in old.infolist()]
    assert PINS in [info.filename for info, _ in members]
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as new:
        for info, data in members:
            new.writestr(info, data + text.encode() if info.filename == PINS else data)


def _python_version(template: Path) -> None:
    (template / "{{cookiecutter.project_slug}}/.python-version").write_text("3.99\n")


def _crashing_checker(template: Path) -> None:
    _append_to_pins(template, "\nraise RuntimeError('checker broke')\n")


def _another_runtime(template: Path) -> None:
    """A wheel that runs (its checker unchanged but for a comment) yet is not the one the shipped locks hash."""
    _append_to_pins(template, "\n# not the released runtime\n")


def _unreadable_wheel(template: Path) -> None:
    _wheel(template).write_bytes(b"not a zip file")


def _second_wheel(template: Path) -> None:
    wheel = _wheel(template)
    shutil.copy2(wheel, wheel.with_name("ml_workflows-0.0.1-py3-none-any.whl"))


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_python_version, ".python-version:1: python 3.99 here, but"),
        (_crashing_checker, "RuntimeError: checker broke"),
        (_another_runtime, "records another hash of the runtime than vendor/ml_workflows-"),
        (_unreadable_wheel, "zipfile.BadZipFile"),
        (_second_wheel, "vendor/ holds 2 ml_workflows wheels, not one"),
    ],
    ids=["pins-disagree", "checker-crashes", "wheel-not-the-locked-one", "wheel-unreadable", "two-wheels"],
)
def test_a_failing_pin_check_fails_the_bake_with_its_reason(tmp_path, capfd, edit, expected):
    template = _template_copy(tmp_path / "template")
    edit(template)
    with pytest.raises(FailedHookException):
        cookiecutter(str(template), no_input=True, output_dir=str(tmp_path / "out"))
    err = capfd.readouterr().err
    assert expected in err
    assert "ERROR: the generated project failed its own pin check (see above)" in err


def test_the_pin_check_leaves_no_bytecode_in_the_project(cookies):
    project = bake(cookies)
    assert not list(project.path.rglob("__pycache__"))
    assert not list(project.path.rglob("*.pyc"))
