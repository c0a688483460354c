"""`clipsweep serve`'s worker supervisor restarts a worker that exits, slower each time it exits
again at once, so a worker that cannot start is not retried every two seconds forever."""

from __future__ import annotations

import logging
import re
import sys
import time

import pytest

from service.worker.embedded import EmbeddedWorker


def test_a_worker_that_keeps_exiting_is_restarted_with_doubling_delays(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="clipsweep.serve")
    supervisor = EmbeddedWorker(restart_delay=0.05, max_delay=0.4,
                                command=[sys.executable, "-c", "import sys; sys.exit(3)"])
    supervisor.start()
    try:
        deadline = time.monotonic() + 30
        while len(re.findall("restarting in", caplog.text)) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        supervisor.stop(timeout=5)
    delays = [float(d) for d in re.findall(r"exited with code 3; restarting in ([\d.]+) s", caplog.text)]
    assert delays[:6] == [0.05, 0.1, 0.2, 0.4, 0.4, 0.4]
    assert caplog.text.count("worker process") >= 7  # started, and started again after each exit


def test_stop_ends_the_worker_and_no_restart_follows(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="clipsweep.serve")
    supervisor = EmbeddedWorker(restart_delay=0.05, command=[sys.executable, "-c", "import time; time.sleep(60)"])
    supervisor.start()
    process = supervisor.process
    supervisor.stop(timeout=5)
    assert process is not None and process.poll() is not None
    time.sleep(0.2)
    assert "restarting" not in caplog.text and supervisor.process is process
