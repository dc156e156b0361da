"""What baking this template costs: bake + validate with defaults vs a bare cookiecutter bake.

    make bench                        # runs this, then the generated project's own benchmarks
    .venv/bin/python benchmarks/bench_bake.py [--repeats 5]

Both bakes run the ``cookiecutter`` command line (the same interpreter start-up and imports) into
temporary directories, alternately, ``--repeats`` times; the report gives the medians and their
ratio, in wall time and in CPU time (user + system of cookiecutter and the hooks it runs: on a
machine busy with other jobs, wall time mostly measures waiting for a core). The baseline is a
trivial template (one prompt, one file, no hooks) written to a temporary directory in the same
run. This template's bake includes its pre-generation validation hook and the post-generation pin
check, which runs the generated project's checker in the hook's process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent


def cookiecutter_command() -> list[str]:
    exe = Path(sys.executable).with_name("cookiecutter")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "cookiecutter"]


def trivial_template(root: Path) -> Path:
    template = root / "trivial"
    (template / "{{cookiecutter.project_slug}}").mkdir(parents=True)
    (template / "cookiecutter.json").write_text(json.dumps({"project_slug": "trivial"}))
    (template / "{{cookiecutter.project_slug}}" / "README.md").write_text("# {{ cookiecutter.project_slug }}\n")
    return template


def bake(template: Path, out: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one bake; the CPU time includes the hook processes cookiecutter waited for."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    command = [*cookiecutter_command(), "--no-input", "--default-config", "--output-dir", str(out), str(template)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)  # noqa: S603 - our own cookiecutter and paths
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, command)
    shutil.rmtree(out, ignore_errors=True)
    return seconds, usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=int(os.environ.get("BENCH_BAKE_REPEATS", "5")))
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-bake-") as tmp:
        root = Path(tmp)
        trivial = trivial_template(root)
        times: dict[str, list[float]] = {"this template": [], "trivial template": []}
        cpu: dict[str, list[float]] = {"this template": [], "trivial template": []}
        bake(TEMPLATE, root / "warm-up")  # first run pays for cold imports and file caches
        for _ in range(args.repeats):
            for name, template in (("this template", TEMPLATE), ("trivial template", trivial)):
                wall, used = bake(template, root / "out")
                times[name].append(wall)
                cpu[name].append(used)
    med = {k: statistics.median(v) for k, v in times.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    # Rounded once, so the printed ratio and the JSON one are the same number.
    ratio = round(med["this template"] / med["trivial template"], 3)
    cpu_ratio = round(cpu_med["this template"] / cpu_med["trivial template"], 3)
    print(f"Bake (cookiecutter --no-input, defaults), median of {args.repeats}:")
    for name, value in med.items():
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"  {name:18} {value:6.2f}s   (runs: {runs})")
    print(f"  ratio              {ratio:6.2f}x  (bake + validation hooks + pin check vs a bare bake)")
    print("CPU time (user + system, hooks included), median:")
    for name, value in cpu_med.items():
        print(f"  {name:18} {value:6.2f}s")
    print(f"  ratio              {cpu_ratio:6.2f}x")
    if args.json:
        figures = {"median_s": med, "runs_s": times, "ratio": ratio}
        figures |= {"cpu_median_s": cpu_med, "cpu_runs_s": cpu, "cpu_ratio": cpu_ratio}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
