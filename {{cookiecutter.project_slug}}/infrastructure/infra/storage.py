"""The project bucket: data, models and scores. Private, encrypted, versioned, reachable over TLS only."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from .settings import Settings

NONCURRENT_VERSION_DAYS = 30  # old versions of overwritten objects are kept this long, then expire
ABORT_MULTIPART_DAYS = 7  # parts of failed multipart uploads are billed until aborted


def bucket_name_for(s: Settings, account_id: str) -> str:
    """Bucket names are global: the account and region make this one unique without a random suffix."""
    suffix = f"-{account_id}-{s.region}"
    return s.base_name[: 63 - len(suffix)].rstrip("-") + suffix


def tls_only_policy(bucket_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )


def create(s: Settings, bucket_name: pulumi.Output[str], partition: pulumi.Output[str]) -> aws.s3.Bucket:
    """`bucket_name` is computed (see bucket_name_for) so it is known at preview, before the bucket exists."""
    bucket = aws.s3.Bucket("data-bucket", bucket=bucket_name, force_destroy=False)
    aws.s3.BucketOwnershipControls(
        "data-bucket-ownership", bucket=bucket.bucket, rule={"object_ownership": "BucketOwnerEnforced"}
    )
    public_access_block = aws.s3.BucketPublicAccessBlock(
        "data-bucket-public-access-block",
        bucket=bucket.bucket,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        "data-bucket-encryption",
        bucket=bucket.bucket,
        rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
    )
    versioning = aws.s3.BucketVersioning(
        "data-bucket-versioning", bucket=bucket.bucket, versioning_configuration={"status": "Enabled"}
    )
    aws.s3.BucketLifecycleConfiguration(
        "data-bucket-lifecycle",
        bucket=bucket.bucket,
        rules=[
            {
                "id": "expire-old-versions-and-failed-uploads",
                "status": "Enabled",
                "filter": {},
                "noncurrent_version_expiration": {"noncurrent_days": NONCURRENT_VERSION_DAYS},
                "abort_incomplete_multipart_upload": {"days_after_initiation": ABORT_MULTIPART_DAYS},
            }
        ],
        opts=pulumi.ResourceOptions(depends_on=[versioning]),
    )
    aws.s3.BucketPolicy(
        "data-bucket-tls-only",
        bucket=bucket.bucket,
        policy=pulumi.Output.all(partition, bucket_name).apply(lambda v: tls_only_policy(f"arn:{v[0]}:s3:::{v[1]}")),
        opts=pulumi.ResourceOptions(depends_on=[public_access_block]),
    )
    return bucket
