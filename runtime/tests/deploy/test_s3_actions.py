"""S3 requests are checked as the IAM actions AWS authorises for them (ml_workflows.testing.s3_actions), on the
moto this project locks.

moto 5.2.6 began naming S3 requests by operation (s3:HeadObject) instead of IAM action (s3:GetObject): a harness
that trusted the name denied every read of a correctly configured role. Here a user allowed exactly the S3 actions
of the generated data policies makes the requests the pipeline's clients make (s3fs and boto3: reads, listings,
batch deletes, multipart uploads) through moto's enforcement on loopback; each is authorised as AWS would authorise
it, one action less denies the requests it covers under that action's name, and a request with no mapping is denied
naming itself.
"""

import contextlib
import json

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError

from ml_workflows.testing import s3_actions
from ml_workflows.testing.aws_emulation import MotoAws

BUCKET = "s3-actions-check"
DATA_ACTIONS = [  # what the generated flow-run and Dask task policies allow on the project bucket
    "s3:ListBucket",
    "s3:GetBucketLocation",
    "s3:ListBucketMultipartUploads",
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
]


@pytest.fixture(scope="module")
def aws():
    aws = MotoAws("us-east-1")
    aws.client("s3").create_bucket(Bucket=BUCKET)
    aws.enforce()
    try:
        yield aws
    finally:
        aws.close()


def s3_allowed(aws: MotoAws, name: str, actions: list[str]):
    """An S3 client of a new user whose one policy allows `actions` on everything."""
    iam = aws.client("iam")
    iam.create_user(UserName=name)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    iam.put_user_policy(UserName=name, PolicyName="data", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    aws.principals[key["AccessKeyId"]] = name
    creds = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
    return boto3.client("s3", region_name=aws.region, endpoint_url=aws.endpoint, **creds)


def pipeline_requests(s3) -> None:
    """The S3 requests of the pipeline's clients, in the order a run makes them."""
    s3.head_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="data/a.parquet", Body=b"a")
    s3.put_object(Bucket=BUCKET, Key="data/b.parquet", Body=b"b")
    s3.head_object(Bucket=BUCKET, Key="data/a.parquet")
    s3.get_object(Bucket=BUCKET, Key="data/a.parquet")["Body"].read()
    s3.list_objects_v2(Bucket=BUCKET, Prefix="data/")
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="data/big.parquet")["UploadId"]
    part = s3.upload_part(Bucket=BUCKET, Key="data/big.parquet", UploadId=upload, PartNumber=1, Body=b"x" * 1024)
    s3.list_parts(Bucket=BUCKET, Key="data/big.parquet", UploadId=upload)
    s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key="data/big.parquet",
        UploadId=upload,
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    aborted = s3.create_multipart_upload(Bucket=BUCKET, Key="data/aborted.parquet")["UploadId"]
    s3.list_multipart_uploads(Bucket=BUCKET)
    s3.abort_multipart_upload(Bucket=BUCKET, Key="data/aborted.parquet", UploadId=aborted)
    s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "data/a.parquet"}, {"Key": "data/b.parquet"}]})


def calls_of(aws: MotoAws, principal: str) -> list[tuple[str, bool]]:
    return [(c.action, c.denied) for c in aws.log.snapshot() if c.principal == principal]


def test_the_pipelines_s3_requests_are_authorised_as_the_iam_actions_aws_checks(aws):
    pipeline_requests(s3_allowed(aws, "all-data-actions", DATA_ACTIONS))
    calls = calls_of(aws, "all-data-actions")
    assert not [action for action, denied in calls if denied], calls
    assert {action for action, _ in calls} == set(DATA_ACTIONS) - {"s3:GetBucketLocation"}, calls


def test_one_action_less_denies_the_requests_it_covers_under_its_name(aws):
    s3 = s3_allowed(aws, "no-list-bucket", [a for a in DATA_ACTIONS if a != "s3:ListBucket"])
    s3.put_object(Bucket=BUCKET, Key="data/c.parquet", Body=b"c")
    s3.head_object(Bucket=BUCKET, Key="data/c.parquet")  # s3:GetObject
    for request in (lambda: s3.head_bucket(Bucket=BUCKET), lambda: s3.list_objects_v2(Bucket=BUCKET)):
        with pytest.raises(ClientError) as denied:
            request()
        assert denied.value.response["Error"]["Code"] in ("AccessDenied", "403"), denied.value.response
    assert [action for action, denied in calls_of(aws, "no-list-bucket") if denied] == ["s3:ListBucket"] * 2


def test_a_request_without_a_mapping_is_denied_naming_itself(aws, monkeypatch):
    monkeypatch.delitem(s3_actions.OPERATION_ACTION, "ListObjectsV2")
    s3 = s3_allowed(aws, "unmapped", ["s3:*"])
    with contextlib.suppress(ClientError):
        s3.list_objects_v2(Bucket=BUCKET)
    calls = [c for c in aws.log.snapshot() if c.principal == "unmapped"]
    if [(c.action, c.denied) for c in calls] == [("s3:ListBucket", False)]:  # pragma: no cover - moto <= 5.2.5
        pytest.skip("this moto names S3 requests by IAM action: no operation name is left to map")
    (call,) = calls
    assert call.denied and "s3:ListObjectsV2" in call.unmapped and "ml_workflows.testing.s3_actions" in call.unmapped, (
        call
    )


def test_the_table_names_real_s3_operations_and_versioned_requests_use_the_version_actions():
    operations = set(botocore.session.get_session().get_service_model("s3").operation_names)
    assert set(s3_actions.OPERATION_ACTION) <= operations, set(s3_actions.OPERATION_ACTION) - operations
    assert s3_actions.iam_action("s3:HeadObject", "/b/k") == "s3:GetObject"
    assert s3_actions.iam_action("s3:GetObject", "/b/k?versionId=3") == "s3:GetObjectVersion"
    assert s3_actions.iam_action("s3:DeleteObjects", "/b?delete") == "s3:DeleteObject"
    assert s3_actions.iam_action("ecs:RunTask") == "ecs:RunTask"  # other services name their actions already
    with pytest.raises(s3_actions.UnmappedS3Request, match="s3:CreateSession"):
        s3_actions.iam_action("s3:CreateSession", "/b?session")
