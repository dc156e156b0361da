"""Quality gates: a model that misses its metric, or a run with too many malformed rows, publishes nothing."""

from __future__ import annotations

from dataclasses import dataclass


class QualityGateError(RuntimeError):
    """A gate failed: nothing is published and the previous model and predictions stay in place."""


@dataclass(frozen=True)
class QualityGate:
    """``metric`` (a key of ``model.evaluate``'s result) must be at least ``minimum`` (at most, when
    ``higher_is_better`` is False). ``PIPELINE_QUALITY_GATE_MIN`` overrides the threshold."""

    metric: str
    minimum: float
    higher_is_better: bool = True

    def check(self, metrics: dict[str, float], threshold: float | None = None) -> None:
        bar = self.minimum if threshold is None else threshold
        if self.metric not in metrics:
            raise QualityGateError(
                f"model.evaluate returned no {self.metric!r} (QUALITY_GATE.metric in model.py); it returned "
                f"{sorted(metrics)}"
            )
        value = metrics[self.metric]
        passed = value >= bar if self.higher_is_better else value <= bar
        if not passed:
            side = "below" if self.higher_is_better else "above"
            raise QualityGateError(
                f"holdout {self.metric} {value:.4f} is {side} the quality gate {bar} (QUALITY_GATE in model.py, "
                "PIPELINE_QUALITY_GATE_MIN); the model is not published"
            )

    def describe(self, threshold: float | None = None) -> str:
        bar = self.minimum if threshold is None else threshold
        return f"{self.metric} {'>=' if self.higher_is_better else '<='} {bar}"


def quarantine_gate(stage: str, quarantined: int, kept: int, max_fraction: float) -> None:
    """Stop (nothing published) when more than ``max_fraction`` of the rows are malformed."""
    total = quarantined + kept
    share = quarantined / total if total else 0.0
    if share > max_fraction:
        raise QualityGateError(
            f"{stage}: {quarantined:,} of {total:,} rows ({share:.2%}) are malformed and quarantined, over "
            f"PIPELINE_MAX_QUARANTINE_FRACTION={max_fraction}; nothing is published and the "
            "previous model and predictions stay in place"
        )
