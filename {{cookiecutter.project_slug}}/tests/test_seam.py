"""Your seam (schema.py, model.py) against its contract: these tests read SCHEMA and call the model's
own build / fit / evaluate / predict_proba, so they keep passing when you replace the sample with your
own schema and model (README, "Bring your own data and model")."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster
from ml_workflows.columns import Categorical
from ml_workflows.validation import REASON, split_valid

from {{ cookiecutter.package_name }} import model as user_model
from {{ cookiecutter.package_name }}.sample_data import make_partition
from {{ cookiecutter.package_name }}.schema import SCHEMA


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster,
        Client(cluster) as c,
    ):
        yield c


def _valid(index: int, rows: int, labelled: bool = True) -> pd.DataFrame:
    frame = make_partition(index, rows, index * rows, seed=11, malformed_fraction=0.0, labelled=labelled)
    good, bad = split_valid(frame, SCHEMA, labelled=labelled)
    assert bad.empty, bad[REASON].value_counts()
    return good


def test_sample_data_follows_the_schema():
    frame = make_partition(0, 4000, 0, seed=3, malformed_fraction=0.0, labelled=True)
    assert list(frame.columns) == SCHEMA.columns(labelled=True)
    assert frame[SCHEMA.id].is_unique and set(frame[SCHEMA.label]) <= set(SCHEMA.label_values)
    assert split_valid(frame, SCHEMA, labelled=True)[1].empty  # no malformed rows asked for, none made
    for column in SCHEMA.categorical:
        assert set(frame[column.name].dropna()) <= set(column.categories)
    again = make_partition(0, 4000, 0, seed=3, malformed_fraction=0.0, labelled=True)
    pd.testing.assert_frame_equal(frame, again)  # deterministic in (seed, partition)


def test_malformed_sample_rows_are_quarantined_with_a_reason_naming_the_column():
    frame = make_partition(1, 5000, 0, seed=4, malformed_fraction=0.05, labelled=True)
    good, bad = split_valid(frame, SCHEMA, labelled=True)
    assert len(good) + len(bad) == 5000 and 0 < len(bad) < 400
    # Exactly the rows the generator gave a forbidden value: the same partition without them differs there only.
    clean = make_partition(1, 5000, 0, seed=4, malformed_fraction=0.0, labelled=True)
    corrupted = ~((frame == clean) | (frame.isna() & clean.isna())).all(axis=1)
    assert sorted(bad[SCHEMA.id]) == sorted(frame.loc[corrupted, SCHEMA.id])
    names = SCHEMA.feature_names
    assert all(any(name in reason for name in names) for reason in bad[REASON]), set(bad[REASON])


def test_model_fits_evaluates_and_reaches_its_quality_gate(client):
    import dask.dataframe as dd

    train = dd.from_pandas(pd.concat([_valid(i, 6000) for i in range(3)], ignore_index=True), npartitions=3)
    holdout = dd.from_pandas(_valid(9, 4000), npartitions=2)
    model = user_model.build().fit(train)
    metrics = model.evaluate(holdout)
    assert metrics and all(isinstance(v, float) and np.isfinite(v) for v in metrics.values()), metrics
    user_model.QUALITY_GATE.check(metrics)  # the sample data is learnable: the gate must pass

    frame = _valid(7, 3000, labelled=False)[SCHEMA.feature_names]
    scores = np.asarray(model.predict_proba(frame))
    assert scores.shape == (3000,) and ((scores >= 0) & (scores <= 1)).all()
    # Scoring runs batch by batch on workers: a slice scores the same as in the whole, and a pickled
    # copy (what the workers get) scores the same as the original.
    np.testing.assert_allclose(np.asarray(model.predict_proba(frame.iloc[1000:1500])), scores[1000:1500], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(pickle.loads(pickle.dumps(model)).predict_proba(frame)), scores, rtol=1e-5)


def test_predict_proba_takes_nullable_values_the_schema_allows(client):
    nullable = [c for c in SCHEMA.features if c.nullable]
    if not nullable:
        pytest.skip("schema.py declares no nullable column")
    import dask.dataframe as dd

    model = user_model.build().fit(dd.from_pandas(_valid(0, 8000), npartitions=2))
    frame = _valid(5, 200, labelled=False)[SCHEMA.feature_names].copy()
    for column in nullable:
        frame[column.name] = None if isinstance(column, Categorical) else np.nan
    assert np.isfinite(np.asarray(model.predict_proba(frame), dtype=float)).all()
