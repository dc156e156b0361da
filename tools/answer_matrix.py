"""The answer sets the template is proven with: the bakes `.ci/run` installs, and a pairwise matrix of every answer.

    python tools/answer_matrix.py            # the pairwise matrix as JSON
    python tools/answer_matrix.py --table    # the same, one bake a line
    python tools/answer_matrix.py --rows     # its row numbers, the matrix of .github/workflows/answer-matrix.yml

Every value of every choice or yes/no prompt (and every offered Dask release) is a product: `CI_BAKES` are the bakes
whose own `make lint`, `make test` and `make rehearse-cloud` run in the template's `.ci/run`, chosen so that each
value appears in at least one; `pairwise()` covers every pair of values and runs in the template's GitHub workflow
(scheduled, and on pull requests that move the locks). Free-text answers (names, region, CIDRs, sizes) change no
code path: the hook, hostile-answer and fuzz tests cover them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

CONTEXT = json.loads((Path(__file__).resolve().parents[1] / "cookiecutter.json").read_text())

# The bakes .ci/run installs and runs whole (tests/test_generated_project.py, tests/test_rehearsal.py); the
# default answers first. Between them every value of every dimension below.
CI_BAKES: dict[str, dict[str, object]] = {
    "default": {},
    "non-default": {
        "project_name": "Churn Model",
        "python_version": "3.11",
        "aws_region": "eu-west-1",
        "vpc_cidr": "172.20.0.0/20",
        "dask_access_cidr": "203.0.113.0/24",
        "nat_strategy": "per-az",
        "use_fargate_spot": False,
        "worker_vcpus": "4",
        "max_workers": "20",
        "log_retention_days": "90",
        "ci": "none",
        "code_source": "git",
    },
    "mlflow": {
        "python_version": "3.13",
        "tracking": "mlflow",
        "prefect_worker": False,
        "worker_vcpus": "2",
    },
}


def dimensions() -> dict[str, list[object]]:
    """Each prompt whose answer picks a code path, with every value it offers (a choice list, yes/no, releases)."""
    dims: dict[str, list[object]] = {"dask_version": list(CONTEXT["_dask_images"])}
    for name, default in CONTEXT.items():
        if name.startswith("_"):
            continue
        if isinstance(default, list):
            dims[name] = list(default)
        elif isinstance(default, bool):
            dims[name] = [default, not default]
    return dims


def answers_of(bake: dict[str, object]) -> dict[str, object]:
    """A bake's value for every dimension (its own answer, else the template's default)."""
    return {name: bake.get(name, values[0]) for name, values in dimensions().items()}


def pairwise() -> list[dict[str, object]]:
    """A small set of answer sets in which every pair of values of two dimensions occurs (greedy, deterministic).

    The defaults come first, so row 0 is the default bake."""
    dims = dimensions()
    names = list(dims)
    uncovered = {
        ((a, va), (b, vb))
        for a, b in itertools.combinations(names, 2)
        for va in range(len(dims[a]))
        for vb in range(len(dims[b]))
    }
    rows: list[dict[str, int]] = [dict.fromkeys(names, 0)]

    def covered_by(row: dict[str, int]) -> set:
        return {((a, row[a]), (b, row[b])) for a, b in itertools.combinations(names, 2)}

    uncovered -= covered_by(rows[0])
    while uncovered:
        (a, va), (b, vb) = min(uncovered)  # seed the row with one pair still missing
        row = {a: va, b: vb}
        for name in names:
            if name in row:
                continue
            # the value that covers the most missing pairs with what the row holds so far
            row[name] = max(
                range(len(dims[name])),
                key=lambda v, name=name: sum(
                    ((x, row[x]), (name, v)) in uncovered or ((name, v), (x, row[x])) in uncovered for x in row
                ),
            )
        row = {name: row[name] for name in names}
        uncovered -= covered_by(row)
        rows.append(row)
    return [{name: dims[name][i] for name, i in row.items()} for row in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", action="store_true", help="one bake a line instead of JSON")
    parser.add_argument("--rows", action="store_true", help="the row numbers as a JSON list (the workflow's matrix)")
    args = parser.parse_args(argv)
    rows = pairwise()
    if args.rows:
        print(json.dumps(list(range(len(rows)))))
    elif args.table:
        for i, row in enumerate(rows):
            print(f"{i:2d}  " + " ".join(f"{k}={v}" for k, v in row.items()))
    else:
        print(json.dumps({"include": [{"name": f"bake-{i}", "answers": row} for i, row in enumerate(rows)]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
