"""Model: dask-ml preprocessing + logistic regression trained in parallel on the Dask cluster.

The artifact is a directory committed atomically (see :mod:`.publish`)::

    model.json        features, holdout metrics and the library versions it was trained under
    model.pkl         the fitted estimators (pickle)
    _MANIFEST.json    commit marker

:func:`load_model` reads ``model.json`` first and refuses to unpickle a model trained under other
library versions: a pickle from another scikit-learn/dask-ml/numpy may load and still predict wrong.
"""

from __future__ import annotations

import pickle  # noqa: S403 - artifacts are written by this pipeline into its own storage
import platform
import warnings
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask_ml.linear_model import LogisticRegression
from dask_ml.metrics import accuracy_score
from dask_ml.preprocessing import StandardScaler
from distributed import Client

from . import publish
from .data import BAYES_ACCURACY, ID, LABEL, REASON, LinearScorer, parquet_options, split_valid

# Libraries whose versions must match between training and scoring (module name -> distribution).
VERSIONED = {
    "dask": "dask",
    "distributed": "distributed",
    "dask_ml": "dask-ml",
    "sklearn": "scikit-learn",
    "numpy": "numpy",
    "pandas": "pandas",
    "pyarrow": "pyarrow",
}


class ModelVersionError(RuntimeError):
    """The artifact was trained under library versions other than the ones installed here."""


class QualityGateError(RuntimeError):
    """Holdout accuracy below the configured minimum: the model is not published."""


def library_versions() -> dict[str, str]:
    versions = {dist: version(dist) for dist in VERSIONED.values()}
    versions["python"] = ".".join(platform.python_version_tuple()[:2])
    return versions


@dataclass
class Model:
    """Fitted preprocessing + estimator; ``predict_proba`` works on in-memory numpy batches."""

    scaler: Any
    estimator: Any
    features: list[str]
    metrics: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=library_versions)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probability of the positive class for a 2-D float array of feature rows."""
        return self.scorer().predict_proba(x)

    def scorer(self) -> LinearScorer:
        """Scaler and linear model folded into one float32 matrix-vector product for scoring.

        Equal to ``estimator.predict_proba(scaler.transform(x))[:, 1]`` (checked after training);
        avoids the copies ``scaler.transform`` makes and needs numpy only on the workers.
        """
        mean = np.asarray(self.scaler.mean_, dtype=np.float64)
        scale = np.asarray(self.scaler.scale_, dtype=np.float64)
        coef = np.asarray(self.estimator.coef_, dtype=np.float64).ravel()
        intercept = float(np.ravel(self.estimator.intercept_)[0])
        weights = coef / scale
        return LinearScorer(tuple(self.features), weights.astype(np.float32), float(intercept - mean @ weights))


def _valid_rows(part: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    return split_valid(part, features)[0]


def _bad_rows(part: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    return split_valid(part, features)[1]


def train(
    client: Client,
    files: list[str],
    features: list[str],
    *,
    seed: int,
    quarantine_url: str,
    storage_options: dict[str, Any] | None = None,
    holdout: float = 0.2,
) -> tuple[Model, dict[str, Any]]:
    """Fit scaler + logistic regression on the valid rows of ``files``; metrics on a random holdout.

    Malformed training rows are written to ``quarantine_url`` (parquet) and counted, never used.
    The training set is persisted in cluster memory (typical: train on a sample, score everything);
    for training sets beyond cluster memory swap the estimator for ``dask_ml.wrappers.Incremental``.
    """
    frame = dd.read_parquet(files, storage_options=storage_options)
    columns = [ID, LABEL, *features]
    frame = frame[columns]
    good = frame.map_partitions(_valid_rows, features, meta=frame._meta)
    bad_meta = split_valid(frame._meta, features)[1]
    bad = frame.map_partitions(_bad_rows, features, meta=bad_meta)
    bad.to_parquet(
        quarantine_url, storage_options=storage_options, write_index=False, compute=False, **parquet_options(REASON)
    ).compute()
    quarantined = int(bad.shape[0].compute())

    good = client.persist(good)
    train_part, holdout_part = good.random_split([1 - holdout, holdout], random_state=seed)
    x = train_part[features].to_dask_array(lengths=True).astype(np.float64)
    y = train_part[LABEL].to_dask_array(lengths=True)
    xh = holdout_part[features].to_dask_array(lengths=True).astype(np.float64)
    yh = holdout_part[LABEL].to_dask_array(lengths=True)
    x, y, xh, yh = client.persist([x, y, xh, yh])

    with warnings.catch_warnings():  # dask-glm still sets a deprecated Dask config key
        warnings.filterwarnings("ignore", message=".*fuse_ave_width.*", category=FutureWarning)
        scaler = StandardScaler().fit(x)
        estimator = LogisticRegression(solver="lbfgs", max_iter=100, C=1.0)
        estimator.fit(scaler.transform(x), y)

    proba = estimator.predict_proba(scaler.transform(xh))
    accuracy = float(accuracy_score(yh, (proba[:, 1] > 0.5).astype(np.int8)))
    p = da.clip(proba[:, 1], 1e-15, 1 - 1e-15)
    loss = float(-(yh * da.log(p) + (1 - yh) * da.log(1 - p)).mean().compute())
    metrics = {
        "holdout_accuracy": round(accuracy, 4),
        "holdout_log_loss": round(loss, 4),
        "bayes_accuracy": round(BAYES_ACCURACY, 4),
        "train_rows": int(y.shape[0]),
        "holdout_rows": int(yh.shape[0]),
        "train_quarantined_rows": quarantined,
    }
    model = Model(scaler=scaler, estimator=estimator, features=list(features), metrics=metrics)
    sample = xh[:1000].compute()
    expected = np.asarray(estimator.predict_proba(scaler.transform(sample.copy())))[:, 1]
    if not np.allclose(model.predict_proba(sample), expected, atol=1e-4):
        raise RuntimeError("folded scoring function disagrees with the fitted estimator")
    del good, x, y, xh, yh  # releases the persisted training data on the cluster
    return model, metrics


def save_model(model: Model, url: str, storage_options: dict[str, Any] | None = None) -> None:
    """Write ``model.json`` + ``model.pkl`` into ``url`` (a staging directory; commit it after)."""
    with publish.open_write(publish.join(url, "model.pkl"), storage_options) as f:
        pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)
    publish.write_json(
        publish.join(url, "model.json"),
        {"features": model.features, "metrics": model.metrics, "versions": model.versions},
        storage_options,
    )


def load_model(url: str, storage_options: dict[str, Any] | None = None, *, check_versions: bool = True) -> Model:
    """Load a committed model; :class:`ModelVersionError` if it was trained under other versions."""
    publish.read_manifest(url, storage_options)  # NotCommittedError for half-written models
    info = publish.read_json(publish.join(url, "model.json"), storage_options)
    if check_versions:
        here = library_versions()
        trained = info.get("versions", {})
        diff = {
            k: (trained.get(k), here.get(k)) for k in sorted(set(here) | set(trained)) if trained.get(k) != here.get(k)
        }
        if diff:
            lines = ", ".join(f"{k} trained {a} / here {b}" for k, (a, b) in diff.items())
            raise ModelVersionError(
                f"model {url} was trained under other library versions ({lines}); "
                "retrain it with this environment (or score with the environment it was trained in)"
            )
    fs, path = publish.filesystem(publish.join(url, "model.pkl"), storage_options)
    with fs.open(path, "rb") as f:
        return pickle.load(f)  # noqa: S301 - our own artifact, versions verified above
