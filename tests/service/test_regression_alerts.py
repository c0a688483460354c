"""A real regression, end to end, nothing mocked: a task plugin whose stability depends on
something outside the spec (its installed version, as a library upgrade would), three manual fires
of one schedule on a real `clipsweep serve`, and a real receiver on loopback that checks every
signature with the Standard Webhooks reference library. The upgrade makes seeds diverge: the
receiver gets `regression.detected` with the flipped seeds and what changed; the fix resolves the
alert and sends `regression.resolved`. The CLI adds the webhook and reads the alert and the
comparison, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT, Server
from tests.receiver import Receiver

pytestmark = pytest.mark.slow

PLUGIN = '''
import os

import torch

from trainers.tasks.quadratic import QuadraticTask


class DriftingQuadratic(QuadraticTask):
    """The quadratic, its curvature spread over seeds (1 to 2 times) and scaled by what the
    installed "library" says: plain GD at lr 0.01 diverges where the curvature passes 200."""

    name = "drifting_quadratic"

    def build_model(self, seed):
        model = super().build_model(seed)
        with open(os.environ["DRIFT_SCALE_FILE"]) as f:
            scale = float(f.read())
        with torch.no_grad():
            model.lambdas.mul_(scale * (1 + (seed % 16) / 16))
        return model
'''
SPEC = {"task": {"name": "drifting_quadratic"}, "learning_rates": [0.01],
        "clipping": [{"method": "none"}, {"method": "norm", "max_norm": 1.0}], "seeds": 16,
        "budget": {"max_steps": 200}}


def install(site: Path, version: str, scale: float) -> None:
    """The plugin at `version`, as an installed distribution; its curvature scale."""
    for old in site.glob("drift_task-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    info = site / f"drift_task-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: drift-task\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("[clipsweep.tasks]\ndrifting_quadratic = drift_task:DriftingQuadratic\n")
    (site / "drift_task.py").write_text(PLUGIN)
    (site / "scale").write_text(str(scale))


def clipsweep(server: Server, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "CLIPSWEEP_SERVER_URL": server.url}, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def fire(server: Server, schedule_id: int) -> int:
    out = clipsweep(server, "schedule", "trigger", str(schedule_id))
    sweep_id = int(out.split("sweep ")[1].split()[0])
    assert server.wait_finished(sweep_id)["status"] == "succeeded"
    return sweep_id


def test_a_library_upgrade_that_breaks_training_alerts_once_signed_and_the_fix_resolves_it(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install(site, "1.0", scale=1.0)
    server = Server(tmp_path / "serve", env={
        "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "DRIFT_SCALE_FILE": str(site / "scale"),
        "CLIPSWEEP_WEBHOOK_ALLOW_PRIVATE": "true", "CLIPSWEEP_WORKER_POLL_SECONDS": "0.2"})
    try:
        with Receiver() as receiver:
            made = server.http.post("/api/v1/schedules", json={"name": "nightly-drift", "cron": "0 2 * * *",
                                                               "sweep": SPEC})
            assert made.status_code == 201, made.text
            schedule_id = made.json()["id"]
            added = clipsweep(server, "schedule", "webhook", "add", str(schedule_id), receiver.url,
                              "--events", "regression.detected,regression.resolved")
            secret = added.split("signing secret")[1].split(": ", 1)[1].strip()
            assert secret.startswith("whsec_")

            good = fire(server, schedule_id)
            install(site, "2.0", scale=1.5)  # the upgrade: seeds 6-15 now pass the curvature lr 0.01 survives
            bad = fire(server, schedule_id)
            [detected] = receiver.wait_for(1, timeout=60)
            body = detected.verified(secret)
            assert body["type"] == "regression.detected"
            alert = body["data"]["alert"]
            assert alert["kind"] == "divergence" and alert["clipping"] == "none"
            assert alert["evidence"]["flipped_seeds"] == list(range(6, 16)) and alert["evidence"]["test"] == "mcnemar"
            assert (alert["evidence"]["baseline"]["diverged"], alert["evidence"]["current"]["diverged"]) == (0, 10)
            assert alert["environment_change"] == ["task_plugin drift-task==1.0 → drift-task==2.0"]
            # 10 flips and none back: p = 2⁻¹⁰, q = 2 × p over the two cells (docs/alerts.md quotes this).
            assert body["text"] == ("divergence at lr 0.01, none: 0/16 → 10/16 (q = 0.002); "
                                    "task_plugin drift-task==1.0 → drift-task==2.0")
            assert body["data"]["links"]["sweep"].endswith(f"/sweeps/{bad}")
            assert body["data"]["links"]["baseline"].endswith(f"/sweeps/{good}")

            listed = clipsweep(server, "alerts", "--state", "open")
            assert f"{bad} vs {good}" in listed and "0/16 → 10/16" in listed
            compared = clipsweep(server, "compare", str(bad), str(good))
            assert "6, 7, 8, 9, 10, 11, 12, 13, 14, 15" in compared and "mcnemar" in compared
            shown = clipsweep(server, "schedule", "show", str(schedule_id))
            assert f"1 regression vs {good}" in shown and "not compared" in shown, shown
            assert "alpha 0.05" in shown and "compared with the previous succeeded sweep" in shown, shown
            # Someone is on it: acknowledged, it still resolves itself (and says so) once fixed.
            assert "acknowledged" in clipsweep(server, "alerts", "ack", str(alert["id"]))

            install(site, "2.1", scale=1.0)  # the fix
            fixed = fire(server, schedule_id)
            deliveries = receiver.wait_for(2, timeout=60)
            assert len(deliveries) == 2, "one message when it broke, one when it was fixed"
            resolved = deliveries[1].verified(secret)
            assert resolved["type"] == "regression.resolved"
            assert resolved["data"]["alert"]["id"] == alert["id"]
            assert resolved["data"]["alert"]["resolved_by_sweep_id"] == fixed
            assert server.http.get(f"/api/v1/alerts/{alert['id']}").json()["state"] == "resolved"
            assert len({d.msg_id for d in deliveries}) == 2
    finally:
        server.stop()
