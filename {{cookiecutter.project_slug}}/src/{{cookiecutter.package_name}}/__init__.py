"""{{ cookiecutter.project_slug }}: your code on the ml-workflows runtime.

``schema.py`` (your columns), ``model.py`` (your model), ``sample_data.py`` (the offline sample) and ``flows.py``
(what a run does) are yours. The runtime (the ``ml-workflows`` package, pinned in poetry.lock) finds this project
through the entry point in pyproject.toml and reads ``project`` below.
"""

from ml_workflows import Project

__version__ = "0.1.0"

project = Project(
    name="{{ cookiecutter.project_slug }}",  # prefixes every Prefect name: flows, deployments, automations, blocks
    package=__name__,
    tracking="{{ cookiecutter.tracking }}",  # experiment tracking of each training run (docs/lifecycle.md)
    code_source="{{ cookiecutter.code_source }}",  # "git": deployments clone this repository at run time
    worker_vcpus={{ cookiecutter.worker_vcpus }},  # vCPUs per Dask worker on Fargate (4 GiB of memory each)
    max_workers={{ cookiecutter.max_workers|int }},  # most Dask workers one Fargate run may start
)
