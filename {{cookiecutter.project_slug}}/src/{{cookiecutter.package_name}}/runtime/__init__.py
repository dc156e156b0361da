"""Runtime plumbing of the pipeline: settings, the Dask cluster, storage with atomic commits, validation
and quarantine, the Prefect steps, reports and notifications.

You should not need to edit these modules to bring your own data and model: the seam is
``schema.py``, ``model.py``, ``sample_data.py`` and ``flows.py`` one level up.
"""
