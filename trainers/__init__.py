"""clipsweep's training engine: plain PyTorch, importable where only torch is installed.

Ray appears only in `trainers.ray_adapter`; nothing here imports the service.
"""

from trainers.clipping import CLIPPERS, Clipper, ClipTelemetry, arm_label, build_clipper
from trainers.config import (
    ClippingConfig,
    ConvergenceConfig,
    DivergenceConfig,
    OptimizerConfig,
    TrainConfig,
)
from trainers.detection import Trigger
from trainers.errors import ConfigError
from trainers.loop import Outcome, Point, RunResult, StepRecord, run_seed, summarize, train
from trainers.tasks import TASKS, Task, build_task

__all__ = [
    "CLIPPERS", "TASKS", "ClipTelemetry", "Clipper", "ClippingConfig", "ConfigError",
    "ConvergenceConfig", "DivergenceConfig", "OptimizerConfig", "Outcome", "Point", "RunResult",
    "StepRecord", "Task", "TrainConfig", "Trigger", "arm_label", "build_clipper", "build_task", "run_seed",
    "summarize", "train",
]
