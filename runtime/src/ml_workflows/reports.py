"""What a user checks first after a run, published as Prefect artifacts.

One :class:`RunObserver` per flow run records the duration of each stage, the size of the Dask
cluster and a Dask performance report (``distributed.performance_report``, saved with the run's
outputs under ``<data>/reports/<run_id>/``), then publishes:

- ``pipeline-rows``      table: rows in / out / quarantined per stage and the quarantined share
- ``pipeline-stages``    table: seconds per stage and in total
- ``pipeline-cluster``   markdown: workers, threads, memory and the cost estimate of the run
- ``dask-performance-report``  link to the saved HTML report

and, from the steps: ``model-comparison`` (the new model against the current one, and the decision:
:mod:`.promotion`) and ``drift-report`` (PSI per feature of the scored rows: :mod:`.drift`).

Cost: a Fargate run is priced with :mod:`.cost` (its workers, the answered vCPUs per worker, the
run's duration; Spot when chosen). A local or ``address`` run costs $0 in cloud compute; the
artifact also shows what the same size and duration would cost on Fargate.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from distributed import Client, performance_report
from prefect import get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from ml_workflows import cost, drift, fargate, names, storage
from ml_workflows.project import current
from ml_workflows.project import root as project_root
from ml_workflows.settings import Settings

REPORT_NAME = "dask-performance-report.html"


def cluster_size(client: Client) -> dict[str, Any]:
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return {
        "workers": len(workers),
        "threads": sum(w.get("nthreads", 0) for w in workers.values()),
        "memory_gib": round(sum(w.get("memory_limit") or 0 for w in workers.values()) / 2**30, 2),
    }


def _spot(settings: Settings) -> bool:
    """Spot workers: the stack's output on Fargate; elsewhere what the project's stack would use (Pulumi.yaml)."""
    if settings.cluster == "fargate":
        return fargate.uses_spot(settings.load_aws_outputs())
    try:
        from .deploy import stack_config

        return stack_config.read(project_root(strict=False)).fargate_spot
    except (OSError, KeyError, TypeError, ValueError):  # no project directory here (a run from elsewhere)
        return True


def run_cost(settings: Settings, size: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Cost of this run: real Fargate prices in ``fargate`` mode, $0 compute (and the Fargate equivalent) else."""
    workers = max(1, size.get("workers") or settings.n_workers)
    vcpus, spot = current().worker_vcpus, _spot(settings)
    est = cost.estimate(workers, vcpus, max(seconds, 1.0) / 3600)
    fargate = round(est.run_spot if spot else est.run_on_demand, 4)
    on_fargate = settings.cluster == "fargate"
    return {
        "estimated_usd": fargate if on_fargate else 0.0,
        "fargate_equivalent_usd": fargate,
        "basis": (
            f"{workers} Fargate worker(s) x {vcpus} vCPU, "
            f"{'Spot' if spot else 'on-demand'}, scheduler + flow-run task, {seconds:.0f}s"
        ),
        "where": "Fargate" if on_fargate else f"{settings.cluster} cluster (no cloud compute)",
    }


class RunObserver:
    def __init__(self, settings: Settings, run_id: str) -> None:
        self.settings = settings
        self.run_id = run_id
        self.stages: dict[str, float] = {}
        self.size: dict[str, Any] = {}
        self.report_url: str | None = None
        self.started = time.perf_counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = round(time.perf_counter() - t0, 2)

    @contextmanager
    def watch(self, client: Client) -> Iterator[None]:
        """Record the cluster size and a Dask performance report of everything run inside."""
        with suppress(Exception):
            self.size = cluster_size(client)
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / REPORT_NAME
            try:
                with performance_report(filename=str(local)):
                    yield
            finally:
                self._save_report(local)

    def _save_report(self, local: Path) -> None:
        if not local.exists():
            return
        url = storage.join(self.settings.data_url, "reports", self.run_id, REPORT_NAME)
        try:
            with storage.open_write(url, self.settings.storage_options) as out:
                out.write(local.read_bytes())
            self.report_url = url
        except Exception as exc:  # noqa: BLE001 - a missing report must not fail the run
            get_run_logger().warning("Dask performance report not saved to %s: %s", url, exc)

    def publish(self, trained: dict | None, scored: dict | None) -> dict[str, Any]:
        """Publish the row, stage, cluster/cost and report artifacts; returns what was published."""
        total = round(time.perf_counter() - self.started, 2)
        rows = row_counts(trained, scored)
        money = run_cost(self.settings, self.size, total)
        create_table_artifact(
            key=names.artifact("pipeline-rows"),
            table=rows,
            description=f"Rows in / out / quarantined, run {self.run_id}",
        )
        create_table_artifact(
            key=names.artifact("pipeline-stages"),
            table=[{"stage": k, "seconds": v} for k, v in {**self.stages, "total": total}.items()],
            description=f"Duration per stage, run {self.run_id}",
        )
        size = self.size or {"workers": "?", "threads": "?", "memory_gib": "?"}
        create_markdown_artifact(
            key=names.artifact("pipeline-cluster"),
            markdown=(
                f"| cluster | workers | threads | memory (GiB) | run cost (USD) | on Fargate (USD) |\n"
                f"|---|---|---|---|---|---|\n"
                f"| {money['where']} | {size['workers']} | {size['threads']} | {size['memory_gib']} "
                f"| {money['estimated_usd']:.4f} | {money['fargate_equivalent_usd']:.4f} |\n\n"
                f"Fargate estimate: {money['basis']} (prices: `make cost`)."
            ),
            description=f"Cluster size and cost estimate, run {self.run_id}",
        )
        if self.report_url:
            link = self.report_url if "://" in self.report_url else Path(self.report_url).as_uri()
            create_link_artifact(
                key=names.artifact("dask-performance-report"),
                link=link,
                link_text=REPORT_NAME,
                description=f"Dask performance report of run {self.run_id}",
            )
        return {"rows": rows, "stages": self.stages, "total_seconds": total, "cluster": self.size, "cost": money}


def row_counts(trained: dict | None, scored: dict | None) -> list[dict[str, Any]]:
    rows = []
    if trained:
        r = trained["rows"]
        n_out = r["train_rows"] + r["holdout_rows"]
        rows.append(_row("train", n_out + r["train_quarantined_rows"], n_out, r["train_quarantined_rows"]))
    if scored:
        n_in = scored["rows"] + scored["quarantined_rows"]
        rows.append(_row("score", n_in, scored["rows"], scored["quarantined_rows"]))
    return rows


def _row(stage: str, rows_in: int, rows_out: int, quarantined: int) -> dict[str, Any]:
    share = quarantined / rows_in if rows_in else 0.0
    return {"stage": stage, "rows_in": rows_in, "rows_out": rows_out, "quarantined": quarantined, "share": share}


def summary_text(run_id: str, trained: dict | None, scored: dict | None, seconds: float | None) -> str:
    """The run summary (the CLI prints it; the ``pipeline-summary`` artifact shows it)."""
    lines = [f"run {run_id} succeeded" + (f" in {seconds:.1f}s" if seconds is not None else "")]
    if trained:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in trained["metrics"].items())
        r = trained["rows"]
        lines.append(f"model:        {trained['model_url']}")
        lines.append(f"  holdout:    {metrics}  (gate: {trained['gate']})")
        lines.append(f"  rows:       {r['train_rows']:,} training, {r['holdout_rows']:,} holdout, "
                     f"{r['train_quarantined_rows']:,} quarantined")  # fmt: skip
        comparison = trained.get("comparison")
        if comparison:
            verdict = "promoted (now the current model)" if comparison["promote"] else "kept as a candidate"
            lines.append(f"  decision:   {verdict}: {comparison['reason']}")
            if not comparison["promote"]:
                lines.append(f"  scoring with the current model: {comparison['current_model_url']}")
    if scored:
        lines.append(
            f"predictions:  {scored['predictions_url']}  {scored['rows']:,} rows scored in {scored['seconds']}s "
            f"({scored['rows_per_second']:,} rows/s)"
        )
        where = f" -> {scored['quarantine_url']}" if scored["quarantine_url"] else ""
        lines.append(f"quarantined:  {scored['quarantined_rows']:,} malformed rows{where}")
        if scored.get("drift"):
            lines.append(f"drift:        {_drift_line(scored['drift'])} -> {scored['drift_url']}")
    return "\n".join(lines)


def publish_summary(run_id: str, trained: dict | None, scored: dict | None, seconds: float | None) -> str:
    """Publish the ``pipeline-metrics`` table and ``pipeline-summary`` artifacts; returns the summary text."""
    text = summary_text(run_id, trained, scored, seconds)
    rows: list[dict[str, Any]] = []
    if trained:
        rows += [{"metric": k, "value": v} for k, v in {**trained["metrics"], **trained["rows"]}.items()]
    if scored:
        rows += [{"metric": k, "value": scored[k]} for k in ("rows", "quarantined_rows", "seconds", "rows_per_second")]
    create_table_artifact(key=names.artifact("pipeline-metrics"), table=rows, description=f"Metrics of run {run_id}")
    create_markdown_artifact(
        key=names.artifact("pipeline-summary"), markdown="```\n" + text + "\n```", description="Run summary"
    )
    return text


def _drift_line(report: dict[str, Any]) -> str:
    return drift.describe(report)


def publish_comparison(comparison: dict[str, Any], run_id: str, model_url: str) -> None:
    """The ``model-comparison`` artifact: both models' metrics on the same rows, and the decision."""
    champion = comparison.get("champion") or {}
    rows = [
        {
            "metric": k,
            "new model": v,
            "current model": champion.get(k),
            "difference": round(v - champion[k], 6) if k in champion else None,
            "decides": k == comparison["metric"],
        }
        for k, v in comparison["challenger"].items()
    ]
    create_table_artifact(
        key=names.artifact("model-comparison-metrics"), table=rows, description=f"New vs current model, run {run_id}"
    )
    verdict = "**promoted**: it is now the current model" if comparison["promote"] else "**kept as a candidate**"
    create_markdown_artifact(
        key=names.artifact("model-comparison"),
        markdown=(
            f"New model `{model_url}`: {verdict}.\n\n{comparison['reason']}.\n\n"
            f"Current model before this run: `{comparison.get('current_model_url') or 'none'}`; compared on the "
            f"{comparison['evaluated_on']} with `{comparison['metric']}` "
            f"({'higher' if comparison['higher_is_better'] else 'lower'} is better), "
            f"tolerance {comparison['tolerance']:g}.\n\n"
            + "| metric | new model | current model |\n|---|---|---|\n"
            + "".join(f"| {r['metric']} | {r['new model']} | {r['current model']} |\n" for r in rows)
        ),
        description=f"Champion / challenger decision, run {run_id}",
    )


def publish_drift(report: dict[str, Any], run_id: str) -> None:
    """The ``drift-report`` artifact: PSI per feature of the scored rows against the training rows."""
    table = [
        {"feature": r["feature"], "kind": r["kind"], "psi": r["psi"], "drifted": r["drifted"]}
        for r in report["features"]
    ]
    create_table_artifact(
        key=names.artifact("drift-report"),
        table=table,
        description=f"Drift (PSI, threshold {report['threshold']:g}) of run {run_id}: {_drift_line(report)}",
    )
