"""The pre-gen hook's rules, called directly (fast), and its refusals seen through a real bake."""

import importlib.util

import pytest

from tests.baked import CONTEXT, TEMPLATE


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
        ("python_version", "3.10", "choose one of 3.11, 3.12, 3.13"),
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
        ("nat_strategy", "none", "single, per-az"),
        ("use_fargate_spot", "maybe", "yes or no"),
        ("worker_vcpus", "3", "1, 2, 4"),
        ("max_workers", "0", "from 1 to 100"),
        ("max_workers", "101", "from 1 to 100"),
        ("max_workers", "eight", "from 1 to 100"),
        ("log_retention_days", "10", "choose one of"),
        ("ci", "jenkins", "github, none"),
        ("tracking", "wandb", "choose one of none, mlflow"),
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


def test_answer_outside_a_choice_list_is_refused_by_cookiecutter(cookies, tmp_path):
    result = cookies.bake(extra_context={"python_version": "3.9"})
    assert result.exit_code != 0 and result.project_path is None
    assert "3.9" in str(result.exception)
    assert not any((tmp_path / "cookies").rglob("*"))
