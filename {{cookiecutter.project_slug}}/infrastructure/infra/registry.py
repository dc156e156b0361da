"""ECR repository for the project image (flow runs and Dask workers run the same image)."""

from __future__ import annotations

import json

import pulumi_aws as aws

from .settings import Settings

UNTAGGED_EXPIRY_DAYS = 7
KEEP_IMAGES = 30

LIFECYCLE_POLICY = {
    "rules": [
        {
            "rulePriority": 1,
            "description": f"Expire untagged images after {UNTAGGED_EXPIRY_DAYS} days",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": UNTAGGED_EXPIRY_DAYS,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "description": f"Keep the newest {KEEP_IMAGES} images",
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": KEEP_IMAGES},
            "action": {"type": "expire"},
        },
    ]
}


def create(s: Settings) -> aws.ecr.Repository:
    repo = aws.ecr.Repository(
        "image-repository",
        name=s.base_name,
        image_tag_mutability="MUTABLE",  # `make deploy` may re-push a tag; images are still pinned by digest in runs
        image_scanning_configuration={"scan_on_push": True},
        encryption_configurations=[{"encryption_type": "AES256"}],
        force_delete=False,
    )
    aws.ecr.LifecyclePolicy("image-lifecycle", repository=repo.name, policy=json.dumps(LIFECYCLE_POLICY))
    return repo
