"""What the drift report costs at scoring: the same files scored with and without the per-bin counting.

Run inside a baked project's environment (its package, found through the runtime, is imported by name):

    cd build/bench/batch-scoring && poetry run python ../../../benchmarks/bench_drift.py --rows 8000000 --files 40

It writes the sample scoring data once (``--dir``, reused when present), then scores every file with the
runtime's ``ml_workflows.scoring.score_file`` on a thread-based local Dask cluster (the default), alternating
runs without and with a drift profile, ``--repeats`` times each, and prints the median seconds and the ratio,
plus, scoring every file once more in one thread, the CPU time spent counting as a share of the rest.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def package() -> str:
    name = os.environ.get("BENCH_PACKAGE")
    if name:
        return name
    from ml_workflows.project import current  # the project installed in this environment (its entry point)

    return current().package


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8_000_000)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dir", default=str(Path(tempfile.gettempdir()) / "bench-drift-data"))
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()

    pkg = package()
    sample_data = importlib.import_module(f"{pkg}.sample_data")
    schema = importlib.import_module(f"{pkg}.schema").SCHEMA
    from distributed import Client, LocalCluster
    from ml_workflows import drift, scoring

    data = Path(args.dir) / f"{args.rows}x{args.files}"
    sizes = sample_data.partition_sizes(args.rows, args.files)
    if not (data / "_done").exists():
        shutil.rmtree(data, ignore_errors=True)
        start = 0
        for i, n in enumerate(sizes):
            sample_data.write_partition(str(data), i, n, start, 43, 0.001, False)
            start += n
        (data / "_done").touch()
    files = sorted(str(p) for p in data.glob("part-*.parquet"))

    class Linear:  # the sample's fast path: one matrix-vector product per batch
        weights = np.linspace(-1, 1, len(schema.numeric)).astype(np.float32)

        def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
            x = frame[[c.name for c in schema.numeric]].to_numpy(dtype=np.float32, na_value=0)
            return 1 / (1 + np.exp(-(x @ self.weights)))

    first = pd.read_parquet(files[0])
    good = scoring.split_valid(first, schema)[0]
    profile = drift.reference_profile(good, schema)
    profile = drift.with_expected(profile, drift.count(good, profile))

    out = Path(tempfile.mkdtemp(prefix="bench-drift-out-"))
    times: dict[str, list[float]] = {"without": [], "with": []}
    counted = 0
    with (
        LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        [model] = client.scatter([Linear()], broadcast=True, hash=False)
        for repeat in range(args.repeats):
            for mode in ("without", "with") if repeat % 2 == 0 else ("with", "without"):
                shutil.rmtree(out, ignore_errors=True)
                t0 = time.perf_counter()
                futures = client.map(
                    scoring.score_file,
                    files,
                    [str(out / Path(f).name) for f in files],
                    [str(out / "quarantine" / Path(f).name) for f in files],
                    model=model,
                    schema=schema,
                    batch_rows=262_144,
                    profile=profile if mode == "with" else None,
                    pure=False,
                )
                results = client.gather(futures)
                times[mode].append(time.perf_counter() - t0)
                if mode == "with":
                    observed = drift.merge([r["drift"] for r in results])
                    scored = sum(r["scored"] for r in results)
                    assert 0 < observed["rows"] <= scored  # a systematic sample of each record batch
                    counted = observed["rows"]
    # Then, in this one thread, CPU time spent counting vs. CPU time scoring the same files with drift: a direct
    # measure of the share, less exposed than whole-run wall times to the noise of a shared machine.
    spent = {"count": 0.0}
    real_add = drift.Counter.add

    def timed_add(self, frame):
        t0 = time.thread_time()
        real_add(self, frame)
        spent["count"] += time.thread_time() - t0

    drift.Counter.add = timed_add
    t0 = time.thread_time()
    for f in files:
        name = Path(f).name
        scoring.score_file(f, str(out / name), str(out / "q" / name), Linear(), schema, 262_144, profile=profile)
    cpu = time.thread_time() - t0
    drift.Counter.add = real_add
    shutil.rmtree(out, ignore_errors=True)
    without, with_ = statistics.median(times["without"]), statistics.median(times["with"])
    figures = {
        "rows": args.rows,
        "files": args.files,
        "features": len(schema.features),
        "workers": args.workers,
        "repeats": args.repeats,
        "seconds_without_drift": round(without, 4),
        "seconds_with_drift": round(with_, 4),
        "all_seconds": {k: [round(t, 4) for t in v] for k, v in times.items()},
        "drift_cost_ratio": round((with_ - without) / without, 4),
        "rows_counted_for_drift": counted,
        "counting_share_of_scoring_cpu": round(spent["count"] / (cpu - spent["count"]), 4),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
