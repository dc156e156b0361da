"""What the project image provides, read from the Dockerfile (the source of truth): user, working directory,
entrypoint, environment, the files it copies, and the commands on its PATH.

The ECS task runner (ecs_tasks.py) builds each emulated container from this: the same uid and gid, a working
directory with the image's ownership, and a PATH holding only the image's commands - the console scripts of the
packages the Dockerfile installs (poetry.lock's main group and the project, exported by the same
locked_requirements.py the Dockerfile runs), the base image's interpreter and tools. Nothing from the dev or infra
groups (pytest, moto, pulumi) is there, as it is not in the image.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import re
import shlex
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ml_workflows.project import root as project_root

PROJECT_DIR = project_root(strict=False)

# What the base image brings (ghcr.io/dask/dask: conda-forge's miniforge3 on Ubuntu, dask installed with conda).
BASE_IMAGES = {
    "ghcr.io/dask/dask": {
        "prefix": "/opt/conda",
        "path": "/opt/conda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "env": {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"},
        "interpreter": ("python", "python3", "pip", "pip3"),
        # apt packages of the miniforge3 base (git for the git_clone pull step, tini as init)
        "system": ("git", "tini", "bash", "sh", "env", "wget"),
    }
}


@dataclass(frozen=True)
class Image:
    base: str
    prefix: str
    path: str
    workdir: str
    uid: int
    gid: int
    user: str
    home: str
    entrypoint: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    copies: tuple[tuple[tuple[str, ...], str], ...] = ()  # (sources, destination) of each COPY into the image
    system: tuple[str, ...] = ()
    interpreter: tuple[str, ...] = ()

    @property
    def bin_dir(self) -> str:
        return f"{self.prefix}/bin"


def _instructions(text: str) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def read(dockerfile: Path = PROJECT_DIR / "Dockerfile") -> Image:
    """The Image a Dockerfile builds (only the instructions this project's Dockerfile uses are understood)."""
    base = workdir = user = None
    entrypoint: tuple[str, ...] = ()
    env: dict[str, str] = {}
    copies = []
    users: dict[str, tuple[int, str]] = {}
    for keyword, rest in _instructions(dockerfile.read_text(encoding="utf-8")):
        if keyword == "FROM":
            base = rest.split(":", 1)[0]
        elif keyword == "WORKDIR":
            workdir = rest
        elif keyword == "USER":
            user = rest
        elif keyword == "ENTRYPOINT":
            entrypoint = tuple(json.loads(rest))
        elif keyword == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
        elif keyword == "COPY" and not rest.startswith("--"):
            *sources, dest = rest.split()
            copies.append((tuple(sources), dest))
        elif keyword == "RUN" and "useradd" in rest:
            uid = int(re.search(r"--uid (\d+)", rest).group(1))
            name = rest.split("useradd", 1)[1].split("&&")[0].split()[-1]
            users[str(uid)] = (uid, name)
    if base not in BASE_IMAGES:
        raise ValueError(f"{dockerfile}: base image {base!r} is not one the task runner knows ({list(BASE_IMAGES)})")
    if not (workdir and user and entrypoint):
        raise ValueError(f"{dockerfile}: WORKDIR, USER and ENTRYPOINT are needed to run it as ECS does")
    uid_text, _, gid_text = user.partition(":")
    uid, name = users.get(uid_text, (int(uid_text), uid_text))
    facts = BASE_IMAGES[base]
    return Image(
        base=base,
        prefix=facts["prefix"],
        path=facts["path"],
        workdir=workdir,
        uid=uid,
        gid=int(gid_text or uid),
        user=name,
        home=f"/home/{name}",
        entrypoint=entrypoint,
        env={**facts["env"], **env, "PATH": facts["path"], "HOME": f"/home/{name}"},
        copies=tuple(copies),
        system=facts["system"],
        interpreter=facts["interpreter"],
    )


def installed_distributions(project_dir: Path = PROJECT_DIR) -> set[str]:
    """Distributions the Dockerfile installs: poetry.lock's main group (locked_requirements.py) and the project."""
    from ml_workflows.deploy import requirements as exporter

    pyproject = tomllib.loads((project_dir / "pyproject.toml").read_text(encoding="utf-8"))
    lock = tomllib.loads((project_dir / "poetry.lock").read_text(encoding="utf-8"))
    names = {exporter.name_of(line) for line in exporter.requirements(lock)}
    return {_canonical(n) for n in names | {pyproject["project"]["name"]}}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def image_commands(image: Image, project_dir: Path = PROJECT_DIR) -> dict[str, Path]:
    """{command: local executable} for every command in the image's PATH, as this environment provides it."""
    venv_bin = Path(sys.executable).parent
    installed = installed_distributions(project_dir)
    commands: dict[str, Path] = {}
    for dist in metadata.distributions():
        if _canonical(dist.metadata["Name"]) not in installed:
            continue
        for ep in dist.entry_points:
            if ep.group == "console_scripts" and (venv_bin / ep.name).exists():
                commands[ep.name] = venv_bin / ep.name
    for name in image.interpreter:
        if (venv_bin / name).exists():
            commands[name] = venv_bin / name
    return commands
