"""Test tools of ml-workflows: the pytest plugin (:mod:`.plugin`), fault helpers (:mod:`.faults`) and the cloud
rehearsal's harness (moto with IAM enforced, ECS tasks as local processes, the image as Dockerfile describes it)."""
