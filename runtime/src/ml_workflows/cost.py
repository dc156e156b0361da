"""Estimate what one pipeline run on Fargate costs: on-demand vs Spot, plus NAT and storage.

Prices are dated data in `prices.json` next to this file (the one place they live). The defaults are the
project's (``Project.worker_vcpus`` / ``max_workers``) and its stack's (region, NAT gateways, Spot, the worker
service: ``infrastructure/Pulumi.yaml``):

    make cost WORKERS=8 VCPUS=2 HOURS=1 DATA_GB=500     # = python -m ml_workflows.cost ...

A run pays for its Dask workers (on Spot when chosen), one scheduler and the flow-run task (both
on-demand Fargate) while it lasts, and for the image pulls through the NAT gateway (S3 traffic
uses the VPC's S3 gateway endpoint, which is free). Always-on costs are listed per month: the
NAT gateway(s), the Prefect worker service when the stack runs it, the data kept in S3 and the images kept in ECR:
what an idle stack costs.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

PRICES_FILE = Path(__file__).with_name("prices.json")
GIB_PER_VCPU = 4  # matches fargate.MIB_PER_VCPU
PREFECT_WORKER = (0.25, 0.5)  # vCPU, GiB of the always-on worker service (infrastructure/infra/worker.py)
SCHEDULER = (1, 4)  # vCPU, GiB (fargate: scheduler_cpu / scheduler_mem)
FLOW_RUN = (1, 2)  # vCPU, GiB (fargate: FLOW_RUN_CPU / FLOW_RUN_MEMORY)


def load_prices(path: Path = PRICES_FILE) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Estimate:
    per_run_on_demand: dict[str, float]
    per_run_spot: dict[str, float]
    per_month: dict[str, float]

    @property
    def run_on_demand(self) -> float:
        return sum(self.per_run_on_demand.values())

    @property
    def run_spot(self) -> float:
        return sum(self.per_run_spot.values())


def _task(prices: dict, vcpus: float, gib: float, hours: float, spot: bool = False) -> float:
    prefix = "fargate_spot_" if spot else "fargate_"
    return hours * (vcpus * prices[prefix + "vcpu_hour"] + gib * prices[prefix + "gb_hour"])


def estimate(
    workers: int,
    vcpus: int,
    hours: float,
    *,
    data_gb: float = 10.0,
    image_gb: float = 1.5,
    nat_gateways: int = 1,
    worker_service: bool = False,
    prices: dict | None = None,
) -> Estimate:
    """Cost of one run of `workers` x `vcpus` (4 GiB each) for `hours`, and the monthly fixed costs."""
    if workers < 1 or vcpus < 1 or hours <= 0 or data_gb < 0 or image_gb < 0 or nat_gateways < 0:
        raise ValueError("workers and vcpus must be >= 1, hours > 0, sizes and NAT gateways >= 0")
    p = load_prices() if prices is None else prices
    gib = vcpus * GIB_PER_VCPU
    shared = {
        "dask scheduler (on-demand)": _task(p, *SCHEDULER, hours),
        "flow-run task (on-demand)": _task(p, *FLOW_RUN, hours),
        # Every task pulls the image from ECR through the NAT gateway.
        "NAT data (image pulls)": (workers + 2) * image_gb * p["nat_gateway_gb_processed"],
    }
    return Estimate(
        per_run_on_demand={"dask workers": workers * _task(p, vcpus, gib, hours), **shared},
        per_run_spot={"dask workers": workers * _task(p, vcpus, gib, hours, spot=True), **shared},
        per_month={
            f"NAT gateway x{nat_gateways} (always on)": nat_gateways * p["nat_gateway_hour"] * p["hours_per_month"],
            **(
                {"Prefect worker service (always on)": _task(p, *PREFECT_WORKER, p["hours_per_month"])}
                if worker_service
                else {}
            ),
            f"S3 storage ({data_gb:g} GB)": data_gb * p["s3_standard_gb_month"],
            f"ECR images ({image_gb:g} GB each, 2 kept)": 2 * image_gb * p["ecr_storage_gb_month"],
        },
    )


def render(est: Estimate, workers: int, vcpus: int, hours: float, prices: dict, region: str) -> str:
    lines = [
        f"One run: {workers} Dask worker(s) x {vcpus} vCPU / {vcpus * GIB_PER_VCPU} GiB for {hours:g} h",
        f"(prices: {prices['region']}, {prices['currency']}, as of {prices['as_of']}; see prices.json)",
    ]
    if region != prices["region"]:
        lines.append(f"note: this project deploys to {region}; its prices differ somewhat from {prices['region']}'s")
    lines.append(f"{'':34}{'on-demand':>12}{'spot workers':>14}")
    for name in est.per_run_on_demand:
        lines.append(f"{name:34}{est.per_run_on_demand[name]:>12.2f}{est.per_run_spot[name]:>14.2f}")
    lines.append(f"{'total per run':34}{est.run_on_demand:>12.2f}{est.run_spot:>14.2f}")
    lines.append("Always on, per month:")
    for name, value in est.per_month.items():
        lines.append(f"  {name:36}{value:>12.2f}")
    lines.append(f"  {'total per month (idle stack)':36}{sum(est.per_month.values()):>12.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from .deploy import stack_config
    from .project import current

    project, stack = current(), stack_config.read()
    parser = argparse.ArgumentParser(description="Estimate the AWS cost of one pipeline run on Fargate.")
    parser.add_argument("--workers", type=int, default=project.max_workers, help="Dask workers (default: max_workers)")
    parser.add_argument("--vcpus", type=int, default=project.worker_vcpus, choices=(1, 2, 4), help="vCPUs per worker")
    parser.add_argument("--hours", type=float, default=1.0, help="how long the run lasts")
    parser.add_argument("--data-gb", type=float, default=10.0, help="data kept in S3 (GB)")
    parser.add_argument("--image-gb", type=float, default=1.5, help="compressed image size (GB)")
    parser.add_argument("--nat-gateways", type=int, default=stack.nat_gateways, help="NAT gateways in the VPC")
    parser.add_argument("--prices", type=Path, default=PRICES_FILE, help="prices file (JSON)")
    args = parser.parse_args(argv)
    prices = load_prices(args.prices)
    try:
        est = estimate(
            args.workers,
            args.vcpus,
            args.hours,
            data_gb=args.data_gb,
            image_gb=args.image_gb,
            nat_gateways=args.nat_gateways,
            worker_service=stack.prefect_worker,
            prices=prices,
        )
    except ValueError as exc:
        parser.error(str(exc))
    print(render(est, args.workers, args.vcpus, args.hours, prices, stack.region))
    if stack.fargate_spot:
        print("This project runs its Dask workers on Fargate Spot (use_fargate_spot): see the 'spot workers' column.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
