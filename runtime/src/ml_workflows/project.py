"""The project a run belongs to: its name, its package (the seam) and the choices made when it was baked.

A project declares itself once, in its package's ``__init__.py``::

    from ml_workflows import Project

    project = Project(name="batch-scoring", package=__name__, tracking="none")

and points the runtime at it with an entry point in its ``pyproject.toml``::

    [project.entry-points.ml_workflows]
    project = "batch_scoring:project"

The entry point is installed metadata, so the runtime finds the project wherever the project is installed: the
Poetry environment, the image's flow-run task, a Dask worker. Nothing about a project is rendered into the
runtime: the runtime reads it here, and the stack's facts from the stack's outputs.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

ENTRY_POINT_GROUP = "ml_workflows"
TRACKING = ("none", "mlflow")
CODE_SOURCES = ("image", "git")
WORKER_VCPUS = (1, 2, 4)  # 4 GiB of memory per vCPU: valid on Fargate for each


class ProjectError(LookupError):
    """No project (or more than one) is installed, or its declaration is invalid."""


@dataclass(frozen=True)
class Project:
    """What the runtime needs to know about a project. Every field is the project's own (its ``__init__.py``)."""

    name: str  # prefixes every Prefect name (flows, deployments, automations, blocks) and the console script
    package: str  # the importable package holding schema.py, model.py, sample_data.py and flows.py
    tracking: str = "none"  # "mlflow": every training run is logged to MLflow (needs the mlflow dependencies)
    code_source: str = "image"  # "git": deployments clone the project at run time (prefect.yaml pull steps)
    worker_vcpus: int = 2  # vCPUs of each Dask worker on Fargate (memory: 4 GiB per vCPU)
    max_workers: int = 8  # most Dask workers one Fargate run may start

    def __post_init__(self) -> None:
        problems = []
        if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", self.name):
            problems.append(f"name {self.name!r}: lowercase letters, digits and single hyphens")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", self.package):
            problems.append(f"package {self.package!r}: an importable module name")
        if self.tracking not in TRACKING:
            problems.append(f"tracking {self.tracking!r}: one of {', '.join(TRACKING)}")
        if self.code_source not in CODE_SOURCES:
            problems.append(f"code_source {self.code_source!r}: one of {', '.join(CODE_SOURCES)}")
        if self.worker_vcpus not in WORKER_VCPUS:
            problems.append(f"worker_vcpus {self.worker_vcpus!r}: one of {', '.join(map(str, WORKER_VCPUS))}")
        if not (isinstance(self.max_workers, int) and 1 <= self.max_workers <= 100):
            problems.append(f"max_workers {self.max_workers!r}: an integer from 1 to 100")
        if problems:
            raise ProjectError("Project(...) in your package's __init__.py: " + "; ".join(problems))

    def module(self, name: str) -> ModuleType:
        """A module of the project's package: ``schema``, ``model``, ``sample_data`` or ``flows``."""
        return importlib.import_module(f"{self.package}.{name}")

    @property
    def tracks(self) -> bool:
        return self.tracking == "mlflow"


@cache
def current() -> Project:
    """The installed project (the one entry point in the ``ml_workflows`` group named ``project``)."""
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == "project"]
    if not found:
        raise ProjectError(
            "no project is installed: ml-workflows finds yours through `[project.entry-points.ml_workflows]` "
            'project = "<package>:project" in its pyproject.toml; run make install in the project'
        )
    if len({ep.value for ep in found}) > 1:
        raise ProjectError(f"several projects are installed in this environment: {sorted(ep.value for ep in found)}")
    project = found[0].load()
    if not isinstance(project, Project):
        raise ProjectError(f"{found[0].value} is not an ml_workflows.Project: {project!r}")
    return project


def root(start: Path | str | None = None, strict: bool = True) -> Path:
    """The project's directory: the nearest one at or above ``start`` (default: the working directory) holding
    ``pyproject.toml`` and ``prefect.yaml``. The deploy tools and the rehearsals run from it (the Makefile's
    targets do); the image's working directory is one too. Not ``strict``: the start directory when none is."""
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").is_file() and (candidate / "prefect.yaml").is_file():
            return candidate
    if not strict:
        return here
    raise ProjectError(f"no project directory (pyproject.toml + prefect.yaml) at or above {here}: run from the project")
