"""Task plugins through the `clipsweep.tasks` entry-point group, with the example plugin shipped in
examples/plugin-task. Each case runs in a subprocess whose sys.path holds a directory laid out as
an installed distribution (module + .dist-info with entry_points.txt): the real discovery
mechanism, without installing anything into the test environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugin-task"


def install_fake(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[clipsweep.tasks]\n{lines}\n")
    for name, source in modules.items():
        (site / f"{name}.py").write_text(source)


def run_python(site: Path, code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_example_plugin_is_discovered_and_trains(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE / "clipsweep_example_task.py", tmp_path)
    install_fake(tmp_path, "clipsweep_example_task", {"sine_mlp": "clipsweep_example_task:SineMLPTask"}, {})
    result = run_python(tmp_path, """
import json
from trainers import TrainConfig, ClippingConfig
from trainers.tasks import registered_tasks, plugin_errors, get_task_class
from trainers.vectorized import run_chunk
from trainers.plugins import plugin_distribution
cfg = TrainConfig(task="sine_mlp", lr=0.05, task_params={"depth": 3, "width": 8}, max_steps=5,
                  clipping=ClippingConfig("agc", {}))
outcomes = {seed: r.outcome.value for seed, r in run_chunk(cfg, [0, 1, 2], vectorize=True)}
print(json.dumps({"tasks": sorted(registered_tasks()), "errors": plugin_errors(), "outcomes": outcomes,
                  "doc": get_task_class("sine_mlp").describe()["doc"],
                  "dists": [plugin_distribution("sine_mlp"), plugin_distribution("adding")]}))
""")
    assert "sine_mlp" in result["tasks"] and "adding" in result["tasks"]
    assert result["errors"] == {}
    assert set(result["outcomes"]) == {"0", "1", "2"}
    assert result["doc"].startswith("Deep tanh MLP")
    assert result["dists"] == ["clipsweep_example_task==0.1", None]  # what a sweep records of its task


def test_a_broken_plugin_is_left_out_with_its_reason(tmp_path: Path) -> None:
    install_fake(tmp_path, "broken_plugins", {
        "crashes": "crashing_module:Task",
        "not_a_task": "plain_module:NotATask",
        "adding": "plain_module:NotATask",
    }, {
        "crashing_module": "raise RuntimeError('plugin bug')\n",
        "plain_module": "class NotATask:\n    name = 'not_a_task'\n",
    })
    result = run_python(tmp_path, """
import json
from trainers.config import ConfigError
from trainers.tasks import registered_tasks, plugin_errors, get_task_class
try:
    get_task_class("crashes")
    message = None
except ConfigError as exc:
    message = str(exc)
print(json.dumps({"tasks": sorted(registered_tasks()), "errors": plugin_errors(), "message": message}))
""")
    assert "crashes" not in result["tasks"] and "not_a_task" not in result["tasks"]
    assert "RuntimeError: plugin bug" in result["errors"]["crashes"]
    assert "not a subclass" in result["errors"]["not_a_task"]
    assert "built-in" in result["errors"]["adding"]
    assert "plugin bug" in result["message"]
