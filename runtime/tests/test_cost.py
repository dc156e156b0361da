"""`make cost`: Fargate on-demand vs Spot plus NAT and storage, from the dated prices in prices.json."""

import subprocess
import sys

import pytest

from ml_workflows import cost

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


def test_make_cost_prints_a_run_and_the_idle_stack_from_the_project_and_its_stack():
    """`make cost` (python -m ml_workflows.cost): one run, and what the stack costs per month while idle (the NAT
    gateways and, when the stack runs it, the Prefect worker service), from the project's Pulumi.yaml."""
    from ml_workflows.deploy import stack_config

    stack = stack_config.read()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ml_workflows.cost",
            "--workers",
            "4",
            "--vcpus",
            "1",
            "--hours",
            "2",
            "--data-gb",
            "500",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "One run: 4 Dask worker(s) x 1 vCPU / 4 GiB for 2 h" in proc.stdout
    assert "total per run" in proc.stdout and "S3 storage (500 GB)" in proc.stdout
    assert f"NAT gateway x{stack.nat_gateways} (always on)" in proc.stdout
    assert ("Prefect worker service (always on)" in proc.stdout) == stack.prefect_worker
    assert "total per month (idle stack)" in proc.stdout


def test_the_idle_stack_costs_its_nat_gateway_and_worker_service():
    """The README's idle figure: one NAT gateway and the 0.25 vCPU / 0.5 GiB worker service, month round."""
    est = cost.estimate(1, 1, 1.0, data_gb=0, image_gb=0, nat_gateways=1, worker_service=True, prices=PRICES)
    assert est.per_month["NAT gateway x1 (always on)"] == pytest.approx(0.05 * 730)
    assert est.per_month["Prefect worker service (always on)"] == pytest.approx(730 * (0.25 * 0.04 + 0.5 * 0.004))
    without = cost.estimate(1, 1, 1.0, data_gb=0, image_gb=0, nat_gateways=1, prices=PRICES)
    assert "Prefect worker service (always on)" not in without.per_month
