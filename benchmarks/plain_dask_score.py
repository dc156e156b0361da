"""The baseline of the whole-process benchmark: what a user would write instead of the pipeline.

    python plain_dask_score.py <dataset dir> <model dir> <output dir> [--workers 2]

A plain Dask script: start a LocalCluster shaped like the project's default (``--workers`` threads,
one per worker), read the parquet files, ``map_partitions`` the fitted model's ``predict_proba``
over them, write id / score / prediction with ``to_parquet``. No Prefect, no validation, quarantine,
manifests or reports. The model is the project's own artifact (``model.pkl``; ``model.json`` names the
id and feature columns), so both sides run the same fitted model on the same files.

Prints one JSON line: ``{"scoring_s": ...}`` (read + score + write, the work alone).
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import Client, LocalCluster


def score_partition(part: pd.DataFrame, model, id_column: str, features: list[str]) -> pd.DataFrame:
    proba = np.asarray(model.predict_proba(part[features]), dtype=np.float32).reshape(-1)
    prediction = (proba >= 0.5).astype(np.int8)
    return pd.DataFrame({id_column: part[id_column].to_numpy(), "score": proba, "prediction": prediction})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", type=Path)
    p.add_argument("model", type=Path, help="a committed model directory of the project (model.pkl, model.json)")
    p.add_argument("out", type=Path)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()

    schema = json.loads((args.model / "model.json").read_text())["schema"]
    id_column, features = schema["id"], [f["name"] for f in schema["features"]]
    with (args.model / "model.pkl").open("rb") as f:
        model = pickle.load(f)  # noqa: S301 - the benchmark's own artifact
    files = sorted(str(f) for f in args.dataset.glob("*.parquet"))
    with (
        LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster,
        Client(cluster),
    ):
        t0 = time.perf_counter()
        frame = dd.read_parquet(files, columns=[id_column, *features])
        meta = frame._meta[[id_column]].assign(score=np.float32(0), prediction=np.int8(0)).iloc[:0]
        scored = frame.map_partitions(score_partition, model, id_column, features, meta=meta)
        scored.to_parquet(str(args.out), write_index=False)
        seconds = time.perf_counter() - t0
    print(json.dumps({"scoring_s": round(seconds, 3)}))


if __name__ == "__main__":
    main()
