"""The task runner's picture of the image is the Dockerfile's (image.py reads it; these facts tie them)."""

from ml_workflows.testing.image import PROJECT_DIR, image_commands, read


def test_image_user_workdir_and_entrypoint_come_from_the_dockerfile():
    image = read()
    text = (PROJECT_DIR / "Dockerfile").read_text()
    assert f"USER {image.uid}:{image.gid}" in text and image.uid != 0
    assert f"WORKDIR {image.workdir}" in text
    assert image.entrypoint == ("tini", "-g", "--")  # no start-up installs (the base image's prepare.sh)
    assert image.home == f"/home/{image.user}" and "--create-home" in text


def test_image_path_holds_the_locked_runtime_commands_only():
    commands = image_commands(read())
    assert {"python", "dask", "prefect"} <= set(commands)
    # dev and infra tools are not in the image; distributed >= 2026.6 has no dask-scheduler / dask-worker
    assert not {"pytest", "moto_server", "ruff", "pulumi", "dask-scheduler", "dask-worker"} & set(commands)
