"""VPC over two AZs: public subnets for the NAT gateway(s), private subnets for every ECS task, and the
security group that Dask schedulers, workers and flow runs share."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from .settings import Settings

DASK_SCHEDULER_PORT = 8786
DASK_DASHBOARD_PORT = 8787
AZ_COUNT = 2


@dataclass
class Network:
    vpc: aws.ec2.Vpc
    private_subnets: list[aws.ec2.Subnet]
    public_subnets: list[aws.ec2.Subnet]
    nat_gateways: list[aws.ec2.NatGateway]
    private_route_tables: list[aws.ec2.RouteTable]
    dask_security_group: aws.ec2.SecurityGroup


def create(s: Settings) -> Network:
    name = s.base_name
    # Regular AZs only (no Local/Wavelength zones, which lack NAT gateways and Fargate).
    zones = aws.get_availability_zones_output(
        state="available", filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}]
    ).names
    private_cidrs, public_cidrs = s.subnet_cidrs()

    vpc = aws.ec2.Vpc(
        "vpc",
        cidr_block=s.vpc_cidr,
        enable_dns_support=True,
        enable_dns_hostnames=True,
        tags={"Name": name},
    )
    # The VPC's default group allows all traffic between its members; strip its rules so nothing uses it by accident.
    aws.ec2.DefaultSecurityGroup("default-sg-locked", vpc_id=vpc.id, tags={"Name": f"{name}-default-unused"})

    igw = aws.ec2.InternetGateway("igw", vpc_id=vpc.id, tags={"Name": name})
    public_rt = aws.ec2.RouteTable("public-rt", vpc_id=vpc.id, tags={"Name": f"{name}-public"})
    aws.ec2.Route(
        "public-default-route", route_table_id=public_rt.id, destination_cidr_block="0.0.0.0/0", gateway_id=igw.id
    )

    public_subnets, private_subnets = [], []
    for i in range(AZ_COUNT):
        az = zones.apply(lambda names, i=i: names[i])
        public = aws.ec2.Subnet(
            f"public-{i}",
            vpc_id=vpc.id,
            cidr_block=public_cidrs[i],
            availability_zone=az,
            map_public_ip_on_launch=False,
            tags={"Name": f"{name}-public-{i}", "tier": "public"},
        )
        aws.ec2.RouteTableAssociation(f"public-{i}-rta", subnet_id=public.id, route_table_id=public_rt.id)
        public_subnets.append(public)
        private_subnets.append(
            aws.ec2.Subnet(
                f"private-{i}",
                vpc_id=vpc.id,
                cidr_block=private_cidrs[i],
                availability_zone=az,
                map_public_ip_on_launch=False,
                tags={"Name": f"{name}-private-{i}", "tier": "private"},
            )
        )

    nat_gateways = []
    for i in range(s.nat_gateway_count):
        eip = aws.ec2.Eip(f"nat-eip-{i}", domain="vpc", tags={"Name": f"{name}-nat-{i}"})
        nat_gateways.append(
            aws.ec2.NatGateway(
                f"nat-{i}",
                allocation_id=eip.id,
                subnet_id=public_subnets[i].id,
                tags={"Name": f"{name}-nat-{i}"},
                opts=pulumi.ResourceOptions(depends_on=[igw]),
            )
        )

    private_route_tables = []
    for i, subnet in enumerate(private_subnets):
        rt = aws.ec2.RouteTable(f"private-rt-{i}", vpc_id=vpc.id, tags={"Name": f"{name}-private-{i}"})
        nat = nat_gateways[i % len(nat_gateways)]
        aws.ec2.Route(
            f"private-{i}-default-route",
            route_table_id=rt.id,
            destination_cidr_block="0.0.0.0/0",
            nat_gateway_id=nat.id,
        )
        aws.ec2.RouteTableAssociation(f"private-{i}-rta", subnet_id=subnet.id, route_table_id=rt.id)
        private_route_tables.append(rt)

    # S3 traffic (the data: up to hundreds of GB per run) bypasses the NAT gateway: no per-GB NAT charge.
    aws.ec2.VpcEndpoint(
        "s3-endpoint",
        vpc_id=vpc.id,
        service_name=f"com.amazonaws.{s.region}.s3",
        vpc_endpoint_type="Gateway",
        route_table_ids=[rt.id for rt in private_route_tables],
        tags={"Name": f"{name}-s3"},
    )

    return Network(
        vpc=vpc,
        private_subnets=private_subnets,
        public_subnets=public_subnets,
        nat_gateways=nat_gateways,
        private_route_tables=private_route_tables,
        dask_security_group=_dask_security_group(s, vpc),
    )


def _dask_security_group(s: Settings, vpc: aws.ec2.Vpc) -> aws.ec2.SecurityGroup:
    """Scheduler <-> workers <-> flow run: any TCP port, but only between members of this group.
    Scheduler (8786) and dashboard (8787): also from the configured CIDR (the VPC by default). Never 0.0.0.0/0."""
    sg = aws.ec2.SecurityGroup(
        "dask-sg",
        name=f"{s.base_name}-dask",
        description="Dask scheduler, workers and flow runs",
        vpc_id=vpc.id,
        tags={"Name": f"{s.base_name}-dask"},
    )
    aws.vpc.SecurityGroupIngressRule(
        "dask-sg-self",
        security_group_id=sg.id,
        referenced_security_group_id=sg.id,
        ip_protocol="tcp",
        from_port=0,
        to_port=65535,
        description="Dask scheduler/worker/nanny traffic inside the group",
    )
    for label, port in (("scheduler", DASK_SCHEDULER_PORT), ("dashboard", DASK_DASHBOARD_PORT)):
        aws.vpc.SecurityGroupIngressRule(
            f"dask-sg-{label}",
            security_group_id=sg.id,
            cidr_ipv4=s.dask_access_cidr,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            description=f"Dask {label} from {s.dask_access_cidr}",
        )
    aws.vpc.SecurityGroupEgressRule(
        "dask-sg-egress",
        security_group_id=sg.id,
        cidr_ipv4="0.0.0.0/0",
        ip_protocol="-1",
        description="Outbound (ECR, S3, CloudWatch, package mirrors) via NAT or the S3 endpoint",
    )
    return sg
