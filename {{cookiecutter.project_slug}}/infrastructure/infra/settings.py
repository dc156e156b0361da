"""Stack settings: read from Pulumi config (defaults in Pulumi.yaml), validated before anything is created."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pulumi

from .identity import ROLE_SUFFIXES, role_name

NAT_STRATEGIES = ("single", "per-az")
# The periods CloudWatch Logs accepts for a log group's retention: the template's list (the one its
# log_retention_days answer was checked against), kept here as data.
LOG_RETENTION_DAYS = tuple(json.loads(Path(__file__).with_name("log_retention_days.json").read_text()))


@dataclass(frozen=True)
class Settings:
    project: str
    stack: str
    region: str
    name_prefix: str
    vpc_cidr: str
    dask_access_cidr: str
    nat_strategy: str = "single"
    log_retention_days: int = 30
    use_fargate_spot: bool = True
    prefect_worker: bool = {{ "True" if cookiecutter.prefect_worker|string|lower in ["true", "yes", "y", "1"] else "False" }}
    # Set by `make deploy` once the image is pushed and the Prefect API is known; until then the worker service
    # is declared with no task running (desired count 0).
    prefect_worker_image: str = ""
    prefect_api_url: str = ""

    def __post_init__(self) -> None:
        vpc = _network("vpc_cidr", self.vpc_cidr)
        if not 16 <= vpc.prefixlen <= 24:
            raise ValueError(f"vpc_cidr {self.vpc_cidr!r}: use a /16 to /24 block")
        access = _network("dask_access_cidr", self.dask_access_cidr)
        if access.prefixlen == 0:
            raise ValueError(
                f"dask_access_cidr {self.dask_access_cidr!r} would open the Dask scheduler and dashboard to the "
                "whole internet; use the VPC CIDR or your office/VPN range"
            )
        if self.nat_strategy not in NAT_STRATEGIES:
            raise ValueError(f"nat_strategy {self.nat_strategy!r}: use one of {', '.join(NAT_STRATEGIES)}")
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(f"log_retention_days {self.log_retention_days}: CloudWatch accepts {LOG_RETENTION_DAYS}")
{%- if cookiecutter.prefect_worker|string|lower not in ["true", "yes", "y", "1"] %}
        if self.prefect_worker:
            raise ValueError(
                "prefect_worker: this project was generated without the worker service (infra/worker.py); run the "
                "worker elsewhere with the policy of README.md, or re-generate with prefect_worker = yes"
            )
{%- endif %}
        if self.prefect_api_url and not self.prefect_api_url.startswith(("https://", "http://")):
            raise ValueError(f"prefect_api_url {self.prefect_api_url!r}: use the http(s) URL of the Prefect API")
        if not self.name_prefix or len(self.base_name) > 40:
            raise ValueError(f"name_prefix {self.name_prefix!r} with stack {self.stack!r} must be 1-40 characters")
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", self.base_name):
            # "_" separates this stack's name from a run id in its Dask task families (identity.dask_family_prefix)
            raise ValueError(f"stack {self.stack!r}: use letters, digits and hyphens in stack names")
        if len(longest := role_name(self.base_name, self.region, max(ROLE_SUFFIXES, key=len))) > 64:
            raise ValueError(f"IAM role {longest!r} would exceed 64 characters: shorten name_prefix or the stack name")

    @property
    def base_name(self) -> str:
        """Name of the AWS resources: one set per stack, so dev and prod can share an account."""
        return f"{self.name_prefix}-{self.stack}".lower()

    @property
    def work_pool_name(self) -> str:
        """The Prefect ECS work pool of this project and stack (names are unique per project and stack)."""
        return f"{self.base_name}-ecs"

    @property
    def flow_run_family(self) -> str:
        """Task definition family prefect-aws registers for this pool's flow runs (identity.Arns depends on it)."""
        return f"{self.base_name}-flow-run"

    @property
    def worker_running(self) -> bool:
        return self.prefect_worker and bool(self.prefect_worker_image and self.prefect_api_url)

    @property
    def nat_gateway_count(self) -> int:
        return 2 if self.nat_strategy == "per-az" else 1

    def subnet_cidrs(self) -> tuple[list[str], list[str]]:
        """(private, public) CIDRs: the first two quarters are private, two eighths of the third are public.

        Dask workers get the big private subnets; the public ones only hold NAT gateways. The last
        quarter stays free for growth.
        """
        quarters = list(ipaddress.ip_network(self.vpc_cidr).subnets(prefixlen_diff=2))
        public = list(quarters[2].subnets(prefixlen_diff=1))
        return [str(quarters[0]), str(quarters[1])], [str(public[0]), str(public[1])]


def _network(field: str, value: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value)
    except ValueError as exc:
        raise ValueError(f"{field} {value!r} is not an IPv4 CIDR block like 10.42.0.0/16 ({exc})") from None


def load() -> Settings:
    """Settings of the current stack. Every key has a default in Pulumi.yaml, so `require` only fails on a
    Pulumi CLI older than 3.44 (no project-level config) - then set the keys with `pulumi config set`."""
    cfg = pulumi.Config()
    return Settings(
        project=pulumi.get_project(),
        stack=pulumi.get_stack(),
        region=pulumi.Config("aws").require("region"),
        name_prefix=cfg.require("name_prefix"),
        vpc_cidr=cfg.require("vpc_cidr"),
        dask_access_cidr=cfg.require("dask_access_cidr"),
        nat_strategy=cfg.require("nat_strategy"),
        log_retention_days=cfg.require_int("log_retention_days"),
        use_fargate_spot=cfg.require_bool("use_fargate_spot"),
        prefect_worker=cfg.require_bool("prefect_worker"),
        prefect_worker_image=cfg.get("prefect_worker_image") or "",
        prefect_api_url=cfg.get("prefect_api_url") or "",
    )
