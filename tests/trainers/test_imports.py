"""trainers/ is importable and trains without Ray, and never depends on the service."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from tests.trainers.helpers import small_config, step_losses
from trainers.seeding import stream_seed
from trainers.vectorized import run_chunk

ROOT = Path(__file__).resolve().parents[2]
TRAINERS = ROOT / "trainers"

# Runs in a fresh interpreter where `import ray` fails (a None entry in sys.modules makes every
# import of that name raise ImportError).
RAY_FREE_SCRIPT = textwrap.dedent("""
    import json, pkgutil, sys
    sys.modules["ray"] = None
    try:
        import ray
    except ImportError:
        pass
    else:
        raise SystemExit("the ray block did not work")

    import torch
    torch.set_num_threads(int(sys.argv[1]))
    import trainers
    from trainers import TrainConfig, run_seed, train
    from trainers.seeding import stream_seed

    for mod in pkgutil.walk_packages(trainers.__path__, "trainers."):
        if mod.name == "trainers.ray_adapter":
            continue
        __import__(mod.name)
    try:
        import trainers.ray_adapter
    except ImportError:
        adapter_needs_ray = True
    else:
        adapter_needs_ray = False

    from trainers.vectorized import run_chunk

    config = TrainConfig.from_dict(json.loads(sys.argv[2]))
    losses = [r.loss for r in train(config, 3)]
    result = run_seed(config, 3)
    chunk = {seed: [p.loss for p in r.points] for seed, r in run_chunk(config, [3, 5], vectorize=True)}
    loaded = sorted(name for name, mod in sys.modules.items() if mod is not None
                    and name.split(".")[0] in ("ray", "service"))
    print(json.dumps({"losses": losses, "steps_done": result.steps_done,
                      "outcome": result.outcome.value, "loaded": loaded,
                      "adapter_needs_ray": adapter_needs_ray, "chunk": chunk,
                      "stream_seed": stream_seed(3, "data")}))
""")


def test_trains_without_ray_and_matches_this_process() -> None:
    """In a process where Ray cannot be imported, every trainers module but the adapter imports
    and 5 steps train, sequentially and as a vectorized chunk of two seeds; the losses equal this
    process's bit for bit (another process, another hash seed: seeding does not depend on either)."""
    config = small_config(max_steps=5)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "12345"}
    proc = subprocess.run(
        [sys.executable, "-c", RAY_FREE_SCRIPT, str(torch.get_num_threads()),
         json.dumps(config.to_dict())],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    assert out["adapter_needs_ray"] is True
    assert out["steps_done"] == 5 and out["outcome"] == "unconverged"
    assert len(out["losses"]) == 5
    assert out["losses"] == step_losses(config, 3)
    assert out["stream_seed"] == stream_seed(3, "data")
    chunk = {seed: [p.loss for p in r.points] for seed, r in run_chunk(config, [3, 5], vectorize=True)}
    assert out["chunk"] == {str(seed): losses for seed, losses in chunk.items()}  # JSON keys are strings
    assert len(chunk[3]) == len(chunk[5]) == 5


def _imports(pattern: str) -> dict[str, list[str]]:
    """Lines of trainers/**/*.py importing a module that matches `pattern`, by file."""
    found: dict[str, list[str]] = {}
    regex = re.compile(rf"^\s*(from\s+{pattern}(\.|\s)|import\s+{pattern}(\.|\s|$|,))", re.M)
    for path in sorted(TRAINERS.rglob("*.py")):
        lines = [m.group(0).strip() for m in regex.finditer(path.read_text())]
        if lines:
            found[str(path.relative_to(ROOT))] = lines
    return found


def test_import_scan_sees_the_files() -> None:
    """The scan below reads the real sources (so an empty result means something)."""
    assert (TRAINERS / "loop.py").is_file()
    assert "trainers/loop.py" in _imports("torch")


def test_trainers_never_import_service() -> None:
    assert _imports("service") == {}


def test_only_the_adapter_imports_ray() -> None:
    assert list(_imports("ray")) == ["trainers/ray_adapter.py"]
