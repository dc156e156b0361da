"""`make cost`: Fargate on-demand vs Spot plus NAT and storage, from the dated prices in prices.json."""

import subprocess
import sys
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.runtime import cost

PRICES = {
    "as_of": "2000-01-01",
    "region": "us-east-1",
    "currency": "USD",
    "fargate_vcpu_hour": 0.04,
    "fargate_gb_hour": 0.004,
    "fargate_spot_vcpu_hour": 0.01,
    "fargate_spot_gb_hour": 0.001,
    "nat_gateway_hour": 0.05,
    "nat_gateway_gb_processed": 0.05,
    "s3_standard_gb_month": 0.02,
    "ecr_storage_gb_month": 0.1,
    "hours_per_month": 730,
}


def test_prices_file_is_dated_and_complete():
    prices = cost.load_prices()
    assert set(PRICES) <= set(prices)
    assert prices["as_of"][:2] == "20" and prices["sources"]


def test_estimate_arithmetic():
    est = cost.estimate(10, 2, 3.0, data_gb=100, image_gb=1.0, nat_gateways=2, prices=PRICES)
    worker = 3.0 * (2 * 0.04 + 8 * 0.004)  # 2 vCPU, 8 GiB, 3 h
    spot_worker = 3.0 * (2 * 0.01 + 8 * 0.001)
    assert est.per_run_on_demand["dask workers"] == pytest.approx(10 * worker)
    assert est.per_run_spot["dask workers"] == pytest.approx(10 * spot_worker)
    assert est.per_run_on_demand["dask scheduler (on-demand)"] == pytest.approx(3.0 * (0.04 + 4 * 0.004))
    assert est.per_run_on_demand["NAT data (image pulls)"] == pytest.approx(12 * 1.0 * 0.05)
    assert est.run_spot < est.run_on_demand
    assert est.per_month["NAT gateway x2 (always on)"] == pytest.approx(2 * 0.05 * 730)
    assert est.per_month["S3 storage (100 GB)"] == pytest.approx(2.0)


def test_estimate_refuses_nonsense():
    with pytest.raises(ValueError, match="workers"):
        cost.estimate(0, 2, 1.0, prices=PRICES)


def test_make_cost_runs_without_the_environment():
    """The CLI is standard library only (like the pin guard): `make cost` works before `make install`."""
    script = Path(cost.__file__)
    proc = subprocess.run(
        [sys.executable, "-I", str(script), "--workers", "4", "--vcpus", "1", "--hours", "2", "--data-gb", "500"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "One run: 4 Dask worker(s) x 1 vCPU / 4 GiB for 2 h" in proc.stdout
    assert "total per run" in proc.stdout and "S3 storage (500 GB)" in proc.stdout
