"""The benchmark scripts run and report consistent figures (their speed is measured by `make bench`, not here)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.baked import TEMPLATE, BakedProject


def test_bake_benchmark_reports_both_bakes_and_their_ratio(tmp_path):
    out = tmp_path / "bake.json"
    proc = subprocess.run(
        [sys.executable, str(TEMPLATE / "benchmarks" / "bench_bake.py"), "--repeats", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    figures = json.loads(out.read_text())
    this, trivial = figures["median_s"]["this template"], figures["median_s"]["trivial template"]
    assert this > 0 and trivial > 0
    assert figures["ratio"] == pytest.approx(this / trivial, rel=1e-2)
    assert f"{figures['ratio']:.2f}x" in proc.stdout
    cpu_this, cpu_trivial = figures["cpu_median_s"]["this template"], figures["cpu_median_s"]["trivial template"]
    assert 0 < cpu_trivial < cpu_this  # the hooks' processes are counted: this template runs two, the trivial none
    assert figures["cpu_ratio"] == pytest.approx(cpu_this / cpu_trivial, rel=1e-2)
    assert f"{figures['cpu_ratio']:.2f}x" in proc.stdout


@pytest.mark.slow
@pytest.mark.xdist_group("installed")
def test_project_benchmark_runs_every_section_on_small_data(installed_project: BakedProject, tmp_path):
    """benchmarks/bench_pipeline.py in a baked project, every section at small sizes (the real sizes take minutes):
    the short mode that keeps the benchmark from rotting unnoticed. Its timings are reported, never asserted."""
    out = tmp_path / "pipeline.json"
    args = f"--sizes 0.01,0.1 --repeats 1 --scaling-repeats 1 --granularity 25000,100000 --ooc-factor 0.05 --json {out}"
    args += " --wp-sizes 0.02,0.05 --wp-repeats 1 --help-repeats 1 --run-repeats 1 --nl-sizes 0.02,0.03"
    installed_project.run("poetry", "run", "python", "-m", "pip", "install", "--quiet", "psutil")  # as `make bench`
    script = str(TEMPLATE / "benchmarks" / "bench_pipeline.py")
    proc = installed_project.run("poetry", "run", "python", script, *args.split(), timeout=1800)
    figures = json.loads(out.read_text())

    whole = figures["whole_process"]
    assert whole["prefect_api"] == "local server (make server)"
    points = whole["score_vs_plain"]["points"]
    assert [p["rows"] for p in points] == [20_000, 50_000]  # both sides scored every row (checked by the script)
    second = whole["second_model"]["points"]
    assert [p["rows"] for p in second] == [20_000, 30_000]
    for point in points + second:
        pipeline, plain = point["wall_s"]["pipeline"]["median"], point["wall_s"]["plain"]["median"]
        assert pipeline > 0 and plain > 0 and point["repeats"] == 1
        assert point["wall_ratio"]["median"] == pytest.approx(pipeline / plain, rel=1e-2)  # one pair: its own ratio
        assert point["scoring_ratio"]["median"] > 0
    assert "crossover" in whole["score_vs_plain"] and "reaches_0_9" in whole["score_vs_plain"]
    assert "crossover" in whole["second_model"] and "reaches_0_9" in whole["second_model"]
    assert whole["help_s"]["median"] > 0 and whole["make_run_cold_s"] > 0 and whole["make_run_warm_s"]["median"] > 0
    if Path("/proc/self/cmdline").exists():
        assert installed_project.processes() == [], "the benchmark left processes (a Prefect server?)"
    for heading in ("Whole process", "score vs a plain Dask script", "non-linear (second) model", "make run"):
        assert heading in proc.stdout

    orchestration = figures["orchestration"]  # the script itself refuses row counts that differ
    assert orchestration["rows"] == 100_000
    for name in ("flow", "plain_dask", "sklearn"):
        assert orchestration[name]["wall_s"] > 0 and orchestration[name]["rows_per_s"] > 0
    ratios = orchestration["ratios"]
    assert ratios["flow_vs_plain_dask_wall"] == pytest.approx(
        orchestration["flow"]["wall_s"] / orchestration["plain_dask"]["wall_s"], abs=2e-3
    )

    fixed = orchestration["fixed_cost"]
    extra = orchestration["flow"]["wall_s"] - orchestration["plain_dask"]["wall_s"]
    assert fixed["flow_extra_s_per_run"] == pytest.approx(extra, abs=2e-3)

    scaling = figures["scaling"]
    assert [p["rows"] for p in scaling["points"]] == [10_000, 100_000] and scaling["span"] == 10.0
    assert isinstance(scaling["scoring"]["slope_s_per_million_rows"], float)  # its sign is a timing: noise can flip it

    grain = figures["granularity"]
    assert [(p["rows_per_file"], p["files"]) for p in grain["points"]] == [(25_000, 4), (100_000, 1)]
    assert grain["default_rows_per_file"] == 100_000  # the size nearest the default rows per file

    ooc = figures["out_of_core"]
    assert ooc["workers"] == 1 and ooc["worker_processes_seen"] == 1  # no restart
    assert ooc["rows"] >= 0.05 * 2**30 / (8 + 4 * 20) and len(ooc["peak_rss_per_worker_mib"]) == 1

    cloud = figures["cloud"]
    # From the scoring slope, or from the largest size when noise at these small sizes flattened the slope.
    assert cloud["rate_from"] in ("scoring slope", "100,000 rows, no slope") and cloud["rows_per_s_per_vcpu"] > 0
    assert [r["workers"] for r in cloud["runs"]] == [4, 8, 16, 32]
    hours = [r["hours"] for r in cloud["runs"]]
    assert hours == sorted(hours, reverse=True)  # more workers, less time

    for heading in ("Orchestration overhead", "Out-of-core", "Scaling", "Granularity", "Cloud on paper"):
        assert heading in proc.stdout


@pytest.mark.slow
@pytest.mark.xdist_group("installed")
def test_drift_benchmark_scores_the_same_files_with_and_without_counting(installed_project: BakedProject, tmp_path):
    """benchmarks/bench_drift.py in a baked project on small data: both modes timed, the ratio from the medians."""
    out = tmp_path / "drift.json"
    args = f"--rows 100000 --files 4 --repeats 1 --dir {tmp_path / 'data'} --json {out}"
    script = str(TEMPLATE / "benchmarks" / "bench_drift.py")
    installed_project.run("poetry", "run", "python", script, *args.split(), timeout=900)
    figures = json.loads(out.read_text())
    assert figures["rows"] == 100_000 and figures["files"] == 4
    assert [len(v) for v in figures["all_seconds"].values()] == [1, 1]
    without, with_ = figures["seconds_without_drift"], figures["seconds_with_drift"]
    assert figures["drift_cost_ratio"] == pytest.approx((with_ - without) / without, abs=0.01)
    assert 0 < figures["rows_counted_for_drift"] <= 100_000 and figures["counting_share_of_scoring_cpu"] > 0


def test_benchmarks_md_only_shows_options_the_scripts_accept():
    text = (TEMPLATE / "BENCHMARKS.md").read_text()
    reproduce = text[text.index("## Reproduce") : text.index("## Results")]
    options = set(re.findall(r"(--[a-z][a-z-]+)", reproduce)) - {"--help"}  # argparse gives every script --help
    assert options, "the Reproduce section shows no options"
    scripts = (TEMPLATE / "benchmarks" / "bench_bake.py").read_text() + (
        TEMPLATE / "benchmarks" / "bench_pipeline.py"
    ).read_text()
    assert {o for o in options if f'"{o}"' not in scripts} == set()


def test_crossover_and_the_size_that_reaches_a_ratio_follow_the_lines_through_the_medians():
    sys.path.insert(0, str(TEMPLATE / "benchmarks"))
    from whole_process import crossover, reaches

    def points(pipeline, plain):  # (fixed s, s per million rows) of each side, sampled at 1, 2 and 4 M rows
        return [
            {"rows": m * 1_000_000, "wall_s": {"pipeline": {"median": pipeline[0] + pipeline[1] * m},
                                               "plain": {"median": plain[0] + plain[1] * m}}}
            for m in (1, 2, 4)
        ]  # fmt: skip

    slower_start = points(pipeline=(10.0, 1.0), plain=(5.0, 1.2))  # 5 s more fixed, 0.2 s less per M rows
    assert crossover(slower_start) == {"rows": 25_000_000, "pipeline_faster_above": True}
    assert reaches(slower_start, 0.9) == pytest.approx(40 / 3 * 1e6, abs=1)  # 5 + 1.2x = 0.9 (10 + x)
    assert reaches(slower_start, 0.5) == 0  # the plain script is never twice as fast
    never = points(pipeline=(10.0, 1.5), plain=(5.0, 1.0))
    assert crossover(never) is None and reaches(never, 0.9) is None
