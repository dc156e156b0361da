"""The second model: the generated README's schema example and ``tests/data/second_model/model.py``.

A scikit-learn pipeline (one-hot + imputation, then gradient boosting) on a loan table with categorical
and nullable columns. ``tests/test_second_model.py`` swaps it into a bake to show the seam holds;
``bench_pipeline.py`` scores with it to measure a non-linear model. Standard library only.
"""

from __future__ import annotations

import re
from pathlib import Path

MODEL = Path(__file__).resolve().parents[1] / "tests" / "data" / "second_model" / "model.py"


def readme_schema(readme: str) -> str:
    """The schema example of the generated README (step 1 of "Bring your own data and model")."""
    section = readme[readme.index("## Bring your own data and model") :]
    step = section[section.index("**1. Declare your columns**") :]
    return re.search(r"```python\n(SCHEMA = Schema\(.*?\n\))\n```", step, re.S).group(1)


def use_second_model(package_dir: Path, readme: str) -> None:
    """Replace ``schema.py``'s SCHEMA and ``model.py`` in ``package_dir``, as the README tells a user to."""
    schema_py = package_dir / "schema.py"
    schema = schema_py.read_text()
    schema_py.write_text(schema[: schema.index("SCHEMA = Schema(")] + readme_schema(readme) + "\n")
    (package_dir / "model.py").write_text(MODEL.read_text())
