"""Maintainer command: GitHub Actions pinned to full commit SHAs, checked and moved in every workflow at once.

    python tools/bump_actions.py check                          # every pin well formed, one pin per action
    python tools/bump_actions.py list                           # action, release, commit, where
    python tools/bump_actions.py set actions/checkout v7.0.2    # the tag's commit, read with git ls-remote
    python tools/bump_actions.py set actions/checkout           # the newest vX.Y.Z tag
    python tools/bump_actions.py set actions/checkout v7.0.2 --sha <40 hex digits>   # offline

A pin is `uses: owner/repo[/path]@<40 hex digits> # v<release>`: the commit is what runs, the comment is
what people (and Dependabot) read. The same action must carry the same pin in the template's own
workflows and in the generated project's, so `set` rewrites both; generated projects keep their pins
moving with Dependabot (`.github/dependabot.yml`), which understands the same format.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
WORKFLOW_DIRS = [
    TEMPLATE / ".github" / "workflows",
    TEMPLATE / "{{cookiecutter.project_slug}}" / ".github" / "workflows",
]
USES_RE = re.compile(
    r"""^(?P<head>\s*(?:-\s+)?uses:\s*)["']?(?P<action>[^@\s"'#]+)@(?P<ref>[^\s"'#]+)["']?"""
    r"""(?P<comment>\s*#\s*(?P<version>\S+).*)?$"""
)
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
VERSION_RE = re.compile(r"^v\d+(?:\.\d+){0,2}$")
RELEASE_TAG_RE = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")
ACTION_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(?:/[^@\s]+)?$")


@dataclass(frozen=True)
class Pin:
    file: Path
    line: int
    action: str  # owner/repo[/path]
    ref: str
    version: str | None  # the release named in the comment

    @property
    def repo(self) -> str:
        return "/".join(self.action.split("/")[:2])

    @property
    def where(self) -> str:
        return f"{shown(self.file)}:{self.line}"


def shown(path: Path) -> str:
    """A path as people read it: relative to the template when inside it."""
    try:
        return path.resolve().relative_to(TEMPLATE).as_posix()
    except ValueError:
        return str(path)


def workflow_files(dirs: list[Path] | None = None) -> list[Path]:
    return sorted(p for d in dirs or WORKFLOW_DIRS if d.is_dir() for p in d.glob("*.y*ml"))


def read_pins(files: list[Path]) -> list[Pin]:
    pins = []
    for path in files:
        for no, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if m := USES_RE.match(text):
                if m["action"].startswith(("./", "docker://")):
                    continue  # local actions run this repository's code; no docker:// steps are used
                pins.append(Pin(path, no, m["action"], m["ref"], m["version"]))
    return pins


def problems(pins: list[Pin]) -> list[str]:
    """Every pin a full commit with its release in a comment; one (commit, release) per repository."""
    found = []
    for pin in pins:
        if not SHA_RE.match(pin.ref):
            found.append(f"{pin.where}: {pin.action}@{pin.ref} is not pinned to a full commit SHA")
        if not pin.version or not VERSION_RE.match(pin.version):
            found.append(f"{pin.where}: {pin.action} needs its release as a comment, like `# v7.0.1`")
    by_repo: dict[str, set[tuple[str, str | None]]] = {}
    for pin in pins:
        by_repo.setdefault(pin.repo, set()).add((pin.ref, pin.version))
    for repo, seen in sorted(by_repo.items()):
        if len(seen) > 1:
            places = ", ".join(f"{p.where} ({p.ref[:12]} {p.version})" for p in pins if p.repo == repo)
            found.append(f"{repo} is pinned differently across the workflows: {places}")
    return found


def release_key(tag: str) -> tuple[int, int, int]:
    m = RELEASE_TAG_RE.match(tag)
    return (int(m[1]), int(m[2]), int(m[3]))


def remote_tags(remote: str) -> dict[str, str]:
    """tag -> commit of a git remote (annotated tags are peeled to their commit). Needs the network
    for a GitHub remote; any git URL works (the tests use a local repository)."""
    out = subprocess.run(
        ["git", "ls-remote", "--tags", remote],  # noqa: S607 - git from PATH, like any maintainer tool
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        raise OSError(f"git ls-remote {remote} failed: {out.stderr.strip()}")
    tags: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for line in out.stdout.splitlines():
        sha, _, ref = line.partition("\t")
        name = ref.removeprefix("refs/tags/")
        if name.endswith("^{}"):
            peeled[name[:-3]] = sha
        else:
            tags[name] = sha
    return {**tags, **peeled}


def resolve(repo: str, version: str | None, remote: str | None = None) -> tuple[str, str]:
    """(release, commit) of `repo`: the given tag, or its newest vX.Y.Z tag."""
    tags = remote_tags(remote or f"https://github.com/{repo}.git")
    if version is None:
        releases = [t for t in tags if RELEASE_TAG_RE.match(t)]
        if not releases:
            raise ValueError(f"{repo} has no vX.Y.Z release tags")
        version = max(releases, key=release_key)
    if version not in tags:
        raise ValueError(f"{repo} has no tag {version}")
    return version, tags[version]


def set_pin(files: list[Path], action: str, version: str, sha: str) -> list[str]:
    """Rewrite every `uses:` of `action`'s repository to `@sha # version`; return `file:line` of each changed line."""
    if not SHA_RE.match(sha):
        raise ValueError(f"{sha!r} is not a full (40 hex digit) commit SHA")
    if not VERSION_RE.match(version):
        raise ValueError(f"{version!r} is not a release like v7.0.1")
    repo = "/".join(action.split("/")[:2])
    changed = []
    for path in files:
        original = path.read_text(encoding="utf-8")
        lines = original.splitlines(keepends=True)
        for index, line in enumerate(lines):
            body = line.rstrip("\r\n")
            m = USES_RE.match(body)
            if not m or "/".join(m["action"].split("/")[:2]) != repo:
                continue
            new = f"{m['head']}{m['action']}@{sha} # {version}"
            if new != body:
                lines[index] = new + line[len(body) :]
                changed.append(f"{shown(path)}:{index + 1}")
        text = "".join(lines)
        if text != original:
            path.write_text(text, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None, files: list[Path] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="every uses: pinned to a commit with its release, one pin per action")
    sub.add_parser("list", help="the pins and where they are")
    setter = sub.add_parser("set", help="move an action's pin in every workflow")
    setter.add_argument("action", help="owner/repo, e.g. actions/checkout")
    setter.add_argument("version", nargs="?", help="release tag, e.g. v7.0.2 (default: the newest vX.Y.Z)")
    setter.add_argument("--sha", help="the release's commit (skips the git ls-remote lookup)")
    setter.add_argument("--remote", help="git URL to read tags from (default: the action's GitHub repository)")
    args = parser.parse_args(argv)
    files = files if files is not None else workflow_files()
    pins = read_pins(files)
    if args.command == "list":
        for pin in pins:
            print(f"{pin.action} {pin.version or '?'} {pin.ref} {pin.where}")
        return 0
    if args.command == "check":
        found = problems(pins)
        for problem in found:
            print(problem, file=sys.stderr)
        if found:
            print(f"action pins: {len(found)} problem(s); fix with `make bump-actions`", file=sys.stderr)
            return 1
        print(f"action pins OK: {len(pins)} uses in {len(files)} workflows, {len({p.repo for p in pins})} actions")
        return 0
    if not ACTION_RE.match(args.action):
        print(f"ERROR: {args.action!r} is not an action like actions/checkout", file=sys.stderr)
        return 2
    repo = "/".join(args.action.split("/")[:2])
    if not any(p.repo == repo for p in pins):
        print(f"ERROR: no workflow uses {repo}; nothing changed", file=sys.stderr)
        return 1
    if args.sha and not args.version:
        print("ERROR: --sha needs the release it belongs to (set ACTION VERSION --sha SHA)", file=sys.stderr)
        return 2
    try:
        version, sha = (args.version, args.sha) if args.sha else resolve(repo, args.version, args.remote)
        changed = set_pin(files, repo, version, sha)
    except (OSError, ValueError) as error:
        print(f"ERROR: {error}; nothing changed", file=sys.stderr)
        return 1
    print(f"{repo}: pinned to {version} ({sha}) in {len(changed)} line(s)")
    for where in changed:
        print(f"  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
