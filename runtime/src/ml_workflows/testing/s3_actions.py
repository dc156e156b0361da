"""The IAM action AWS authorises for each S3 request, for moto's IAM enforcement in the cloud rehearsal.

moto up to 5.2.5 checked S3 requests against IAM action names (its own table: a HEAD on a key as s3:GetObject).
moto 5.2.6 checks them against the *operation* name botocore routes the request to (s3:HeadObject,
s3:ListObjectsV2, s3:DeleteObjects, s3:CreateMultipartUpload, ...), which no IAM policy names. Both are mapped here
to the action AWS evaluates, from AWS's table "Required permissions for Amazon S3 API operations" (general purpose
buckets). A name that is neither a mapped operation nor an IAM action of that table is an error naming it: a new
S3 call of a client needs its IAM action written down here, never a guess.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

# S3 API operation -> IAM action, where the two names differ or the operation is not an action itself.
OPERATION_ACTION = {
    # bucket operations
    "HeadBucket": "ListBucket",
    "ListObjects": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "ListObjectVersions": "ListBucketVersions",
    "ListMultipartUploads": "ListBucketMultipartUploads",
    "ListBuckets": "ListAllMyBuckets",
    "GetBucketAccelerateConfiguration": "GetAccelerateConfiguration",
    "PutBucketAccelerateConfiguration": "PutAccelerateConfiguration",
    "GetBucketAnalyticsConfiguration": "GetAnalyticsConfiguration",
    "ListBucketAnalyticsConfigurations": "GetAnalyticsConfiguration",
    "PutBucketAnalyticsConfiguration": "PutAnalyticsConfiguration",
    "DeleteBucketAnalyticsConfiguration": "PutAnalyticsConfiguration",
    "GetBucketCors": "GetBucketCORS",
    "PutBucketCors": "PutBucketCORS",
    "DeleteBucketCors": "PutBucketCORS",
    "GetBucketEncryption": "GetEncryptionConfiguration",
    "PutBucketEncryption": "PutEncryptionConfiguration",
    "DeleteBucketEncryption": "PutEncryptionConfiguration",
    "GetBucketIntelligentTieringConfiguration": "GetIntelligentTieringConfiguration",
    "ListBucketIntelligentTieringConfigurations": "GetIntelligentTieringConfiguration",
    "PutBucketIntelligentTieringConfiguration": "PutIntelligentTieringConfiguration",
    "DeleteBucketIntelligentTieringConfiguration": "PutIntelligentTieringConfiguration",
    "GetBucketInventoryConfiguration": "GetInventoryConfiguration",
    "ListBucketInventoryConfigurations": "GetInventoryConfiguration",
    "PutBucketInventoryConfiguration": "PutInventoryConfiguration",
    "DeleteBucketInventoryConfiguration": "PutInventoryConfiguration",
    "GetBucketLifecycle": "GetLifecycleConfiguration",
    "GetBucketLifecycleConfiguration": "GetLifecycleConfiguration",
    "PutBucketLifecycle": "PutLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "PutLifecycleConfiguration",
    "DeleteBucketLifecycle": "PutLifecycleConfiguration",
    "GetBucketMetricsConfiguration": "GetMetricsConfiguration",
    "ListBucketMetricsConfigurations": "GetMetricsConfiguration",
    "PutBucketMetricsConfiguration": "PutMetricsConfiguration",
    "DeleteBucketMetricsConfiguration": "PutMetricsConfiguration",
    "GetBucketNotificationConfiguration": "GetBucketNotification",
    "PutBucketNotificationConfiguration": "PutBucketNotification",
    "DeleteBucketOwnershipControls": "PutBucketOwnershipControls",
    "GetBucketReplication": "GetReplicationConfiguration",
    "PutBucketReplication": "PutReplicationConfiguration",
    "DeleteBucketReplication": "PutReplicationConfiguration",
    "DeleteBucketTagging": "PutBucketTagging",
    "GetObjectLockConfiguration": "GetBucketObjectLockConfiguration",
    "PutObjectLockConfiguration": "PutBucketObjectLockConfiguration",
    "GetPublicAccessBlock": "GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
    "DeletePublicAccessBlock": "PutBucketPublicAccessBlock",
    # object operations
    "HeadObject": "GetObject",
    "SelectObjectContent": "GetObject",
    "CopyObject": "PutObject",  # on the destination; AWS also authorises GetObject on the source
    "UploadPartCopy": "PutObject",  # likewise
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "ListParts": "ListMultipartUploadParts",
    "DeleteObjects": "DeleteObject",  # authorised for each key it deletes (iam_scope.py checks them one by one)
}

# IAM actions of the same table whose name is also their operation's (and what moto <= 5.2.5 already sent).
IAM_ACTIONS = frozenset(OPERATION_ACTION.values()) | {
    "CreateBucket",
    "DeleteBucket",
    "DeleteBucketPolicy",
    "DeleteBucketWebsite",
    "GetBucketAcl",
    "GetBucketLocation",
    "GetBucketLogging",
    "GetBucketNotification",
    "GetBucketOwnershipControls",
    "GetBucketPolicy",
    "GetBucketPolicyStatus",
    "GetBucketRequestPayment",
    "GetBucketTagging",
    "GetBucketVersioning",
    "GetBucketWebsite",
    "PutBucketAcl",
    "PutBucketLogging",
    "PutBucketNotification",
    "PutBucketOwnershipControls",
    "PutBucketPolicy",
    "PutBucketRequestPayment",
    "PutBucketTagging",
    "PutBucketVersioning",
    "PutBucketWebsite",
    "AbortMultipartUpload",
    "DeleteObject",
    "DeleteObjectTagging",
    "DeleteObjectVersion",
    "DeleteObjectVersionTagging",
    "GetObject",
    "GetObjectAcl",
    "GetObjectAttributes",
    "GetObjectLegalHold",
    "GetObjectRetention",
    "GetObjectTagging",
    "GetObjectVersion",
    "GetObjectVersionAcl",
    "GetObjectVersionTagging",
    "PutObject",
    "PutObjectAcl",
    "PutObjectLegalHold",
    "PutObjectRetention",
    "PutObjectTagging",
    "RestoreObject",
}
# A request for one version of an object is authorised as the *Version action (GetObject -> GetObjectVersion).
VERSIONED = {
    "GetObject": "GetObjectVersion",
    "GetObjectAcl": "GetObjectVersionAcl",
    "GetObjectTagging": "GetObjectVersionTagging",
    "DeleteObject": "DeleteObjectVersion",
    "DeleteObjectTagging": "DeleteObjectVersionTagging",
    "PutObjectAcl": "PutObjectVersionAcl",
    "PutObjectTagging": "PutObjectVersionTagging",
}


class UnmappedS3Request(Exception):
    """An S3 request whose IAM action is not written down here."""


def iam_action(name: str, path: str = "") -> str:
    """The IAM action (`s3:...`) AWS authorises for moto's name `name` (`s3:Operation` or `s3:Action`) of a request
    to `path` (with its query string)."""
    service, _, operation = name.partition(":")
    if service != "s3":
        return name
    action = OPERATION_ACTION.get(operation, operation)
    if action not in IAM_ACTIONS:
        raise UnmappedS3Request(
            f"S3 request {name} ({path or 'no path'}) has no IAM action in ml_workflows.testing.s3_actions: add it "
            "from AWS's table 'Required permissions for Amazon S3 API operations'"
        )
    if action in VERSIONED and "versionId" in parse_qs(urlsplit(path).query):
        action = VERSIONED[action]
    return f"s3:{action}"
