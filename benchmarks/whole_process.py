"""Whole-process benchmarks: the project's own commands timed as a user meets them, start-up included.

Each figure is a separate process started from a shell-like environment, timed from launch to exit:

1. ``score`` against a plain Dask script doing the same job on the same files with the same fitted
   model (``plain_dask_score.py``), at several sizes: paired runs in alternating order, medians and
   the spread (min-max) of each side and of the per-pair ratio; a line through each side's medians
   gives the fixed and per-row costs, and the crossover size (where the pipeline stops being slower).
2. ``--help`` and ``make run`` (sample sizes; the first run is cold, the rest warm).
3. A non-linear model (the second model: a scikit-learn gradient-boosting pipeline on a loan table
   with categorical and nullable columns) scored both ways: the scoring step's rows/s (the flow's
   own timing vs the plain script's compute) and the whole process.

The project's Prefect API is what a user has after ``make run``: the local server when the project
offers one (the runtime's ``ml_workflows.prefect_api``, behind ``make server``), else Prefect's temporary
server in every process. Every process gets its own ``PREFECT_HOME`` and server port, so nothing here
touches the user's Prefect.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PLAIN = HERE / "plain_dask_score.py"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


@dataclass
class Ran:
    wall: float  # seconds from launch to exit
    cpu: float  # user + system seconds of the process and every child it waited for (steadier on a busy machine)
    stdout: str


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Project:
    """The baked project in the working directory, run through its own commands and environment."""

    root: Path
    package: str
    slug: str
    work: Path
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.work / "prefect-home").mkdir(parents=True, exist_ok=True)
        if not self.env:
            # Python's default bytecode caching, as a user has it: with PYTHONDONTWRITEBYTECODE set, every
            # process compiles each module it imports from source unless the environment was installed with
            # bytecode (Poetry 2 installs without it by default; pip compiles), and Prefect, Dask and pandas
            # are thousands of modules: 6-9 s of CPU per command on this machine, a situation few users are in.
            self.env = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("PIPELINE_", "PREFECT_")) and k != "PYTHONDONTWRITEBYTECODE"
            }
            self.env.update(
                PREFECT_HOME=str(self.work / "prefect-home"),
                PREFECT_SERVER_API_PORT=str(free_port()),
                PREFECT_SERVER_ANALYTICS_ENABLED="false",
            )

    def with_package(self, src: Path) -> Project:
        """The same project and Prefect API with another copy of the package first on the path."""
        return Project(self.root, self.package, self.slug, self.work, {**self.env, "PYTHONPATH": str(src)})

    @property
    def has_local_server(self) -> bool:
        """The runtime installed in the project's environment (this interpreter's) offers the local server."""
        return importlib.util.find_spec("ml_workflows.prefect_api") is not None

    def cli(self, *args: str) -> list[str]:
        """The project's command: its console script, else the runtime's ``python -m ml_workflows`` (the same CLI)."""
        script = Path(sys.executable).with_name(self.slug)
        return [str(script), *args] if script.exists() else [sys.executable, "-m", "ml_workflows", *args]

    def run(self, argv: list[str], data: Path | None = None, **env: str) -> Ran:
        """Run one process to its end. A failure stops the benchmark."""
        full = {**self.env, **env, **({"PIPELINE_DATA_URL": str(data)} if data else {})}
        cpu0 = _children_cpu()
        t0 = time.perf_counter()
        proc = subprocess.run(argv, cwd=self.root, env=full, capture_output=True, text=True, check=False)  # noqa: S603
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"`{' '.join(argv)}` exited {proc.returncode}:\n{proc.stderr[-4000:]}")
        return Ran(wall, _children_cpu() - cpu0, proc.stdout)

    def server(self, action: str) -> None:
        """``make server`` / ``make server-stop``, through the module they call (no-op without one)."""
        if self.has_local_server:
            self.run([sys.executable, "-m", "ml_workflows.prefect_api", action])


# -- data and model, made by the project's own commands -------------------------------------------
def generate(project: Project, data: Path, rows: int, files: int) -> str:
    """Clean sample data (no malformed rows): the plain script, which validates nothing, can score every row."""
    sizes = ["--train-rows", "200000", "--train-files", "2", "--score-rows", str(rows), "--score-files", str(files)]
    project.run(project.cli("generate", *sizes), data, PIPELINE_SAMPLE_MALFORMED_FRACTION="0")
    return str(data / "sample" / "datasets" / "score")  # the sample's own data URL (Settings.for_sample)


def train(project: Project, data: Path) -> str:
    out = project.run(project.cli("train", "--dataset", str(data / "sample" / "datasets" / "train")), data).stdout
    return re.search(r"model:\s+(\S+)", out).group(1)


def parse_summary(out: str) -> dict[str, float]:
    """Rows and the scoring step's seconds from the CLI's summary (``ml_workflows.reports.summary_text``)."""
    scored = re.search(r"([\d,]+) rows scored in ([\d.]+)s", out)
    quarantined = re.search(r"quarantined:\s+([\d,]+) malformed rows", out)
    rows = int(scored.group(1).replace(",", "")) + int(quarantined.group(1).replace(",", ""))
    return {"rows": rows, "scoring_s": float(scored.group(2))}


def output_rows(out: Path) -> int:
    import pyarrow.parquet as pq  # the baked project's; the template's own environment has no pyarrow

    return sum(pq.ParquetFile(f).metadata.num_rows for f in out.glob("*.parquet"))


# -- the paired runs ------------------------------------------------------------------------------
def score_pairs(project: Project, data: Path, dataset: str, model: str, repeats: int, workers: int) -> dict[str, Any]:
    """``score`` vs the plain script, ``repeats`` pairs, the order alternating so drift hits both alike."""
    out = project.work / "plain-out"

    def pipeline() -> dict[str, float]:
        ran = project.run(project.cli("score", "--dataset", dataset, "--model", model), data)
        shutil.rmtree(data / "predictions", ignore_errors=True)
        return {"wall": ran.wall, "cpu": ran.cpu, **parse_summary(ran.stdout)}

    def plain() -> dict[str, float]:
        shutil.rmtree(out, ignore_errors=True)
        ran = project.run([sys.executable, str(PLAIN), dataset, model, str(out), "--workers", str(workers)])
        rows = output_rows(out)
        shutil.rmtree(out, ignore_errors=True)
        return {"wall": ran.wall, "cpu": ran.cpu, "rows": rows, **json.loads(ran.stdout.strip().splitlines()[-1])}

    runs: dict[str, list[dict[str, float]]] = {"pipeline": [], "plain": []}
    loads = []
    for rep in range(repeats):
        order = [("pipeline", pipeline), ("plain", plain)]
        for name, fn in order if rep % 2 == 0 else order[::-1]:
            loads.append(os.getloadavg()[0])
            runs[name].append(fn())
        log(f"    pair {rep + 1}/{repeats}: pipeline {runs['pipeline'][-1]['wall']:.2f}s, "
            f"plain {runs['plain'][-1]['wall']:.2f}s")  # fmt: skip
    rows = {r["rows"] for rs in runs.values() for r in rs}
    if len(rows) != 1:
        raise RuntimeError(f"the pipeline and the plain script scored different numbers of rows: {sorted(rows)}")
    (n,) = rows
    return {
        "rows": n,
        "repeats": repeats,
        "wall_s": {name: spread([r["wall"] for r in rs]) for name, rs in runs.items()},
        "cpu_s": {name: spread([r["cpu"] for r in rs]) for name, rs in runs.items()},
        "cpu_ratio": spread([p["cpu"] / b["cpu"] for p, b in zip(runs["pipeline"], runs["plain"], strict=True)]),
        # pipeline / plain wall time (lower is better) and its inverse, rows/s pipeline / plain (higher is better)
        "wall_ratio": spread([p["wall"] / b["wall"] for p, b in zip(runs["pipeline"], runs["plain"], strict=True)]),
        "speed_ratio": spread([b["wall"] / p["wall"] for p, b in zip(runs["pipeline"], runs["plain"], strict=True)]),
        "scoring_rows_per_s": {name: spread([n / r["scoring_s"] for r in rs]) for name, rs in runs.items()},
        "scoring_ratio": spread(
            [b["scoring_s"] / p["scoring_s"] for p, b in zip(runs["pipeline"], runs["plain"], strict=True)]
        ),
        "load_1min": spread(loads),
    }


def line(points: list[dict[str, Any]], side: str) -> tuple[float, float]:
    """Least squares through the medians: (fixed seconds, seconds per million rows)."""
    xs = [p["rows"] / 1e6 for p in points]
    ys = [p["wall_s"][side]["median"] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs) or 1.0
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return my - slope * mx, slope


def crossover(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Where the two lines cross (rows), and whether the pipeline is the faster one above that size.

    ``None`` when they do not cross at a positive size: then one side is faster at every size.
    """
    (a_p, b_p), (a_d, b_d) = line(points, "pipeline"), line(points, "plain")
    if b_p == b_d or (x := (a_p - a_d) / (b_d - b_p)) <= 0:
        return None
    return {"rows": round(x * 1e6), "pipeline_faster_above": b_p < b_d}


# -- sections -------------------------------------------------------------------------------------
def scoring_sizes(
    project: Project, sizes: list[float], rows_per_file: int, repeats: int, workers: int, label: str = "wp"
) -> dict:
    """``score`` vs the plain script at each size, with the lines through the medians and where they cross."""
    data = project.work / f"{label}-model"
    generate(project, data, 1000, 1)
    model = train(project, data)
    points = []
    for millions in sizes:
        rows = max(1, round(millions * 1e6))
        files = max(1, -(-rows // rows_per_file))
        size_data = project.work / f"{label}-{rows}"
        dataset = generate(project, size_data, rows, files)
        log(f"  score {rows:,} rows in {files} files vs plain Dask, {repeats} pairs")
        points.append({"files": files, **score_pairs(project, size_data, dataset, model, repeats, workers)})
        shutil.rmtree(size_data, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    (a_p, b_p), (a_d, b_d) = line(points, "pipeline"), line(points, "plain")
    return {
        "points": points,
        "fit": {
            "pipeline": {"fixed_s": round(a_p, 2), "s_per_million_rows": round(b_p, 3)},
            "plain": {"fixed_s": round(a_d, 2), "s_per_million_rows": round(b_d, 3)},
        },
        "crossover": crossover(points),
        "reaches_0_9": reaches(points, 0.9),
    }


def reaches(points: list[dict[str, Any]], ratio: float) -> int | None:
    """Rows from which the lines say the pipeline's rows/s is at least ``ratio`` x the plain script's
    (plain time >= ratio x pipeline time); 0 when at every size, ``None`` when at no size."""
    (a_p, b_p), (a_d, b_d) = line(points, "pipeline"), line(points, "plain")
    # a_d + b_d x >= ratio (a_p + b_p x)  <=>  (b_d - ratio b_p) x >= ratio a_p - a_d
    gain, gap = b_d - ratio * b_p, ratio * a_p - a_d
    if gap <= 0:
        return 0 if gain >= 0 else None
    return round(gap / gain * 1e6) if gain > 0 else None


def help_and_make_run(project: Project, help_repeats: int, run_repeats: int) -> dict:
    """``--help`` of the command itself and through ``poetry run`` (as the README shows it: Poetry's own
    start-up included), then ``make run`` at the sample sizes: once cold, then warm."""
    helps = [project.run(project.cli("--help")) for _ in range(help_repeats)]
    poetry = ["poetry", "run", project.slug, "--help"]
    poetry_helps = [project.run(poetry).wall for _ in range(help_repeats)]
    data = project.work / "make-run"
    make = ["make", "--no-print-directory", "run"]
    cold = project.run(make, data)  # starts the local server when the project has one
    warm = [project.run(make, data) for _ in range(run_repeats)]
    shutil.rmtree(data, ignore_errors=True)
    return {
        "help_s": spread([r.wall for r in helps]),
        "help_cpu_s": spread([r.cpu for r in helps]),
        "help_poetry_run_s": spread(poetry_helps),
        "make_run_cold_s": round(cold.wall, 2),
        "make_run_warm_s": spread([r.wall for r in warm]),
        "make_run_warm_cpu_s": spread([r.cpu for r in warm]),  # the server's own work is not in it (not a child)
    }


def second_model(project: Project, sizes: list[float], rows_per_file: int, repeats: int, workers: int) -> dict:
    """The second model in a copy of the package (PYTHONPATH first), scored both ways at each size."""
    sys.path.insert(0, str(HERE))
    from second_model import use_second_model

    src = project.work / "second-model-src"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(project.root / "src", src, ignore=shutil.ignore_patterns("__pycache__"))
    use_second_model(src / project.package, (project.root / "README.md").read_text())
    log(f"  second model: score at {', '.join(f'{m:g}' for m in sizes)} M rows vs plain Dask, {repeats} pairs each")
    return scoring_sizes(project.with_package(src), sizes, rows_per_file, repeats, workers, label="nl")


def run_all(project: Project, args: Any) -> dict[str, Any]:
    """Every whole-process section not in ``args.skip``, around one local Prefect server."""
    results: dict[str, Any] = {
        "prefect_api": "local server (make server)" if project.has_local_server else "temporary server per process"
    }
    try:
        if "make_run" not in args.skip:  # first: its first run is a cold start (it starts the local server)
            log("whole process: --help and make run...")
            results.update(help_and_make_run(project, args.help_repeats, args.run_repeats))
        project.server("start")
        if "whole" not in args.skip:
            log("whole process: score vs a plain Dask script...")
            results["score_vs_plain"] = scoring_sizes(
                project, args.wp_sizes, args.rows_per_file, args.wp_repeats, args.workers
            )
        if "second_model" not in args.skip:
            log("whole process: the second (non-linear) model...")
            results["second_model"] = second_model(
                project, args.nl_sizes, args.rows_per_file, args.wp_repeats, args.workers
            )
    finally:
        project.server("stop")
    return results


def sizes_line(s: dict[str, Any]) -> str:
    """The lines through the medians, their crossover, and from which size the 0.9x goal holds."""
    f, cross, goal = s["fit"], s["crossover"], s.get("reaches_0_9")
    if cross:
        side = "faster" if cross["pipeline_faster_above"] else "slower"
        where = f"{cross['rows']:,} rows (the pipeline is {side} above it)"
    else:
        faster = f["pipeline"]["fixed_s"] <= f["plain"]["fixed_s"]
        where = f"none (the pipeline is {'faster' if faster else 'slower'} at every size)"
    goal_text = "at no size" if goal is None else "at every size" if goal == 0 else f"from {goal:,} rows"
    return (
        f"line through the medians: fixed {f['pipeline']['fixed_s']:.2f}s vs {f['plain']['fixed_s']:.2f}s, "
        f"per M rows {f['pipeline']['s_per_million_rows']:.3f}s vs {f['plain']['s_per_million_rows']:.3f}s; "
        f"crossover: {where}; pipeline rows/s >= 0.9x the plain script's {goal_text}"
    )


def report(w: dict[str, Any]) -> list[str]:
    lines = [f"Whole process (each figure a separate process, start-up included; Prefect API: {w['prefect_api']})"]

    def fmt(s: dict[str, float], unit: str = "s") -> str:
        return f"{s['median']:.2f}{unit} ({s['min']:.2f}-{s['max']:.2f})"

    s = w.get("score_vs_plain")
    if s:
        lines.append("  score vs a plain Dask script, same files and model: median (min-max) of paired runs")
        lines.append(
            f"  {'rows':>12} {'files':>5}  {'score':>20}  {'plain Dask':>20}  {'ratio':>18}  {'CPU ratio':>18}  load"
        )
        for p in s["points"]:
            lines.append(
                f"  {p['rows']:>12,} {p['files']:>5}  {fmt(p['wall_s']['pipeline']):>20}  "
                f"{fmt(p['wall_s']['plain']):>20}  {fmt(p['wall_ratio'], 'x'):>18}  {fmt(p['cpu_ratio'], 'x'):>18}  "
                f"{p['load_1min']['median']:.1f}"
            )
        lines.append("  " + sizes_line(s))
    if "help_s" in w:
        lines.append(f"  --help {fmt(w['help_s'])} (poetry run ... --help {fmt(w['help_poetry_run_s'])})")
        lines.append(
            f"  make run (sample sizes): cold {w['make_run_cold_s']:.2f}s, warm {fmt(w['make_run_warm_s'])}, "
            f"warm CPU {fmt(w['make_run_warm_cpu_s'])}"
        )
    m = w.get("second_model")
    if m:
        lines.append("  non-linear (second) model, score vs plain Dask `map_partitions` of the same fitted model:")
        for p in m["points"]:
            rate = p["scoring_rows_per_s"]
            lines.append(
                f"    {p['rows']:,} rows in {p['files']} files, {p['repeats']} pairs: scoring step "
                f"{rate['pipeline']['median']:,.0f} vs {rate['plain']['median']:,.0f} rows/s = "
                f"{fmt(p['scoring_ratio'], 'x')}; whole process {fmt(p['wall_s']['pipeline'])} vs "
                f"{fmt(p['wall_s']['plain'])} = {fmt(p['speed_ratio'], 'x')} rows/s, CPU {fmt(p['cpu_ratio'], 'x')}"
            )
        lines.append("    " + sizes_line(m))
    return lines
