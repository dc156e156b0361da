"""Refuse bad answers before cookiecutter writes a single project file.

The first invalid answer prints one line: the field, the value and what is allowed. The hook
exits non-zero and cookiecutter deletes the (still empty) project directory.

The answers arrive as JSON rendered by cookiecutter (``tojson``), never pasted into code,
so quotes, braces or Jinja syntax in an answer cannot change this script. The validation
functions take a plain dict, so the tests import and call them directly.
"""

from __future__ import annotations

import ipaddress
import json
import keyword
import os
import re
import sys
import unicodedata
from pathlib import Path

SLUG_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
SLUG_MAX = 32  # leaves room for Pulumi's 8-char suffix in 63/64-char S3, ECR and IAM names
PACKAGE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
DASK_VERSION_RE = re.compile(r"^\d{4}\.\d{1,2}\.\d+$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
BOOL_WORDS = {"yes": True, "y": True, "true": True, "1": True, "no": False, "n": False, "false": False, "0": False}


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"


def _single_line(field: str, value: str, max_len: int) -> str | None:
    if not value.strip():
        return f"{field} {_show(value)} is empty; give a non-empty value"
    if len(value) > max_len or any(unicodedata.category(c) == "Cc" for c in value):
        return f"{field} {_show(value)} is not allowed: one line of at most {max_len} characters"
    return None


def _choice(ctx: dict, field: str, allowed: list[str]) -> str | None:
    """For free-text answers checked against a list (choice prompts are checked by cookiecutter itself)."""
    value = ctx[field]
    if str(value) not in allowed:
        return f"{field} {_show(value)} is not allowed: choose one of {', '.join(allowed)}"
    return None


def check_slug(slug: str, derived_from: str | None = None) -> str | None:
    """``derived_from``: the project_name the slug was derived from (the user typed no slug), else None."""
    if len(slug) < 3 or len(slug) > SLUG_MAX or not SLUG_RE.match(slug):
        rule = (
            f"3-{SLUG_MAX} characters, lowercase letters, digits and single hyphens, starting with a letter "
            "(it names the repo, S3 bucket, ECR repo and IAM roles)"
        )
        if derived_from is None:
            return f"project_slug {_show(slug)} is not allowed: {rule}"
        return (
            f"project_slug {_show(slug)}, derived from project_name {_show(derived_from)}, is not allowed: {rule}; "
            f"give a project_slug yourself (at its prompt, or `cookiecutter ... project_slug={suggest_slug(slug)}`)"
        )
    return None


def suggest_slug(slug: str) -> str:
    """A valid slug close to ``slug``: cut at a hyphen to fit, a letter in front if needed, else a placeholder."""
    words = [w for w in re.split(r"[^a-z0-9]+", slug.lower()) if w]
    if words and not words[0][0].isalpha():
        words.insert(0, "project")
    out = ""
    for word in words:
        candidate = f"{out}-{word}" if out else word
        if len(candidate) > SLUG_MAX:
            break
        out = candidate
    return out if len(out) >= 3 and SLUG_RE.match(out) else "my-project"


def check_package(name: str, reserved: list[str]) -> str | None:
    if not PACKAGE_RE.match(name) or not name.isidentifier() or keyword.iskeyword(name):
        return (
            f"package_name {_show(name)} is not allowed: "
            "a lowercase Python identifier (letters, digits, _) that is not a keyword"
        )
    if name in sys.stdlib_module_names or name in reserved:
        return (
            f"package_name {_show(name)} is not allowed: "
            f"it would shadow the module '{name}' (stdlib or a dependency); pick another name"
        )
    return None


def check_versions(python: str, dask: str, supported: list[str], images: dict[str, list[str]]) -> str | None:
    """``python`` is one of the python_version choices (cookiecutter refuses others); ``dask`` is free text."""
    if not DASK_VERSION_RE.match(dask):
        return f"dask_version {_show(dask)} is not allowed: a Dask release such as {max(images)}"
    if dask not in images:
        return (
            f"dask_version {_show(dask)} has no published ghcr.io/dask/dask image; "
            f"choose one of {', '.join(sorted(images))}"
        )
    if python not in images[dask]:
        pythons = [p for p in images[dask] if p in supported]
        return (
            f"python_version {_show(python)} has no ghcr.io/dask/dask:{dask} image; "
            f"with dask {dask} choose python {', '.join(pythons)}"
        )
    return None


def check_vpc_cidr(value: str) -> str | None:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError:
        net = None
    if net is None or net.version != 4 or not net.is_private or not 16 <= net.prefixlen <= 24:
        return f"vpc_cidr {_show(value)} is not allowed: a private IPv4 network from /16 to /24, such as 10.42.0.0/16"
    return None


def check_access_cidr(value: str) -> str | None:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError:
        net = None
    if net is None or net.version != 4:
        return f"dask_access_cidr {_show(value)} is not allowed: an IPv4 network such as 10.42.0.0/16 or 203.0.113.7/32"
    if net.prefixlen < 8:
        return (
            f"dask_access_cidr {_show(value)} is not allowed: "
            "Dask ports must not be open that widely (use /8 or narrower, never 0.0.0.0/0)"
        )
    return None


def check_log_retention(value: object, allowed: list[int]) -> str | None:
    """One of CloudWatch's retention periods (``_log_retention_days``, the list infrastructure/ reads too)."""
    if str(value) not in {str(days) for days in allowed}:
        days = ", ".join(str(d) for d in allowed)
        return f"log_retention_days {_show(value)} is not allowed: one of the periods CloudWatch accepts ({days})"
    return None


def as_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    return BOOL_WORDS.get(str(value).strip().lower())


def check_int(field: str, value: object, low: int, high: int) -> str | None:
    text = str(value).strip()
    if not text.isdecimal() or not low <= int(text) <= high:  # isdecimal: int() reads it ("²" is a digit, not a number)
        return f"{field} {_show(value)} is not allowed: a whole number from {low} to {high}"
    return None


def validate(ctx: dict, derived_slug: str | None = None) -> list[str]:
    """Return one message per invalid answer (empty when all are valid).

    Choice answers (python_version, nat_strategy, worker_vcpus, ci, code_source, tracking) are not checked
    here: cookiecutter refuses a value outside their lists before this hook runs (and replaces one
    from a config file's default_context by the first choice). A yes/no answer can still arrive as
    another value (a number in a config file), so use_fargate_spot is checked. ``derived_slug`` is
    the slug cookiecutter derives from project_name when none is typed.
    """
    slug_source = ctx["project_name"] if derived_slug is not None and ctx["project_slug"] == derived_slug else None
    errors = [
        _single_line("project_name", ctx["project_name"], 80),
        check_slug(ctx["project_slug"], slug_source),
        check_package(ctx["package_name"], ctx["_reserved_names"]),
        _single_line("description", ctx["description"], 200),
        _single_line("author_name", ctx["author_name"], 100),
        None
        if EMAIL_RE.match(ctx["author_email"]) and len(ctx["author_email"]) <= 100
        else f"author_email {_show(ctx['author_email'])} is not allowed: an e-mail address such as team@example.com",
        check_versions(ctx["python_version"], ctx["dask_version"], ctx["_supported_python"], ctx["_dask_images"]),
        _choice(ctx, "aws_region", ctx["_aws_regions"]),
        check_vpc_cidr(ctx["vpc_cidr"]),
        check_access_cidr(ctx["dask_access_cidr"]),
        None
        if as_bool(ctx["use_fargate_spot"]) is not None
        else f"use_fargate_spot {_show(ctx['use_fargate_spot'])} is not allowed: yes or no",
        check_int("max_workers", ctx["max_workers"], 1, 100),
        check_log_retention(ctx["log_retention_days"], ctx["_log_retention_days"]),
        None
        if as_bool(ctx.get("prefect_worker", True)) is not None
        else f"prefect_worker {_show(ctx['prefect_worker'])} is not allowed: yes or no",
    ]
    return [e for e in errors if e]


def remove_created_parents(project_dir: Path, slug: str) -> None:
    """A slug with '/' makes cookiecutter create nested directories and delete only the last one.

    Remove the empty parents it created so a refused answer leaves nothing behind.
    """
    parts = Path(slug).parts
    if len(parts) < 2 or ".." in parts or Path(slug).is_absolute():
        return
    top = project_dir
    for _ in parts[1:]:
        top = top.parent
    # Only a chain of empty directories down to the (empty) project dir is ours to remove.
    node = top
    for part in parts[1:]:
        if [p.name for p in node.iterdir()] != [part]:
            return
        node = node / part
    if any(project_dir.iterdir()):
        return
    for path in [project_dir, *project_dir.parents]:
        path.rmdir()
        if path == top:
            break


def main() -> int:
    ctx = json.loads(r"""{{ cookiecutter | tojson }}""")
    # What project_slug's default in cookiecutter.json gives for this project_name (a test keeps the two equal);
    # spaces inside the quotes: a JSON string's own quote must not touch the closing triple quote.
    derived_slug = json.loads(
        r""" {{ (cookiecutter.project_name|slugify or cookiecutter.project_name|trim or '-') | tojson }} """
    )
    errors = validate(ctx, derived_slug)
    if errors:
        # The first problem only: later answers are often derived from it (slug -> package_name).
        print(f"ERROR: {errors[0]}", file=sys.stderr)
        remove_created_parents(Path(os.getcwd()), ctx["project_slug"])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
