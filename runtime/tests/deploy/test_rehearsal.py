"""The rehearsal's process handling: every process it starts is stopped, also one that ignores its signal.
(The rehearsal itself, `make rehearse`, runs in CI and in the template's tests: a few minutes.)"""

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ml_workflows.deploy import rehearsal as rehearse

STUBBORN = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('up', flush=True); time.sleep(600)"


def test_services_stop_everything_even_a_process_that_ignores_sigint(tmp_path):
    services = rehearse.Services(logs=tmp_path, env={"PATH": "/usr/bin:/bin"})
    stubborn = services.start("stubborn", [sys.executable, "-c", STUBBORN], signal.SIGINT)
    polite = services.start("polite", [sys.executable, "-c", "import time; time.sleep(600)"])
    rehearse.wait_until("stubborn", lambda: "up" in (tmp_path / "stubborn.log").read_text(), services, 30)
    services.stop_all(grace=1)
    assert stubborn.poll() is not None and polite.poll() is not None
    assert stubborn.returncode == -signal.SIGKILL  # SIGINT ignored -> killed after the grace period
    assert polite.returncode == -signal.SIGTERM
    assert services.started == []


def test_a_service_that_dies_is_reported_with_its_log(tmp_path):
    services = rehearse.Services(logs=tmp_path, env={"PATH": "/usr/bin:/bin"})
    services.start("broken", [sys.executable, "-c", "print('cannot bind'); raise SystemExit(3)"])
    with pytest.raises(RuntimeError, match="broken exited with 3:\ncannot bind"):
        rehearse.wait_until("never", lambda: False, services, 30)
    services.stop_all(grace=1)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_stragglers_outside_the_process_groups_are_found_by_their_environment(tmp_path):
    marker = f"PREFECT_HOME={tmp_path}/prefect-home"
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        env={"PATH": "/usr/bin:/bin", "PREFECT_HOME": f"{tmp_path}/prefect-home"},
        start_new_session=True,
    )
    try:
        assert rehearse.kill_stragglers(marker) == 1
        assert orphan.wait(timeout=10) == -signal.SIGKILL
    finally:
        if orphan.poll() is None:
            orphan.kill()
