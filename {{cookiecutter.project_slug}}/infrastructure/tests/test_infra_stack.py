"""The Pulumi program under Pulumi's mocks: resource inventory, wiring and security properties, for the baked
answers (Pulumi.yaml defaults) and for other stack config. No cloud and no Pulumi CLI involved."""

from __future__ import annotations

import ipaddress
import json

import pytest
from infra import settings
from infra.stack import OUTPUT_NAMES
from ml_workflows import policy as rules
from ml_workflows.testing.pulumi_program import ACCOUNT, Synth, project_config, synth

PROJECT, DEFAULTS = project_config()
SCENARIOS = {
    "answers": {},
    "per-az-nat": {"nat_strategy": "per-az"},
    "single-nat-no-spot": {"nat_strategy": "single", "use_fargate_spot": False},
{%- if cookiecutter.prefect_worker|string|lower in ["true", "yes", "y", "1"] %}
    "no-worker-service": {"prefect_worker": False},
    "worker-running": {
        "prefect_worker": True,
        "prefect_worker_image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/p-dev:abc",
        "prefect_api_url": "https://api.prefect.cloud/api/accounts/a/workspaces/w",
    },
{%- endif %}
    "other-region-and-cidrs": {
        "aws:region": "eu-west-1",
        "vpc_cidr": "172.20.0.0/20",
        "dask_access_cidr": "192.168.10.0/24",
        "log_retention_days": 7,
        "name_prefix": "scoring",
        "stack": "prod",
    },
}
DASK_PORTS = (8786, 8787)


def _cfg(s: Synth, key: str) -> str:
    return s.config[key if ":" in key else f"{PROJECT}:{key}"]


def _stack(name: str) -> Synth:
    overrides = dict(SCENARIOS[name])
    return synth(stack=overrides.pop("stack", "dev"), **overrides)


@pytest.fixture(params=list(SCENARIOS), scope="module")
def stack(request) -> Synth:
    return _stack(request.param)


def _policy(resource) -> dict:
    return json.loads(resource.inputs["policy"])


def _statements(s: Synth, role_output: str) -> list[dict]:
    role_name = s.outputs[role_output].rsplit("/", 1)[-1]
    [policy] = [r for r in s.of_type(":RolePolicy") if r.inputs["role"] == role_name]
    return _policy(policy)["Statement"]


# --- inventory -------------------------------------------------------------------------------------------------


def expected_inventory(nat_gateways: int, worker: bool) -> dict[str, int]:
    inventory = {
        "Vpc": 1,
        "DefaultSecurityGroup": 1,
        "InternetGateway": 1,
        "Subnet": 4,
        "RouteTable": 3,  # one public, one per private subnet
        "Route": 3,
        "RouteTableAssociation": 4,
        "Eip": nat_gateways,
        "NatGateway": nat_gateways,
        "VpcEndpoint": 1,
        "SecurityGroup": 1,
        "SecurityGroupIngressRule": 3,
        "SecurityGroupEgressRule": 1,
        "Bucket": 1,
        "BucketOwnershipControls": 1,
        "BucketPublicAccessBlock": 1,
        "BucketServerSideEncryptionConfiguration": 1,
        "BucketVersioning": 1,
        "BucketLifecycleConfiguration": 1,
        "BucketPolicy": 1,
        "Repository": 1,
        "LifecyclePolicy": 1,
        "LogGroup": 1,
        "Cluster": 1,
        "ClusterCapacityProviders": 1,
        "Role": 3,
        "RolePolicy": 3,
        "Secret": 1,
        "Queue": 2,  # crash detection (infra/events.py): the task-event queue and its dead letters
        "QueuePolicy": 1,
        "EventRule": 1,
        "EventTarget": 1,
    }
    if worker:  # the Prefect worker service: its role, outbound-only group, task definition and service
        for kind, count in {"Role": 1, "RolePolicy": 1, "SecurityGroup": 1, "SecurityGroupEgressRule": 1}.items():
            inventory[kind] += count
        inventory.update(TaskDefinition=1, Service=1)
    return inventory


def test_inventory(stack):
    nat = 2 if _cfg(stack, "nat_strategy") == "per-az" else 1
    assert dict(stack.inventory()) == expected_inventory(nat, _cfg(stack, "prefect_worker") == "true")


def test_per_az_nat_gives_each_private_subnet_its_own_nat():
    single, per_az = _stack("single-nat-no-spot"), _stack("per-az-nat")
    assert len(single.of_type(":NatGateway")) == 1 and len(single.of_type(":Eip")) == 1
    assert len(per_az.of_type(":NatGateway")) == 2 and len(per_az.of_type(":Eip")) == 2
    nats = {r.inputs["natGatewayId"] for r in per_az.of_type(":Route") if "natGatewayId" in r.inputs}
    assert len(nats) == 2
    # each NAT sits in a different public subnet, each with its own EIP
    placed = per_az.of_type(":NatGateway")
    assert {n.inputs["subnetId"] for n in placed} == set(per_az.outputs["public_subnet_ids"])
    assert len({n.inputs["allocationId"] for n in placed}) == 2


@pytest.mark.parametrize(("scenario", "provider"), [("answers", None), ("single-nat-no-spot", "FARGATE")])
def test_capacity_providers_and_spot_strategy(scenario, provider):
    s = _stack(scenario)
    [cp] = s.of_type(":ClusterCapacityProviders")
    assert sorted(cp.inputs["capacityProviders"]) == ["FARGATE", "FARGATE_SPOT"]
    assert cp.inputs["clusterName"] == s.outputs["ecs_cluster_name"]
    if provider is None:
        provider = "FARGATE_SPOT" if _cfg(s, "use_fargate_spot") == "true" else "FARGATE"
    assert [x["capacityProvider"] for x in cp.inputs["defaultCapacityProviderStrategies"]] == [provider]


def test_region_cidrs_and_names_follow_config(stack):
    region = _cfg(stack, "aws:region")
    vpc_net = ipaddress.ip_network(_cfg(stack, "vpc_cidr"))
    [vpc] = stack.of_type(":Vpc")
    assert vpc.inputs["cidrBlock"] == str(vpc_net)
    subnets = [ipaddress.ip_network(s.inputs["cidrBlock"]) for s in stack.of_type(":Subnet")]
    assert all(net.subnet_of(vpc_net) for net in subnets)
    assert not any(a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1 :])
    zones = {s.inputs["availabilityZone"] for s in stack.of_type(":Subnet")}
    assert zones == {f"{region}a", f"{region}b"}
    [endpoint] = stack.of_type(":VpcEndpoint")
    assert endpoint.inputs["serviceName"] == f"com.amazonaws.{region}.s3"
    assert stack.outputs["aws_region"] == region
    base = f"{_cfg(stack, 'name_prefix')}-"
    assert stack.outputs["ecs_cluster_name"].startswith(base)
    assert stack.outputs["bucket_name"].startswith(base) and stack.outputs["bucket_name"].endswith(region)


# --- wiring ----------------------------------------------------------------------------------------------------


def test_outputs_are_the_contract_and_point_at_the_right_resources(stack):
    out = stack.outputs
    assert tuple(out) == OUTPUT_NAMES
    subnets = sorted(stack.of_type(":Subnet"), key=lambda r: r.name)  # registration order is not deterministic
    private = [r for r in subnets if r.name.startswith("private-")]
    public = [r for r in subnets if r.name.startswith("public-")]
    assert out["private_subnet_ids"] == [r.id for r in private] and len(private) == 2
    assert out["public_subnet_ids"] == [r.id for r in public] and len(public) == 2
    assert len({r.inputs["availabilityZone"] for r in private}) == 2
    assert out["dask_security_group_id"] == stack.one("dask-sg").id
    assert out["vpc_id"] == stack.one("vpc").id
    assert out["ecs_cluster_arn"] == stack.one("cluster").state["arn"]
    assert out["execution_role_arn"] == stack.one("task-execution-role").state["arn"]
    assert out["task_role_arn"] == stack.one("dask-task-role").state["arn"]
    assert out["flow_run_role_arn"] == stack.one("flow-run-role").state["arn"]
    assert out["log_group_name"] == stack.one("log-group").inputs["name"]
    assert out["bucket_name"] == stack.one("data-bucket").id
    assert out["data_url"] == f"s3://{out['bucket_name']}/pipeline"
    assert out["ecr_repository_url"] == stack.one("image-repository").state["repositoryUrl"]
    base = f"{_cfg(stack, 'name_prefix')}-{stack.stack}"
    assert out["work_pool_name"] == f"{base}-ecs" and out["flow_run_family"] == f"{base}-flow-run"
    assert out["prefect_api_key_secret_arn"] == stack.one("prefect-api-key").state["arn"]
    if _cfg(stack, "prefect_worker") == "true":
        assert out["prefect_worker_role_arn"] == stack.one("prefect-worker-role").state["arn"]
        assert out["prefect_worker_service"] == f"{base}-prefect-worker"
    else:
        assert out["prefect_worker_role_arn"] == "" and out["prefect_worker_service"] == ""


def test_private_subnets_route_through_nat_and_public_through_igw(stack):
    routes = {r.inputs["routeTableId"]: r.inputs for r in stack.of_type(":Route")}
    assoc = {a.inputs["subnetId"]: a.inputs["routeTableId"] for a in stack.of_type(":RouteTableAssociation")}
    nat_ids = {n.id for n in stack.of_type(":NatGateway")}
    for subnet_id in stack.outputs["private_subnet_ids"]:
        route = routes[assoc[subnet_id]]
        assert route["destinationCidrBlock"] == "0.0.0.0/0"
        assert route["natGatewayId"] in nat_ids and "gatewayId" not in route
        assert stack.by_id(subnet_id).inputs["mapPublicIpOnLaunch"] is False
    for subnet_id in stack.outputs["public_subnet_ids"]:
        assert routes[assoc[subnet_id]]["gatewayId"] == stack.one("igw").id
    for nat in stack.of_type(":NatGateway"):
        assert nat.inputs["subnetId"] in stack.outputs["public_subnet_ids"]
    [endpoint] = stack.of_type(":VpcEndpoint")
    private_tables = {assoc[s] for s in stack.outputs["private_subnet_ids"]}
    assert set(endpoint.inputs["routeTableIds"]) == private_tables


# --- security --------------------------------------------------------------------------------------------------


def test_dask_ports_only_from_the_group_and_the_configured_cidr(stack):
    sg_id = stack.outputs["dask_security_group_id"]
    ingress = stack.of_type(":SecurityGroupIngressRule")
    assert all(r.inputs["securityGroupId"] == sg_id for r in ingress)  # nothing connects to the worker
    assert all(r.inputs["securityGroupId"] == sg_id for r in ingress)
    sources = [
        r.inputs.get("cidrIpv4") or r.inputs.get("cidrIpv6") or r.inputs.get("referencedSecurityGroupId")
        for r in ingress
    ]
    assert not any(str(src) in ("0.0.0.0/0", "::/0") for src in sources)
    [self_rule] = [r for r in ingress if r.inputs.get("referencedSecurityGroupId") == sg_id]
    assert (self_rule.inputs["fromPort"], self_rule.inputs["toPort"], self_rule.inputs["ipProtocol"]) == (
        0,
        65535,
        "tcp",
    )
    cidr_rules = [r for r in ingress if "cidrIpv4" in r.inputs]
    assert sorted((r.inputs["fromPort"], r.inputs["toPort"]) for r in cidr_rules) == [(p, p) for p in DASK_PORTS]
    assert {r.inputs["cidrIpv4"] for r in cidr_rules} == {_cfg(stack, "dask_access_cidr")}
    for sg in stack.of_type(":SecurityGroup"):
        assert not sg.inputs.get("ingress")  # no inline rules hiding next to the separate ones
    [default_sg] = stack.of_type(":DefaultSecurityGroup")
    assert not default_sg.inputs.get("ingress") and not default_sg.inputs.get("egress")


def test_bucket_private_encrypted_versioned_tls_only():
    s = _stack("answers")
    name = s.outputs["bucket_name"]
    [pab] = s.of_type(":BucketPublicAccessBlock")
    assert pab.inputs["bucket"] == name
    assert all(
        pab.inputs[f] is True
        for f in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    [sse] = s.of_type(":BucketServerSideEncryptionConfiguration")
    assert sse.inputs["bucket"] == name
    assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    [versioning] = s.of_type(":BucketVersioning")
    assert versioning.inputs["versioningConfiguration"]["status"] == "Enabled"
    [ownership] = s.of_type(":BucketOwnershipControls")
    assert ownership.inputs["rule"]["objectOwnership"] == "BucketOwnerEnforced"  # ACLs disabled
    [bucket] = s.of_type(":Bucket")
    assert "acl" not in bucket.inputs and "website" not in bucket.inputs and bucket.inputs["forceDestroy"] is False
    [deny] = _policy(s.one("data-bucket-tls-only"))["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"]
    [lifecycle] = s.of_type(":BucketLifecycleConfiguration")
    assert lifecycle.inputs["rules"][0]["abortIncompleteMultipartUpload"]["daysAfterInitiation"] > 0


def test_ecr_scans_on_push_and_expires_old_images(stack):
    [repo] = stack.of_type(":Repository")
    assert repo.inputs["imageScanningConfiguration"]["scanOnPush"] is True
    [lifecycle] = stack.of_type(":LifecyclePolicy")
    assert lifecycle.inputs["repository"] == repo.inputs["name"]
    rules = json.loads(lifecycle.inputs["policy"])["rules"]
    assert {r["selection"]["tagStatus"] for r in rules} == {"untagged", "any"}
    assert all(r["action"]["type"] == "expire" for r in rules)


def test_log_group_retention_follows_config(stack):
    [group] = stack.of_type(":LogGroup")
    assert group.inputs["retentionInDays"] == int(_cfg(stack, "log_retention_days"))


def test_pass_role_is_exactly_the_two_dask_roles(stack):
    statements = _statements(stack, "flow_run_role_arn")
    [passrole] = [st for st in statements if "iam:PassRole" in json.dumps(st["Action"])]
    assert passrole["Resource"] == [stack.outputs["execution_role_arn"], stack.outputs["task_role_arn"]]
    assert passrole["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    cluster_scoped = [st for st in statements if st["Sid"] in ("RunDaskTasksInThisCluster", "ManageTasksInThisCluster")]
    assert all(
        st["Condition"] == {"ArnEquals": {"ecs:cluster": stack.outputs["ecs_cluster_arn"]}} for st in cluster_scoped
    )
    actions = {a for st in statements for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])}
    # what FargateCluster calls with an existing cluster, network and roles (dask_cloudprovider/aws/ecs.py)
    assert {
        "ecs:RegisterTaskDefinition",
        "ecs:DeregisterTaskDefinition",
        "ecs:RunTask",
        "ecs:StopTask",
        "ecs:DescribeTasks",
        "ecs:DescribeClusters",
        "ecs:ListTasks",
        "ecs:TagResource",
        "ec2:DescribeNetworkInterfaces",
        "logs:GetLogEvents",
        "iam:PassRole",
        "s3:GetObject",
        "s3:PutObject",
    } <= actions


def test_execution_role_pulls_this_image_and_writes_this_log_group(stack):
    log_group_arn = stack.one("log-group").state["arn"]
    repo_arn = stack.one("image-repository").state["arn"]
    by_sid = {st["Sid"]: st for st in _statements(stack, "execution_role_arn")}
    assert by_sid["PullProjectImage"]["Resource"] == repo_arn
    assert by_sid["ContainerLogs"]["Resource"] == [log_group_arn, f"{log_group_arn}:*"]
    assert "logs:CreateLogGroup" in by_sid["ContainerLogs"]["Action"]  # awslogs-create-group in FargateCluster


def test_dask_task_role_reaches_only_the_data_prefix_of_the_project_bucket(stack):
    """An allow-list: objects under the data prefix only, and listing only under it (s3:prefix)."""
    bucket_arn = f"arn:aws:s3:::{stack.outputs['bucket_name']}"
    assert stack.outputs["data_url"] == f"s3://{stack.outputs['bucket_name']}/pipeline"
    statements = _statements(stack, "task_role_arn")
    for st in statements:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        assert all(a.startswith("s3:") for a in actions) and st["Effect"] == "Allow"
        assert st["Resource"] in (bucket_arn, [f"{bucket_arn}/pipeline/*"]), st
    by_sid = {st["Sid"]: st for st in statements}
    assert by_sid["ListOwnPrefixes"]["Condition"] == {"StringLike": {"s3:prefix": ["pipeline", "pipeline/*"]}}
    assert "s3:ListBucket" not in by_sid["ProjectBucket"]["Action"]
    flow_run = {st["Sid"]: st for st in _statements(stack, "flow_run_role_arn")}["ProjectBucketObjects"]
{%- if cookiecutter.tracking == "mlflow" %}
    # MLflow artifacts: beside the data, written by the flow run only (ml_workflows.tracking.deploy_env).
    from infra.identity import TRACKING_PREFIX
    from ml_workflows import tracking

    assert TRACKING_PREFIX == tracking.S3_PREFIX
    assert flow_run["Resource"] == [f"{bucket_arn}/pipeline/*", f"{bucket_arn}/{TRACKING_PREFIX}/*"]
{%- else %}
    assert flow_run["Resource"] == [f"{bucket_arn}/pipeline/*"]
{%- endif %}


def test_role_names_carry_the_region(stack):
    """IAM names are global: the same stack name in two regions must not collide."""
    region = stack.outputs["aws_region"]
    for role in stack.of_type(":Role"):
        assert f"-{region}-" in role.inputs["name"] and len(role.inputs["name"]) <= 64, role.inputs["name"]


def test_the_flow_run_role_registers_and_runs_this_stacks_dask_families_only(stack):
    from infra import identity

    base = stack.outputs["ecs_cluster_name"]
    prefix = f"arn:aws:ecs:{stack.outputs['aws_region']}:123456789012:task-definition/dask-{base}_*"
    by_sid = {st["Sid"]: st for st in _statements(stack, "flow_run_role_arn")}
    assert by_sid["RegisterDaskTaskDefinitions"]["Resource"] == prefix
    assert by_sid["RunDaskTasksInThisCluster"]["Resource"] == prefix
    assert identity.dask_family_prefix(base) == f"dask-{base}_"


def test_task_events_of_this_cluster_reach_an_encrypted_queue_only_its_rule_may_send_to(stack):
    """Crash detection (infra/events.py): the rule matches this cluster's task state changes, its target is the queue
    the worker's observer reads (the name the worker is given), and only that rule may send to it, over TLS."""
    from infra import identity

    base = stack.outputs["ecs_cluster_name"]
    queues = {q.inputs["name"]: q for q in stack.of_type(":Queue")}
    queue = queues[identity.event_queue_name(base)]
    assert all(q.inputs["sqsManagedSseEnabled"] for q in queues.values())
    dead_letters = queues[f"{base}-ecs-events-dlq"].state["arn"]
    assert json.loads(queue.inputs["redrivePolicy"])["deadLetterTargetArn"] == dead_letters
    [rule] = stack.of_type(":EventRule")
    assert json.loads(rule.inputs["eventPattern"]) == {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {"clusterArn": [stack.outputs["ecs_cluster_arn"]]},
    }
    [target] = stack.of_type(":EventTarget")
    assert target.inputs["arn"] == queue.state["arn"] and target.inputs["rule"] == rule.inputs["name"]
    [policy] = stack.of_type(":QueuePolicy")
    allow, deny = json.loads(policy.inputs["policy"])["Statement"]
    assert allow["Principal"] == {"Service": "events.amazonaws.com"} and allow["Action"] == "sqs:SendMessage"
    assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": rule.state["arn"]}}
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_flow_run_role_may_read_the_account_arn_format_setting(stack):
    # FargateCluster calls ecs:ListAccountSettings before every RunTask (the cloud rehearsal records it).
    by_sid = {st["Sid"]: st for st in _statements(stack, "flow_run_role_arn")}
    assert "ecs:ListAccountSettings" in by_sid["TaskDefinitionsAndNetworkLookups"]["Action"]


{% if cookiecutter.prefect_worker|string|lower in ["true", "yes", "y", "1"] %}def test_worker_service_runs_the_ecs_worker_with_the_key_from_secrets_manager():
    s = _stack("worker-running")
    [definition] = s.of_type(":TaskDefinition")
    [container] = json.loads(definition.inputs["containerDefinitions"])
    pool = s.outputs["work_pool_name"]
    assert container["command"] == ["prefect", "worker", "start", "--pool", pool, "--type", "ecs"]
    assert container["image"] == _cfg(s, "prefect_worker_image")
    assert container["secrets"] == [{"name": "PREFECT_API_KEY", "valueFrom": s.outputs["prefect_api_key_secret_arn"]}]
    assert "PREFECT_API_KEY" not in {e["name"] for e in container["environment"]}
    assert definition.inputs["taskRoleArn"] == s.outputs["prefect_worker_role_arn"]
    assert definition.inputs["executionRoleArn"] == s.outputs["execution_role_arn"]
    [service] = s.of_type(":Service")
    assert service.inputs["desiredCount"] == 1 and service.inputs["launchType"] == "FARGATE"
    network = service.inputs["networkConfiguration"]
    assert network["assignPublicIp"] is False and set(network["subnets"]) == set(s.outputs["private_subnet_ids"])
    # until make deploy has pushed the image and knows the Prefect API, no task runs
    [idle] = _stack("answers").of_type(":Service") or [None]
    assert idle is None or idle.inputs["desiredCount"] == 0


def test_worker_role_passes_only_the_flow_run_roles_and_runs_only_flow_runs():
    s = _stack("worker-running")
    by_sid = {st["Sid"]: st for st in _statements(s, "prefect_worker_role_arn")}
    passed = [s.outputs["execution_role_arn"], s.outputs["flow_run_role_arn"]]
    assert by_sid["PassOnlyTheFlowRunRoles"]["Resource"] == passed
    run = by_sid["RunFlowRunsInThisCluster"]
    assert run["Resource"].endswith(f":task-definition/{s.outputs['flow_run_family']}:*")
    assert run["Condition"] == {"ArnEquals": {"ecs:cluster": s.outputs["ecs_cluster_arn"]}}
{%- else %}def test_no_worker_resources_in_this_project():
    # prefect_worker = no: the worker runs outside the stack (README "The ECS worker"); the stack has no worker
    s = _stack("answers")
    assert not s.of_type(":Service") and not s.of_type(":TaskDefinition")
    assert s.outputs["prefect_worker_role_arn"] == "" and s.outputs["prefect_worker_service"] == ""
    with pytest.raises(ValueError, match="prefect_worker"):
        _settings(prefect_worker=True)
{%- endif %}


def test_execution_role_reads_only_the_prefect_api_key_secret(stack):
    by_sid = {st["Sid"]: st for st in _statements(stack, "execution_role_arn")}
    key = by_sid["PrefectApiKey"]
    assert key["Action"] == "secretsmanager:GetSecretValue"
    assert key["Resource"].endswith(f":secret:{_cfg(stack, 'name_prefix')}-{stack.stack}/prefect-api-key-??????")


def test_roles_trust_only_ecs_tasks_of_this_account(stack):
    for role in stack.of_type(":Role"):
        [st] = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert st["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert st["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def test_every_policy_pack_rule_passes_on_the_program(stack):
    """The runtime's policy pack (ml_workflows.policy: what `make preview` and `make provision` enforce) finds
    nothing wrong with this program's resources."""
    violations = [
        f"{r.name}: {message}"
        for r in stack.resources
        for name, rule in rules.RESOURCE_RULES.items()
        for message in rule(r.type, r.inputs)
    ]
    resources = [rules.Resource(type=r.type, name=r.name, props=r.inputs) for r in stack.resources]
    violations += [m for rule in rules.STACK_RULES.values() for m in rule(resources)]
    assert violations == []


# --- settings --------------------------------------------------------------------------------------------------


def _settings(**changes) -> settings.Settings:
    base = {
        "project": "p",
        "stack": "dev",
        "region": "us-east-1",
        "name_prefix": "p",
        "vpc_cidr": "10.42.0.0/16",
        "dask_access_cidr": "10.42.0.0/16",
    }
    return settings.Settings(**{**base, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dask_access_cidr": "0.0.0.0/0"}, "whole internet"),
        ({"vpc_cidr": "10.0.0.0/8"}, "/16 to /24"),
        ({"vpc_cidr": "not-a-cidr"}, "not an IPv4 CIDR"),
        ({"nat_strategy": "none"}, "nat_strategy"),
        ({"log_retention_days": 10}, "log_retention_days"),
        ({"stack": "dev_2"}, "letters, digits and hyphens"),  # "_" ends the stack's part of a Dask family
        ({"name_prefix": "a" * 30, "stack": "b" * 9, "region": "ap-southeast-2"}, "exceed 64 characters"),
    ],
)
def test_settings_refuse_unsafe_or_invalid_config(changes, message):
    with pytest.raises(ValueError, match=message):
        _settings(**changes)


@pytest.mark.parametrize("cidr", ["10.42.0.0/16", "10.42.0.0/24", "192.168.0.0/20"])
def test_subnet_plan_fits_the_vpc(cidr):
    private, public = _settings(vpc_cidr=cidr).subnet_cidrs()
    nets = [ipaddress.ip_network(c) for c in private + public]
    assert all(n.subnet_of(ipaddress.ip_network(cidr)) for n in nets)
    assert len({str(n) for n in nets}) == 4 and not any(
        a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :]
    )
    assert nets[0].num_addresses > nets[2].num_addresses  # the workers' subnets are the big ones


def test_pulumi_yaml_declares_every_setting_with_a_default():
    keys = {k.split(":", 1)[1] for k in DEFAULTS if k.startswith(f"{PROJECT}:")}
    assert keys == {
        "name_prefix",
        "vpc_cidr",
        "dask_access_cidr",
        "nat_strategy",
        "log_retention_days",
        "use_fargate_spot",
        "prefect_worker",
        "prefect_worker_image",
        "prefect_api_url",
    }
    assert "aws:region" in DEFAULTS
