"""A second model for the swap test: a scikit-learn Pipeline (one-hot + imputation, then gradient
boosting) on a loan-default table. It replaces the generated model.py as a user would (README, "Bring
your own data and model"); nothing else in the baked project changes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from ml_workflows.quality import QualityGate

from .schema import SCHEMA

QUALITY_GATE = QualityGate(metric="roc_auc", minimum=0.7)
CATEGORICAL = [c.name for c in SCHEMA.categorical]
NUMERIC = [c.name for c in SCHEMA.numeric]


def build() -> LoanDefaultModel:
    return LoanDefaultModel()


def _features(frame: pd.DataFrame) -> pd.DataFrame:
    """The feature columns, categories as plain strings ("missing" for a legitimate gap)."""
    out = frame[SCHEMA.feature_names].copy()
    for name in CATEGORICAL:
        out[name] = out[name].astype(object).where(out[name].notna(), "missing").astype(str)
    for name in NUMERIC:
        out[name] = out[name].astype(np.float64)
    return out


class LoanDefaultModel:
    def __init__(self) -> None:
        self.pipeline: Any = None

    def fit(self, train: Any) -> LoanDefaultModel:
        from sklearn.compose import ColumnTransformer
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder

        frame = train.compute()  # the training set fits in memory; scoring stays out-of-core
        prepare = ColumnTransformer(
            [
                ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                ("numbers", SimpleImputer(strategy="median"), NUMERIC),
            ]
        )
        model = HistGradientBoostingClassifier(max_iter=60, random_state=0)
        self.pipeline = make_pipeline(prepare, model).fit(_features(frame), frame[SCHEMA.label].astype(int))
        return self

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.pipeline.predict_proba(_features(frame))[:, 1]

    def evaluate(self, holdout: Any) -> dict[str, float]:
        from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

        frame = holdout.compute()
        y, p = frame[SCHEMA.label].astype(int).to_numpy(), self.predict_proba(frame)
        return {
            "roc_auc": round(float(roc_auc_score(y, p)), 4),
            "average_precision": round(float(average_precision_score(y, p)), 4),
            "brier": round(float(brier_score_loss(y, p)), 4),
        }
