"""{{ cookiecutter.project_name }}: batch machine learning with dask-ml on Dask, orchestrated by Prefect."""

__version__ = "0.1.0"
