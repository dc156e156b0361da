"""YOUR MODEL: how it is built, trained, evaluated and used for scoring.

Replace the sample with your own (see README, "Bring your own data and model"). The contract:

* ``build()`` returns a new, unfitted model;
* ``model.fit(train)`` trains it: ``train`` is a Dask DataFrame of the schema's id, label and
  feature columns, valid rows only (malformed ones are already quarantined). Train on the
  cluster (dask-ml), or ``train.compute()`` and fit any scikit-learn estimator in memory;
* ``model.evaluate(holdout)`` returns a dict of metrics (floats) on the holdout rows (same form as
  ``train``); they are stored with the model and shown in the run summary and artifacts;
* ``model.predict_proba(frame)`` returns the probability of the positive class, one per row, for a
  pandas DataFrame of the feature columns. It runs on the Dask workers, one record batch at a time,
  so keep what it needs small and picklable, and import heavy libraries inside ``fit``, not here;
* ``QUALITY_GATE`` names the metric a model must reach to be published.

The sample: dask-ml's ``StandardScaler`` and ``LogisticRegression`` trained in parallel on the
cluster, then folded into one float32 weight vector, so scoring is one matrix-vector product and
the workers import no ML library (a fast path for linear models; a non-linear model simply keeps its
fitted estimator and calls it in ``predict_proba``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from ml_workflows.quality import QualityGate

from .schema import SCHEMA

QUALITY_GATE = QualityGate(metric="roc_auc", minimum=0.85)


def build() -> LinearModel:
    return LinearModel(SCHEMA.feature_names)


class LinearModel:
    """Standardisation + logistic regression, kept as folded weights (numpy only)."""

    def __init__(self, features: list[str]) -> None:
        self.features = list(features)
        self.weights: np.ndarray | None = None
        self.bias = 0.0

    def fit(self, train: Any) -> LinearModel:
        import dask
        from dask_ml.linear_model import LogisticRegression  # training only: scoring never imports dask-ml
        from dask_ml.preprocessing import StandardScaler

        x = train[self.features].to_dask_array(lengths=True).astype(np.float64)
        y = train[SCHEMA.label].to_dask_array(lengths=True)
        with warnings.catch_warnings():  # dask-glm still sets a deprecated Dask config key
            warnings.filterwarnings("ignore", message=".*fuse_ave_width.*", category=FutureWarning)
            scaler = StandardScaler().fit(x)
            # lbfgs computes the loss and gradient over all rows once per iteration. Scaled once, in
            # chunks of Dask's default size (few and large) and kept in cluster memory, each iteration
            # reads them instead of converting and scaling every partition again (a third of the fit).
            xs = scaler.transform(x).rechunk({0: "auto", 1: -1})
            xs, ys = dask.persist(xs, y.rechunk({0: xs.chunks[0]}))
            estimator = LogisticRegression(solver="lbfgs", max_iter=100, C=1.0).fit(xs, ys)
        # Fold the scaler into the linear model: p = sigmoid(((x - mean) / scale) @ coef + b).
        scale = np.asarray(scaler.scale_, dtype=np.float64)
        coef = np.asarray(estimator.coef_, dtype=np.float64).ravel() / scale
        self.weights = coef.astype(np.float32)
        self.bias = float(np.ravel(estimator.intercept_)[0] - np.asarray(scaler.mean_, dtype=np.float64) @ coef)
        sample = x[:1000].compute()
        expected = np.asarray(estimator.predict_proba(scaler.transform(sample.copy())))[:, 1]
        if not np.allclose(self.predict_proba(pd.DataFrame(sample, columns=self.features)), expected, atol=1e-4):
            raise RuntimeError("folded scoring function disagrees with the fitted estimator")
        return self

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        if self.weights is None:
            raise RuntimeError("the model is not fitted")
        z = frame[self.features].to_numpy(dtype=np.float32) @ self.weights + np.float32(self.bias)
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    def evaluate(self, holdout: Any) -> dict[str, float]:
        from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

        scored = holdout.map_partitions(
            lambda part: pd.DataFrame({"y": part[SCHEMA.label].to_numpy(), "p": self.predict_proba(part)}),
            meta={"y": "i1", "p": "f4"},
        ).compute()
        y, p = scored["y"].to_numpy(), scored["p"].to_numpy(dtype=np.float64)
        return {
            "roc_auc": round(float(roc_auc_score(y, p)), 4),
            "accuracy": round(float(accuracy_score(y, p >= 0.5)), 4),
            "log_loss": round(float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])), 4),
        }
