"""Flow code from git (``code_source`` = git): Prefect pull steps, and the same code on every Dask worker.

The deployments' pull steps (prefect.yaml, ``pull_from_git``) run in the flow-run process before the
flow is imported:

1. :func:`writable_directory` makes a fresh directory the flow run's user may write (the image's working
   directory belongs to root, the container runs as an unprivileged user), and Prefect's
   ``set_working_directory`` moves there: ``git_clone`` clones into the current directory;
2. :func:`git_access_token` reads the access token from the Prefect ``Secret`` block named by
   ``PIPELINE_GIT_TOKEN_BLOCK`` (empty: a public repository);
3. ``prefect.deployments.steps.git_clone`` clones ``PIPELINE_GIT_REPOSITORY`` at ``PIPELINE_GIT_BRANCH``;
4. :func:`use_checkout` puts the clone's ``src`` first on ``sys.path``, so the entrypoint
   (``<package>.flows:...``) is imported from the clone, not from the copy installed in the image.

The three ``PIPELINE_GIT_*`` values are fixed when the deployment is created: ``make deploy`` takes them from
its environment (the repository defaults to this checkout's ``origin`` remote, the branch to the current one,
see :func:`clone_url`), and prefect.yaml puts them into the deployments' ``job_variables.env``, which the
worker gives the flow-run container (or process); Prefect resolves the pull steps' ``$VAR`` placeholders there.

The image still provides Python and every dependency (same versions on all machines); only the
project's own code comes from git, so a code change needs no image rebuild. Dask workers import the
tasks by module name, so :func:`ship_to_workers` (called by :func:`.cluster.dask_client`) sends the
clone's package to every worker (:class:`ShipCode`, a worker plugin: current and future workers)
and puts it first on their path before any task runs.
"""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from .project import current

ENV_CODE_DIR = "PIPELINE_CODE_DIR"  # set by use_checkout: the clone's src directory
ENV_REPOSITORY = "PIPELINE_GIT_REPOSITORY"
ENV_BRANCH = "PIPELINE_GIT_BRANCH"
ENV_TOKEN_BLOCK = "PIPELINE_GIT_TOKEN_BLOCK"  # noqa: S105 - a variable name  # pragma: allowlist secret


# -- which repository: decided when deploying -------------------------------------------------------
_PLACEHOLDER = re.compile(r"\{\{.*\}\}")
_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^/:]+):(?P<path>[^/].*)$")  # git@host:org/repo.git


class GitSourceError(ValueError):
    """The repository cannot be cloned by the flow runs as configured (one line saying what to set)."""


def ssh_host_and_path(url: str) -> tuple[str, str] | None:
    """``(host, path)`` of an ssh repository URL (``git@host:org/repo.git``, ``ssh://[user@]host[:port]/...``),
    else ``None`` (https, file paths and ``file://`` URLs)."""
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if sep:
        if scheme.lower() not in ("ssh", "git+ssh", "ssh+git"):
            return None
        authority, _, path = rest.partition("/")
        host = authority.rpartition("@")[2].partition(":")[0]
        return (host, path) if host and path else None
    match = _SCP_LIKE.match(url)
    return (match["host"], match["path"]) if match else None


def clone_url(repository: str, token_block: str = "") -> str:
    """The URL the flow runs clone. Their containers hold no ssh key, so an ssh origin becomes its https URL
    when an access token is configured (Prefect's ``git_clone`` puts the token into https URLs only), and is
    refused, with what to set, when none is."""
    repository = repository.strip()
    ssh = ssh_host_and_path(repository)
    if ssh is None:
        return repository
    host, path = ssh
    https = f"https://{host}/{path.lstrip('/')}"
    if token_block.strip():
        return https
    raise GitSourceError(
        f"code from git: {repository} is an ssh URL, which flow runs cannot clone (no ssh key in their "
        f"container): set {ENV_TOKEN_BLOCK} to a Prefect Secret block holding an access token (they then clone "
        f"{https}), or {ENV_REPOSITORY}={https} for a public repository"
    )


# -- Prefect pull steps -----------------------------------------------------------------------------
def writable_directory(parent: str | None = None) -> dict[str, str]:
    """Pull step: a new, empty directory this process may write (under ``parent``, default the temporary
    directory: ``TMPDIR`` or /tmp), for ``git_clone``, which clones into the current directory."""
    return {"directory": tempfile.mkdtemp(prefix=f"{current().package}-code-", dir=parent or None)}


def git_access_token(block: str | None = None) -> dict[str, Any]:
    """Pull step: ``{"access_token": ...}`` from the Prefect Secret block named ``block`` (default:
    ``PIPELINE_GIT_TOKEN_BLOCK`` of the flow run's environment); ``None`` when none is named."""
    name = (block if block is not None else os.environ.get(ENV_TOKEN_BLOCK, "")).strip()
    if _PLACEHOLDER.search(name):  # prefect.yaml's, left as is by a `prefect deploy` run without the variable
        raise GitSourceError(
            f"{ENV_TOKEN_BLOCK} reached the flow run unresolved ({name!r}): create the deployments with "
            f"`make deploy`, or set {ENV_TOKEN_BLOCK} (empty for a public repository) when running `prefect deploy`"
        )
    if not name:
        return {"access_token": None}
    from prefect.blocks.system import Secret

    return {"access_token": str(Secret.load(name).get())}


def use_checkout(directory: str) -> dict[str, str]:
    """Pull step: run the flow from the clone at ``directory`` (its ``src`` first on ``sys.path``)."""
    root = Path(directory).resolve()
    src = root / "src"
    if not (src / current().package / "flows.py").is_file():
        raise FileNotFoundError(f"{root} is not a checkout of this project (no src/{current().package}/flows.py)")
    os.chdir(root)
    _put_first(str(src))
    os.environ[ENV_CODE_DIR] = str(src)
    return {"directory": str(root), "src": str(src)}


def _put_first(src: str) -> None:
    """``src`` first on ``sys.path``; forget modules of the package imported from elsewhere."""
    if src in sys.path:
        sys.path.remove(src)
    sys.path.insert(0, src)
    package = current().package  # first: finding the project may import it, and sys.modules must hold still below
    for name in [n for n in list(sys.modules) if n == package or n.startswith(package + ".")]:
        if not (getattr(sys.modules[name], "__file__", None) or "").startswith(src) and name != __name__:
            del sys.modules[name]


# -- Dask workers -----------------------------------------------------------------------------------
class ShipCode(WorkerPlugin):
    """Unpacks the project's package on a worker and puts it first on the worker's path."""

    name = "ship-project-code"
    idempotent = False  # a new checkout replaces the previous plugin

    def __init__(self, src: str) -> None:
        self.origin = src
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted((Path(src) / current().package).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    z.write(path, path.relative_to(src).as_posix())
        self.data = buffer.getvalue()

    def setup(self, worker: Any) -> None:
        if self.origin in sys.path:  # a worker in the flow-run process already runs the checkout
            return
        target = Path(worker.local_directory) / "project-code"
        with zipfile.ZipFile(io.BytesIO(self.data)) as z:
            z.extractall(target)
        _put_first(str(target))


def package_origin() -> str:
    """Where this process imports the project's package from (run on workers by :func:`ship_to_workers`)."""
    import importlib

    return str(Path(importlib.import_module(current().package + ".flows").__file__).parents[1])


def ship_to_workers(client: Any) -> str | None:
    """Send the checkout's package to every worker when the flow runs from git; its directory or ``None``."""
    src = os.environ.get(ENV_CODE_DIR)
    if not src:
        return None
    client.register_plugin(ShipCode(src))
    origins = client.run(package_origin)
    where = sorted(set(origins.values()))
    message = f"project code from {src} sent to {len(origins)} Dask worker(s); they import it from {where}"
    try:
        from prefect import get_run_logger

        get_run_logger().info(message)
    except Exception:  # noqa: BLE001 - outside a flow run
        print(message)
    return src
