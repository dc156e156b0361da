"""The docs stay true: every make target and prompt is documented, the README and docs/ show the system."""

import re

import pytest

from tests.baked import CONTEXT, TEMPLATE, bake

TARGET_RE = re.compile(r"^([a-zA-Z_-]+):.*## ", re.MULTILINE)


def section(text: str, heading: str) -> str:
    start = text.index(f"## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_generated_readme_documents_every_make_target(cookies):
    project = bake(cookies)
    targets = set(TARGET_RE.findall(project.read("Makefile")))
    table = section(project.read("README.md"), "Make targets")
    documented = set()
    for row in table.splitlines():
        if row.startswith("| `make ") or row.startswith("| `make"):
            cell = row.split("|")[1]
            documented |= set(re.findall(r"`make ([a-z-]+)", cell)) | set(re.findall(r"/ `([a-z-]+)`", cell))
    assert documented == targets, f"undocumented: {targets - documented}; not in Makefile: {documented - targets}"


def test_generated_docs_show_the_system_and_its_failure_modes(cookies):
    project = bake(cookies, aws_region="eu-west-1")
    readme = project.read("README.md")
    diagram = section(project.read("docs/deploy.md"), "How it fits together")
    assert "```mermaid\nflowchart" in diagram and "eu-west-1" in diagram
    for box in ("Flow run", "Dask scheduler", "Dask workers", "S3 bucket", "Prefect worker"):
        assert box in diagram
    trouble = project.read("docs/troubleshooting.md")
    for symptom in ("Mismatched versions", "AWS credentials", "No Docker engine", "Fargate tasks stop"):
        assert symptom in trouble
    answers = section(readme, "Your answers, and where they went")
    assert "| `aws_region` | eu-west-1 |" in answers
    # The README points to every page of docs/, and every page it points to exists.
    pages = {p.name for p in (project.path / "docs").glob("*.md")}
    linked = set(re.findall(r"\]\(docs/([a-z-]+\.md)(?:#[a-z0-9-]*)?\)", readme))
    assert linked == pages, f"not linked from the README: {pages - linked}; linked but missing: {linked - pages}"


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a page's headings (lower case, punctuation dropped, spaces to hyphens)."""
    body = re.sub(r"```.*?```", "", markdown, flags=re.S)
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", body, flags=re.M)
    }


@pytest.mark.parametrize(
    "answers",
    [{}, {"tracking": "mlflow", "code_source": "git", "prefect_worker": False, "ci": "none"}],
    ids=["default", "non-default"],
)
def test_generated_docs_links_reach_a_page_and_a_heading(cookies, answers):
    """Every relative link of README.md and docs/ names a file of the bake and, with #anchor, one of its headings
    (a section an answer turned off takes its links with it)."""
    project = bake(cookies, **answers)
    pages = ["README.md", *sorted(f"docs/{p.name}" for p in (project.path / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        text = re.sub(r"```.*?```", "", project.read(page), flags=re.S)
        text = re.sub(r"`[^`\n]*`", "", text)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if "://" in target:
                continue
            path, _, anchor = target.partition("#")
            resolved = (project.path / page).parent / path if path else project.path / page
            if not resolved.is_file():
                broken.append(f"{page}: {target} (no such file)")
            elif anchor and anchor not in anchors(resolved.read_text()):
                broken.append(f"{page}: {target} (no such heading)")
    assert not broken, broken


def test_template_readme_lists_every_prompt():
    readme = (TEMPLATE / "README.md").read_text()
    prompts = [k for k in CONTEXT if not k.startswith("_")]
    table = section(readme, "Prompts")
    missing = [p for p in prompts if f"`{p}`" not in table]
    assert not missing, f"prompts missing from the template README: {missing}"


def test_generated_readme_and_schema_list_the_dtypes_the_runtime_accepts(cookies):
    """Every dtype `Numeric` accepts (the runtime's NUMERIC_DTYPES), and no other, is named where users declare
    columns: the README's "Bring your own data and model" and schema.py's docstring."""
    columns = (TEMPLATE / "runtime" / "src" / "ml_workflows" / "columns.py").read_text()  # not installed here
    declared = re.search(r"^INTEGER_DTYPES = .*\nNUMERIC_DTYPES = .*$", columns, re.M)
    accepted = set(re.findall(r'"(\w+)"', declared.group(0)))
    assert len(accepted) == 6, accepted
    project = bake(cookies)
    dtype = r"\b(?:u?int|float)\d+\b"
    assert set(re.findall(dtype, section(project.read("README.md"), "Bring your own data and model"))) == accepted
    schema_doc = project.read(f"src/{project.package}/schema.py").split('"""')[1]
    assert set(re.findall(dtype, schema_doc)) == accepted
