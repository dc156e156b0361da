"""Property: any answers either bake a clean project or stop with one clear line, leaving nothing behind.

Runs the real `cookiecutter` command in a subprocess per example, so the hooks' output and
exit codes are seen exactly as a user sees them.
"""

import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.baked import CONTEXT, TEMPLATE, project_files
from tests.test_bake import assert_clean

COOKIECUTTER = Path(sys.executable).parent / "cookiecutter"
FIELDS = [k for k in CONTEXT if not k.startswith("_")]

free_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00", exclude_categories=["Cs"]), max_size=90
)
jinja_ish = st.sampled_from(["{{ 7*7 }}", "{% raw %}", "{{ cookiecutter.aws_region }}", '"""', "\\", "'", "${{ x }}"])
structured = {
    "project_slug": st.one_of(st.from_regex(r"[a-z][a-z0-9-]{0,40}", fullmatch=True), free_text),
    "package_name": st.one_of(st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True), free_text),
    "aws_region": st.one_of(st.sampled_from(CONTEXT["_aws_regions"]), free_text),
    "vpc_cidr": st.one_of(st.sampled_from(["10.0.0.0/16", "192.168.0.0/24", "10.0.0.0/8", "1.2.3.0/24"]), free_text),
    "dask_access_cidr": st.one_of(st.sampled_from(["0.0.0.0/0", "203.0.113.7/32", "10.0.0.0/16"]), free_text),
    "max_workers": st.one_of(st.integers(-5, 200).map(str), free_text),
    "author_email": st.one_of(st.emails().map(str), free_text),
    "dask_version": st.one_of(st.sampled_from(["2026.7.1", "2026.8.0", "2025.9.0"]), free_text),
    "use_fargate_spot": st.sampled_from(["yes", "no", "maybe", "true"]),
}
answers = st.fixed_dictionaries(
    {},
    optional={
        "project_name": st.one_of(free_text, jinja_ish, st.just("Batch Scoring")),
        "description": st.one_of(free_text, jinja_ish),
        "author_name": st.one_of(free_text, jinja_ish),
        **structured,
    },
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers=answers)
def test_any_answers_bake_clean_or_stop_with_one_line(answers):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        out.mkdir()
        proc = subprocess.run(
            [str(COOKIECUTTER), "--no-input", "-o", str(out), str(TEMPLATE), *[f"{k}={v}" for k, v in answers.items()]],
            capture_output=True,
            text=True,
            timeout=120,
        )
        baked = [p for p in out.iterdir()]
        if proc.returncode != 0:
            errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR: ")]
            ours = len(errors) == 1 and errors[0].split()[1] in FIELDS
            # cookiecutter's own refusals, before any hook: a value outside a choice list or not a yes/no for a
            # boolean (its last line names the variable), an answer it cannot render as Jinja (it renders
            # --no-input answers), and an explicitly empty slug (the project directory would be the output dir).
            said = proc.stdout + proc.stderr
            last = said.strip().splitlines()[-1] if said.strip() else ""
            theirs = not errors and (
                (last.startswith("ValueError: ") and "provided for" in last and "variable" in last)
                or "Unable to render variable" in said
                or (answers.get("project_slug") == "" and "already exists" in said)
            )
            assert ours or theirs, (proc.stdout + proc.stderr)[-2000:]
            if ours:  # our line comes first, before cookiecutter's own report of the failed hook
                assert "Traceback" not in proc.stderr.split("ERROR: ")[0]
            assert baked == [], "a refused bake left files behind"
            return
        assert len(baked) == 1
        project = baked[0]
        state = json.loads((project / ".cruft.json").read_text())["context"]["cookiecutter"]
        meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
        assert meta["description"] == state["description"]
        assert meta["authors"][0] == {"name": state["author_name"], "email": state["author_email"]}
        assert ".python-version" in project_files(project)

        class Baked:  # what assert_clean needs
            path = project
            context = state

        assert_clean(Baked)
