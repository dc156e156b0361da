"""ml-workflows: the runtime of projects baked from the ml-workflows template.

A project keeps its own code (``schema.py``, ``model.py``, ``sample_data.py``, ``flows.py``, its Pulumi stack) and
depends on this package, pinned exactly, for everything else: settings, the Dask cluster (local or Fargate),
storage with atomic commits, validation and quarantine, the Prefect steps, drift, promotion, reports and
notifications (this package), the deploy tools (:mod:`ml_workflows.deploy`) and the test harness with the cloud
rehearsal (:mod:`ml_workflows.testing`, a pytest plugin).

Public API: :class:`Project` (how a project declares itself), the steps a project's ``flows.py`` calls
(:mod:`ml_workflows.steps`, :mod:`ml_workflows.cluster`, :mod:`ml_workflows.reports`,
:mod:`ml_workflows.settings`, :mod:`ml_workflows.storage`, :mod:`ml_workflows.names`,
:mod:`ml_workflows.notifications`) and the column types a ``schema.py`` declares (:mod:`ml_workflows.columns`).
Changes to them are listed in the template's CHANGELOG.md and announced by a DeprecationWarning one release ahead.
"""

from .project import Project

__version__ = "2026.12.6"
__all__ = ["Project", "__version__"]
