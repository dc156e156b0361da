"""The project's AWS infrastructure as plain pulumi_aws resources, one module per concern.

settings  -> stack config (Pulumi.yaml defaults come from the cookiecutter answers)
network   -> VPC, public/private subnets over two AZs, NAT, routes, S3 gateway endpoint, Dask security group
storage   -> the project bucket (private, encrypted, versioned, TLS only)
registry  -> the ECR repository for the project image
logs      -> the CloudWatch log group shared by flow runs and Dask tasks
compute   -> the ECS cluster with FARGATE and FARGATE_SPOT capacity providers
identity  -> task execution role, Dask task role, flow-run role
stack     -> wires them together and returns the stack outputs
"""
