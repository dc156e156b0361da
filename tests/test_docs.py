"""The docs stay true: every make target and prompt is documented, the README shows the system."""

import re

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


def test_generated_readme_shows_the_system_and_its_failure_modes(cookies):
    readme = bake(cookies, aws_region="eu-west-1").read("README.md")
    diagram = section(readme, "How it fits together")
    assert "```mermaid\nflowchart" in diagram and "eu-west-1" in diagram
    for box in ("Flow run", "Dask scheduler", "Dask workers", "S3 bucket", "Prefect worker"):
        assert box in diagram
    trouble = section(readme, "Troubleshooting")
    for symptom in ("Mismatched versions", "AWS credentials", "No Docker engine", "Fargate tasks stop"):
        assert symptom in trouble
    answers = section(readme, "Your answers, and where they went")
    assert "| `aws_region` | eu-west-1 |" in answers


def test_template_readme_lists_every_prompt():
    readme = (TEMPLATE / "README.md").read_text()
    prompts = [k for k in CONTEXT if not k.startswith("_")]
    table = section(readme, "Prompts")
    missing = [p for p in prompts if f"`{p}`" not in table]
    assert not missing, f"prompts missing from the template README: {missing}"
