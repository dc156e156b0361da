"""Pipeline benchmarks: every figure is a ratio against a baseline measured in the same run.

    make bench                      # here: bakes build/bench, installs it, runs this script in it
    cd <baked project> && poetry run python <template>/benchmarks/bench_pipeline.py --help
    ... bench_pipeline.py --sizes 0.1,1,10 --repeats 5 --ooc-memory 1GiB

A template maintainer's tool: it runs inside a baked project's environment (its working directory)
and imports that project's package (found through the runtime, ``ml_workflows.project.current()``) and the
runtime's modules (``ml_workflows.scoring``, ``ml_workflows.steps``, ...).

First the whole-process figures (``whole_process.py``): the project's commands (``score``, ``--help``,
``make run``, a non-linear second model) timed as separate processes against a plain Dask script, as a
user meets them. Then the in-process figures, all on synthetic parquet data written by the project's own
generator, timed inside this one process (Prefect's temporary server started once for all of them):

1. Orchestration overhead: the same scoring three ways on the same files, median of ``--repeats``:
   the generated Prefect ``score`` flow on a LocalCluster (the project's defaults), the same
   numpy scoring as a plain ``dask.distributed`` script on an identical LocalCluster, and one
   single process with scikit-learn's ``predict_proba`` (no Dask; the same streaming parquet
   read / validate / write, so only the model and the parallelism differ). Wall times include
   cluster start-up; the "scoring" times cover the work only.
2. Out-of-core: a dataset at least ``--ooc-factor`` x the total memory limit of the Dask workers,
   scored by the flow on worker processes with ``PIPELINE_MEMORY_LIMIT``; rows/s and peak RSS per
   worker (psutil, sampled every 50 ms); worker restarts would show up as extra worker PIDs.
3. Scaling: flow wall time over dataset sizes spanning two orders of magnitude; least-squares
   line, slope (s per million rows), intercept (fixed cost per run) and R^2.
4. Granularity: the largest scaling dataset rewritten as files of ``--granularity`` rows each
   (one Dask task per file), scored by the flow; rows/s per file size, against the default size.
5. Cloud on paper: from the measured throughput and the prices in ``prices.json`` (through
   ``ml_workflows.cost``), time and cost to score ``--cloud-gb`` GB with N Fargate workers.

Other processes on the machine make single timings noisy: compare the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Quiet, offline Prefect (the ephemeral API server starts once for the whole benchmark).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import whole_process  # noqa: E402
from ml_workflows import cost, steps  # noqa: E402
from ml_workflows.deploy import stack_config  # noqa: E402
from ml_workflows.model_store import load_model  # noqa: E402
from ml_workflows.project import current  # noqa: E402
from ml_workflows.scoring import score_file as _score_file  # noqa: E402
from ml_workflows.settings import Settings  # noqa: E402
from ml_workflows.storage import list_parquet  # noqa: E402

# The baked project's package and command (its console script is named after the project), as the runtime finds it.
PROJECT = current()
_PKG, _SLUG = PROJECT.package, PROJECT.name
flows = importlib.import_module(f"{_PKG}.flows")
SCHEMA = importlib.import_module(f"{_PKG}.schema").SCHEMA
Model = Any


def score_file(in_url: str, out_url: str, quarantine_url: str, model: Any, batch_rows: int) -> dict[str, Any]:
    return _score_file(in_url, out_url, quarantine_url, model, SCHEMA, batch_rows)


MIB = 2**20


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_size(text: str) -> int:
    """``384MiB`` / ``1GiB`` / bytes -> bytes."""
    units = {"kib": 2**10, "mib": 2**20, "gib": 2**30, "kb": 10**3, "mb": 10**6, "gb": 10**9, "b": 1}
    lowered = text.strip().lower()
    for unit, factor in units.items():
        if lowered.endswith(unit):
            return int(float(lowered[: -len(unit)]) * factor)
    return int(lowered)


@contextlib.contextmanager
def pipeline_env(**values: Any) -> Iterator[None]:
    """Set ``PIPELINE_*`` variables for the block (the flows read their settings from them)."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("PIPELINE_")}
    for key in saved:
        del os.environ[key]
    os.environ.update({"PIPELINE_" + k.upper(): str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith("PIPELINE_")]:
            del os.environ[key]
        os.environ.update(saved)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def per_second(rows: int, seconds: float) -> int:
    """Rows per second; 0 when the run was too short to time (the flow reports seconds to 0.01 s)."""
    return round(rows / seconds) if seconds > 0 else 0


def files_for(rows: int, rows_per_file: int) -> int:
    return max(1, math.ceil(rows / rows_per_file))


def dataset_bytes(files: list[str]) -> int:
    return sum(os.path.getsize(f) for f in files)


# -- data and model -------------------------------------------------------------------------------
def make_dataset(root: Path, rows: int, files: int, env: dict[str, Any]) -> tuple[str, float]:
    """Generate a scoring dataset of ``rows`` in ``files`` parquet files under ``root`` (by the flow)."""
    with pipeline_env(**env, data_url=root):
        seconds, _ = timed(
            lambda: flows.generate_flow(
                data_url=str(root), train_rows=1000, train_files=1, score_rows=rows, score_files=files
            )
        )
    return steps.paths(Settings(data_url=str(root)).for_sample())["score"], seconds


def train_model(root: Path, env: dict[str, Any]) -> str:
    with pipeline_env(**env, data_url=root):
        flows.generate_flow(data_url=str(root), train_rows=200_000, train_files=2, score_rows=1000, score_files=1)
        sample = steps.paths(Settings(data_url=str(root)).for_sample())["train"]
        return flows.train_flow(data_url=str(root), dataset_url=sample)["model"]["model_url"]


def sklearn_pipeline(model: Model) -> Any:
    """The sample's fitted linear model (folded weights) as a plain scikit-learn logistic regression."""
    from sklearn.linear_model import LogisticRegression

    estimator = LogisticRegression()
    estimator.coef_ = np.asarray(model.weights, dtype=np.float64).reshape(1, -1)
    estimator.intercept_ = np.array([model.bias], dtype=np.float64)
    estimator.classes_ = np.array([0, 1])
    estimator.n_features_in_ = len(model.features)
    return estimator


# -- the three ways to score ----------------------------------------------------------------------
def run_flow(root: Path, model_url: str, dataset_url: str, env: dict[str, Any]) -> dict[str, float]:
    with pipeline_env(**env, data_url=root):
        wall, run = timed(lambda: flows.score_flow(data_url=str(root), model_url=model_url, dataset_url=dataset_url))
    result = run["scoring"]
    shutil.rmtree(root / "predictions", ignore_errors=True)
    return {"wall": wall, "scoring": result["seconds"], "rows": result["rows"] + result["quarantined_rows"]}


def run_plain_dask(out: Path, model: Model, files: list[str], batch_rows: int, n_workers: int) -> dict[str, float]:
    """What a hand-written script does: start a LocalCluster, map the scoring over the files, gather."""
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    with (
        LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=False, memory_limit="auto", dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        t1 = time.perf_counter()
        futures = client.map(
            _score_file,
            files,
            [str(out / f"part-{i:05d}.parquet") for i in range(len(files))],
            [str(out / "quarantine" / f"part-{i:05d}.parquet") for i in range(len(files))],
            model=model,
            schema=SCHEMA,
            batch_rows=batch_rows,
            pure=False,
        )
        results = client.gather(futures)
        scoring = time.perf_counter() - t1
    wall = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    return {"wall": wall, "scoring": scoring, "rows": sum(r["scored"] + r["quarantined"] for r in results)}


class SklearnScorer:
    """``score_file``'s model interface served by the scikit-learn pipeline (the baseline's model)."""

    def __init__(self, pipeline: Any, features: list[str]) -> None:
        self.pipeline = pipeline
        self.features = tuple(features)

    def predict_proba(self, frame: Any) -> np.ndarray:
        x = frame[list(self.features)].to_numpy(dtype=np.float64)
        return self.pipeline.predict_proba(x)[:, 1].astype(np.float32)


def run_sklearn(out: Path, scorer: SklearnScorer, files: list[str], batch_rows: int) -> dict[str, float]:
    """One process, no Dask: the same streaming read / validate / write per file, scikit-learn's predict_proba."""
    t0 = time.perf_counter()
    rows = 0
    for i, path in enumerate(files):
        name = f"part-{i:05d}.parquet"
        counts = score_file(path, str(out / name), str(out / "quarantine" / name), scorer, batch_rows)
        rows += counts["scored"] + counts["quarantined"]
    wall = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    return {"wall": wall, "scoring": wall, "rows": rows}


# -- memory sampling ------------------------------------------------------------------------------
class RssSampler:
    """Peak RSS of every worker process (spawned child) that appears while it runs."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.me = psutil.Process()
        self.before = {p.pid for p in self.me.children(recursive=True)}
        self.peak: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for child in self.me.children(recursive=True):
                if child.pid in self.before:
                    continue
                with contextlib.suppress(psutil.Error):
                    # Asked at every sample: a worker caught between fork and exec still shows this process's
                    # command line, and ruling it out for good then left a run with no worker seen at all.
                    if "spawn_main" in " ".join(child.cmdline()):  # a worker, not the resource tracker
                        rss = child.memory_info().rss
                        self.peak[child.pid] = max(self.peak.get(child.pid, 0), rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- sections -------------------------------------------------------------------------------------
def median_of(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def orchestration(args: argparse.Namespace, root: Path, model_url: str, dataset_url: str, env: dict) -> dict:
    model = load_model(model_url)
    files = list_parquet(dataset_url)
    scorer = SklearnScorer(sklearn_pipeline(model), model.features)
    runs: dict[str, list[dict[str, float]]] = {"flow": [], "plain_dask": [], "sklearn": []}
    methods: dict[str, Callable[[], dict[str, float]]] = {
        "flow": lambda: run_flow(root, model_url, dataset_url, env),
        "plain_dask": lambda: run_plain_dask(root / "plain", model, files, args.batch_rows, args.workers),
        "sklearn": lambda: run_sklearn(root / "sklearn", scorer, files, args.batch_rows),
    }
    order = list(methods)
    for rep in range(args.repeats):
        for name in order[rep % 3 :] + order[: rep % 3]:  # rotate the order: load spikes hit all alike
            runs[name].append(methods[name]())
            log(f"  orchestration {rep + 1}/{args.repeats} {name:10} wall {runs[name][-1]['wall']:.2f}s")
    rows = runs["flow"][0]["rows"]
    if any(r["rows"] != rows for rs in runs.values() for r in rs):
        raise RuntimeError("the three ways of scoring read different numbers of rows")
    out: dict[str, Any] = {"rows": rows, "files": len(files), "repeats": args.repeats}
    for name, rs in runs.items():
        out[name] = {
            "wall_s": round(median_of(rs, "wall"), 3),
            "scoring_s": round(median_of(rs, "scoring"), 3),
            "rows_per_s": per_second(rows, median_of(rs, "scoring")),
            "walls": [round(r["wall"], 3) for r in rs],
        }
    out["ratios"] = {
        "flow_vs_plain_dask_wall": round(out["flow"]["wall_s"] / out["plain_dask"]["wall_s"], 3),
        "flow_vs_plain_dask_scoring": round(out["flow"]["scoring_s"] / out["plain_dask"]["scoring_s"], 3),
        "flow_vs_sklearn_wall": round(out["flow"]["wall_s"] / out["sklearn"]["wall_s"], 3),
        "plain_dask_vs_sklearn_wall": round(out["plain_dask"]["wall_s"] / out["sklearn"]["wall_s"], 3),
    }
    return out


def fixed_cost(orchestration: dict, scale: dict) -> dict:
    """What a flow run costs over the plain script, and from what size that is under 5% of the wall time."""
    extra = orchestration["flow"]["wall_s"] - orchestration["plain_dask"]["wall_s"]
    slope = scale["scoring"]["slope_s_per_million_rows"]  # plain Dask scores at the flow's rate (ratio above)
    return {
        "flow_extra_s_per_run": round(extra, 3),
        "wall_ratio_under_1_05_from_million_rows": round(max(extra, 0.0) / (0.05 * slope), 1) if slope > 0 else None,
    }


def out_of_core(args: argparse.Namespace, work: Path, model_url: str, env: dict) -> dict:
    limit = parse_size(args.ooc_memory)
    total_limit = limit * args.ooc_workers
    features = len(SCHEMA.features)
    bytes_per_row = 8 + 4 * features  # id int64 + float32 features, as decoded in memory
    rows = math.ceil(args.ooc_factor * total_limit / bytes_per_row)
    files = files_for(rows, args.rows_per_file)
    root = work / "ooc"
    # A paused worker (RSS above 80% of its limit) would stall the run: fail after 15 minutes instead.
    ooc_env = {
        **env,
        "n_workers": args.ooc_workers,
        "processes": "true",
        "memory_limit": args.ooc_memory,
        "batch_rows": args.ooc_batch_rows,
        "task_timeout": 900,
    }
    log(f"  out-of-core: generating {rows:,} rows in {files} files")
    dataset_url, _ = make_dataset(root, rows, files, env)  # generated without the limit: scoring is measured
    data_files = list_parquet(dataset_url)
    with RssSampler() as sampler:
        result = run_flow(root, model_url, dataset_url, ooc_env)
    on_disk = dataset_bytes(data_files)
    shutil.rmtree(root, ignore_errors=True)
    workers = sorted(sampler.peak.values(), reverse=True)[: args.ooc_workers]
    return {
        "rows": result["rows"],
        "files": files,
        "workers": args.ooc_workers,
        "memory_limit_per_worker": args.ooc_memory,
        "batch_rows": args.ooc_batch_rows,
        "dataset_in_memory_mib": round(rows * bytes_per_row / MIB),
        "dataset_on_disk_mib": round(on_disk / MIB),
        "times_total_memory_limit": round(rows * bytes_per_row / total_limit, 2),
        "wall_s": round(result["wall"], 2),
        "rows_per_s": per_second(result["rows"], result["scoring"]),
        "peak_rss_per_worker_mib": [round(b / MIB) for b in workers],
        "peak_rss_vs_limit": round(max(workers) / limit, 3) if workers else None,
        "worker_processes_seen": len(sampler.peak),
    }


def scaling(args: argparse.Namespace, work: Path, model_url: str, env: dict) -> tuple[dict, dict[int, str]]:
    """Flow runs over ``--sizes``; also returns the datasets (rows -> url), kept for the other sections."""
    points = []
    datasets = {}
    for millions in args.sizes:
        rows = max(1, round(millions * 1e6))
        files = files_for(rows, args.rows_per_file)
        root = work / f"scale-{rows}"
        dataset_url, gen = make_dataset(root, rows, files, env)
        datasets[rows] = dataset_url
        runs = [run_flow(root, model_url, dataset_url, env) for _ in range(args.scaling_repeats)]
        point = {
            "rows": rows,
            "files": files,
            "bytes": dataset_bytes(list_parquet(dataset_url)),
            "generate_s": round(gen, 2),
            "wall_s": round(median_of(runs, "wall"), 3),
            "scoring_s": round(median_of(runs, "scoring"), 3),
        }
        points.append(point)
        log(f"  scaling {rows:>11,} rows in {files:>3} files: flow wall {point['wall_s']:.2f}s")
    x = np.array([p["rows"] / 1e6 for p in points])
    out: dict[str, Any] = {"points": points}
    for key in ("wall_s", "scoring_s"):
        y = np.array([p[key] for p in points])
        slope, intercept = np.polyfit(x, y, 1)
        fit = slope * x + intercept
        r2 = 1 - float(((y - fit) ** 2).sum()) / float(((y - y.mean()) ** 2).sum() or 1.0)
        out[key.replace("_s", "")] = {
            "slope_s_per_million_rows": round(float(slope), 4),
            "intercept_s": round(float(intercept), 3),
            "r2": round(r2, 4),
        }
    out["bytes_per_row_on_disk"] = round(sum(p["bytes"] for p in points) / sum(p["rows"] for p in points), 1)
    out["span"] = round(x.max() / x.min(), 1)
    return out, datasets


def granularity(args: argparse.Namespace, work: Path, model_url: str, rows: int, scaled_url: str, env: dict) -> dict:
    """The same rows as files of different sizes: what one Dask task per file costs and gains.

    ``scaled_url`` is the scaling section's dataset of ``rows``: reused where its files match.
    """
    points = []
    for per_file in args.granularity:
        files = files_for(rows, per_file)
        reuse = files == files_for(rows, args.rows_per_file)
        root = work / (f"scale-{rows}" if reuse else f"grain-{per_file}")
        dataset_url = scaled_url if reuse else make_dataset(root, rows, files, env)[0]
        runs = [run_flow(root, model_url, dataset_url, env) for _ in range(args.repeats)]
        if not reuse:
            shutil.rmtree(root, ignore_errors=True)
        scoring = median_of(runs, "scoring")
        points.append({"rows_per_file": per_file, "files": files, "scoring_s": round(scoring, 3)})
        log(f"  granularity {per_file:>9,} rows per file ({files:>4} files): scoring {scoring:.2f}s")
    default = min(points, key=lambda p: abs(p["rows_per_file"] - args.rows_per_file))
    for point in points:
        point["rows_per_s"] = per_second(rows, point["scoring_s"])
        point["vs_default"] = round(default["scoring_s"] / point["scoring_s"], 3) if point["scoring_s"] else 0.0
    return {"rows": rows, "repeats": args.repeats, "default_rows_per_file": default["rows_per_file"], "points": points}


def cloud(args: argparse.Namespace, scale: dict, local_vcpus: int) -> dict:
    """Time and cost of ``--cloud-gb`` GB on N Fargate workers, from the measured per-vCPU rate."""
    slope = scale["scoring"]["slope_s_per_million_rows"]
    if slope > 0:
        rate, basis = 1e6 / slope, "scoring slope"  # rows/s on this machine, fixed costs excluded
    else:
        # At small --sizes on a busy machine the noise can outweigh the growth: the largest size's rate then
        # (it includes that run's fixed costs, so it errs on the slow side).
        largest = max(scale["points"], key=lambda p: p["rows"])
        rate, basis = largest["rows"] / max(largest["scoring_s"], 1e-9), f"{largest['rows']:,} rows, no slope"
        log(f"  the scoring time did not grow with the data (slope {slope}): the rate of the largest size instead")
    prices = cost.load_prices()
    nat = stack_config.read().nat_gateways  # the project's stack (infrastructure/Pulumi.yaml), as make cost reads it
    per_vcpu = rate / local_vcpus
    rows = args.cloud_gb * 1e9 / scale["bytes_per_row_on_disk"]
    table = []
    for workers in args.cloud_workers:
        seconds = args.startup_seconds + rows / (per_vcpu * workers * args.vcpus)
        hours = seconds / 3600
        est = cost.estimate(workers, args.vcpus, hours, data_gb=args.cloud_gb, nat_gateways=nat, prices=prices)
        table.append(
            {
                "workers": workers,
                "vcpus_per_worker": args.vcpus,
                "hours": round(hours, 2),
                "cost_on_demand": round(est.run_on_demand, 2),
                "cost_spot_workers": round(est.run_spot, 2),
            }
        )
    return {
        "data_gb": args.cloud_gb,
        "rows": round(rows),
        "rows_per_s_per_vcpu": round(per_vcpu),
        "rate_from": basis,
        "startup_s": args.startup_seconds,
        "prices_as_of": prices["as_of"],
        "region": prices["region"],
        "runs": table,
    }


# -- report ---------------------------------------------------------------------------------------
def report(results: dict) -> str:
    lines = [f"Benchmarks  {results['date']}  ({results['machine']})", ""]
    lines += [*whole_process.report(results["whole_process"]), ""]
    if "scaling" in results:
        lines += ["In process (one Python process, timed inside it; Prefect's temporary server started once):", ""]
    o = results.get("orchestration")
    if o:
        lines.append(f"Orchestration overhead: {o['rows']:,} rows in {o['files']} files, median of {o['repeats']}")
        lines.append(f"  {'':28}{'wall s':>9}{'scoring s':>11}{'rows/s':>13}")
        for name, label in (
            ("flow", "Prefect flow (LocalCluster)"),
            ("plain_dask", "plain dask.distributed"),
            ("sklearn", "single-process sklearn"),
        ):
            r = o[name]
            lines.append(f"  {label:28}{r['wall_s']:>9.2f}{r['scoring_s']:>11.2f}{r['rows_per_s']:>13,}")
        for key, value in o["ratios"].items():
            lines.append(f"  {key:36}{value:>8.3f}x")
        fixed = o.get("fixed_cost")
        if fixed:
            lines.append(
                f"  the flow costs {fixed['flow_extra_s_per_run']:.2f}s more per run (fixed: Prefect's engine and "
                "state API calls, the Dask performance report, artifacts, the atomic commit);"
            )
            within = fixed["wall_ratio_under_1_05_from_million_rows"]
            lines.append(
                f"  at the scaling slope its wall time is within 5% of the plain script from {within:,} M rows per run"
                if within is not None
                else "  (no size where it is within 5% of the plain script: the scoring slope was not positive)"
            )
        lines.append("")
    c = results.get("out_of_core")
    if c:
        lines.append(
            f"Out-of-core: {c['rows']:,} rows ({c['dataset_in_memory_mib']:,} MiB in memory, "
            f"{c['dataset_on_disk_mib']:,} MiB parquet) = {c['times_total_memory_limit']}x the workers' "
            f"total memory limit ({c['workers']} x {c['memory_limit_per_worker']}), batches of {c['batch_rows']:,} rows"
        )
        lines.append(
            f"  completed in {c['wall_s']}s: {c['rows_per_s']:,} rows/s; peak RSS per worker "
            f"{c['peak_rss_per_worker_mib']} MiB ({c['peak_rss_vs_limit']}x the limit); "
            f"worker processes seen {c['worker_processes_seen']} (more than {c['workers']} = a restart)"
        )
        lines.append("")
    s = results.get("scaling")
    if s:
        lines.append(f"Scaling: flow wall time over {s['span']}x dataset sizes")
        for p in s["points"]:
            lines.append(
                f"  {p['rows']:>12,} rows {p['files']:>4} files   "
                f"wall {p['wall_s']:>7.2f}s   scoring {p['scoring_s']:>7.2f}s"
            )
        for key in ("wall", "scoring"):
            f = s[key]
            lines.append(
                f"  {key:8} slope {f['slope_s_per_million_rows']:.3f} s per M rows, intercept {f['intercept_s']:.2f}s, "
                f"R^2 {f['r2']:.4f}"
            )
        lines.append("")
    g = results.get("granularity")
    if g:
        lines.append(
            f"Granularity: {g['rows']:,} rows as files of N rows (one Dask task per file), median of {g['repeats']}"
        )
        for p in g["points"]:
            mark = "  (default)" if p["rows_per_file"] == g["default_rows_per_file"] else ""
            lines.append(
                f"  {p['rows_per_file']:>10,} rows/file {p['files']:>5} files   scoring {p['scoring_s']:>6.2f}s "
                f"{p['rows_per_s']:>12,} rows/s   {p['vs_default']:.2f}x the default{mark}"
            )
        lines.append("")
    k = results.get("cloud")
    if k:
        lines.append(
            f"Cloud on paper: {k['data_gb']:g} GB = {k['rows']:,} rows at {k['rows_per_s_per_vcpu']:,} rows/s per vCPU "
            f"(measured here: {k['rate_from']}), +{k['startup_s']}s start-up; "
            f"prices {k['region']} as of {k['prices_as_of']} (ml_workflows.cost)"
        )
        lines.append(f"  {'workers':>8}{'vCPU':>6}{'hours':>8}{'on-demand $':>13}{'spot workers $':>16}")
        for r in k["runs"]:
            lines.append(
                f"  {r['workers']:>8}{r['vcpus_per_worker']:>6}{r['hours']:>8.2f}{r['cost_on_demand']:>13.2f}"
                f"{r['cost_spot_workers']:>16.2f}"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--sizes",
        default=env("BENCH_SIZES", "0.05,0.15,0.5,1.5,5"),
        help="scaling sizes, million rows (largest is also the orchestration dataset)",
    )
    p.add_argument("--rows-per-file", type=int, default=int(env("BENCH_ROWS_PER_FILE", "250000")))
    p.add_argument("--repeats", type=int, default=int(env("BENCH_REPEATS", "3")), help="orchestration repeats (median)")
    p.add_argument(
        "--scaling-repeats", type=int, default=int(env("BENCH_SCALING_REPEATS", "3")), help="runs per size (median)"
    )
    p.add_argument("--workers", type=int, default=2, help="local Dask workers")
    p.add_argument("--batch-rows", type=int, default=Settings().batch_rows)
    p.add_argument(
        "--ooc-memory", default=env("BENCH_OOC_MEMORY", "1GiB"), help="memory limit per worker (out-of-core)"
    )
    p.add_argument(
        "--ooc-batch-rows",
        type=int,
        default=int(env("BENCH_OOC_BATCH_ROWS", str(Settings().batch_rows))),
        help="PIPELINE_BATCH_ROWS for the out-of-core run",
    )
    p.add_argument("--ooc-workers", type=int, default=int(env("BENCH_OOC_WORKERS", "1")), help="worker processes")
    p.add_argument("--ooc-factor", type=float, default=float(env("BENCH_OOC_FACTOR", "4")))
    p.add_argument(
        "--granularity",
        default=env("BENCH_GRANULARITY", "62500,250000,1000000"),
        help="rows per file to compare (the largest scaling size, rewritten)",
    )
    p.add_argument("--cloud-gb", type=float, default=500.0)
    p.add_argument("--cloud-workers", default="4,8,16,32")
    p.add_argument("--vcpus", type=int, default=PROJECT.worker_vcpus, help="vCPUs per Fargate worker")
    p.add_argument("--startup-seconds", type=float, default=180.0, help="Fargate cluster start-up assumed")
    p.add_argument(
        "--wp-sizes", default=env("BENCH_WP_SIZES", "0.5,2,8"), help="whole process: score sizes, million rows"
    )
    p.add_argument("--wp-repeats", type=int, default=int(env("BENCH_WP_REPEATS", "5")), help="whole process: pairs")
    p.add_argument("--help-repeats", type=int, default=5, help="whole process: --help runs")
    p.add_argument("--run-repeats", type=int, default=3, help="whole process: warm make run runs (after a cold one)")
    p.add_argument(
        "--nl-sizes",
        default=env("BENCH_NL_SIZES", "1.5,6"),
        help="second (non-linear) model: score sizes, million rows",
    )
    p.add_argument(
        "--skip",
        default="",
        help="comma-separated sections to skip: whole,make_run,second_model, in_process (all below) or "
        "orchestration,granularity,ooc",
    )
    p.add_argument("--json", type=Path, help="also write the figures as JSON here")
    p.add_argument("--work-dir", type=Path, help="keep data here instead of a temporary directory")
    args = p.parse_args(argv)
    args.sizes = sorted(float(s) for s in args.sizes.split(","))
    args.wp_sizes = sorted(float(s) for s in args.wp_sizes.split(","))
    args.nl_sizes = sorted(float(s) for s in args.nl_sizes.split(","))
    args.cloud_workers = [int(w) for w in args.cloud_workers.split(",")]
    args.granularity = sorted(int(r) for r in args.granularity.split(","))
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    return args


def in_process(args: argparse.Namespace, work: Path, env: dict, results: dict) -> None:
    """The in-process sections, timed inside this process: results go into ``results``."""
    log("in process: training the model (generate + train flows)...")
    model_url = train_model(work / "model", env)
    log("scaling...")
    scale, datasets = scaling(args, work, model_url, env)
    results["scaling"] = scale
    rows = max(datasets)  # the largest scaling dataset serves the sections below
    if "orchestration" not in args.skip:
        log("orchestration overhead...")
        results["orchestration"] = orchestration(args, work / f"scale-{rows}", model_url, datasets[rows], env)
    if "granularity" not in args.skip:
        log("granularity...")
        results["granularity"] = granularity(args, work, model_url, rows, datasets[rows], env)
    if "ooc" not in args.skip:
        log("out-of-core...")
        results["out_of_core"] = out_of_core(args, work, model_url, env)
    if "orchestration" in results:
        results["orchestration"]["fixed_cost"] = fixed_cost(results["orchestration"], scale)
    results["cloud"] = cloud(args, scale, args.workers)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB",
        "args": {
            k: (sorted(v) if isinstance(v, set) else str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
        },
    }
    env = {"n_workers": args.workers, "batch_rows": args.batch_rows, "retries": 0}
    with contextlib.ExitStack() as stack:
        work = args.work_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        project = whole_process.Project(Path.cwd(), _PKG, _SLUG, work / "whole")
        results["whole_process"] = whole_process.run_all(project, args)
        if "in_process" not in args.skip:
            in_process(args, work, env, results)
        results["total_s"] = round(time.perf_counter() - t0, 1)
    print(report(results))
    print(f"\n(benchmark took {results['total_s']}s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
