"""What baking this template costs: bake + validate with defaults vs a bare cookiecutter bake.

    make bench                        # runs this, then the generated project's own benchmarks
    .venv/bin/python benchmarks/bench_bake.py [--repeats 5]

Both bakes run the ``cookiecutter`` command line (the same interpreter start-up and imports) into
temporary directories, alternately, ``--repeats`` times; the report gives the medians and their
ratio. The baseline is a trivial template (one prompt, one file, no hooks) written to a temporary
directory in the same run. This template's bake includes its pre-generation validation hook and
the post-generation pin check, which runs the generated project's checker in a subprocess.
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


def bake(template: Path, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    subprocess.run(  # noqa: S603 - our own cookiecutter executable and paths
        [*cookiecutter_command(), "--no-input", "--default-config", "--output-dir", str(out), str(template)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=int(os.environ.get("BENCH_BAKE_REPEATS", "5")))
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-bake-") as tmp:
        root = Path(tmp)
        trivial = trivial_template(root)
        times: dict[str, list[float]] = {"this template": [], "trivial template": []}
        bake(TEMPLATE, root / "warm-up")  # first run pays for cold imports and file caches
        for _ in range(args.repeats):
            times["this template"].append(bake(TEMPLATE, root / "out"))
            times["trivial template"].append(bake(trivial, root / "out"))
    med = {k: statistics.median(v) for k, v in times.items()}
    # Rounded once, so the printed ratio and the JSON one are the same number.
    ratio = round(med["this template"] / med["trivial template"], 3)
    print(f"Bake (cookiecutter --no-input, defaults), median of {args.repeats}:")
    for name, value in med.items():
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"  {name:18} {value:6.2f}s   (runs: {runs})")
    print(f"  ratio              {ratio:6.2f}x  (bake + validation hooks + pin check vs a bare bake)")
    if args.json:
        args.json.write_text(json.dumps({"median_s": med, "runs_s": times, "ratio": ratio}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
