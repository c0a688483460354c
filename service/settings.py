"""One settings object for the whole service, read from the environment (prefix CLIPSWEEP_).

Trainers never see it: the worker resolves what they need into frozen configs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.errors import SettingsError


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "clipsweep"


class Settings(BaseSettings):
    """Every setting of the service, from CLIPSWEEP_* variables; tests and tools pass values directly."""

    model_config = SettingsConfigDict(env_prefix="CLIPSWEEP_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir,
                           description="Where the embedded SQLite database and Ray Tune's files live.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset means the embedded SQLite file in data_dir.")
    ray_address: str | None = Field(
        default=None, description="Address of an existing Ray cluster; unset starts a local Ray.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    auth: Literal["token", "off"] = Field(
        default="off", description="`token`: every request but health needs an API token (clipsweep token create). "
                                   "`off` is allowed only while the API listens on loopback.")
    allowed_hosts: str = Field(
        default="localhost,127.0.0.1,::1",
        description="Host header values the API answers, comma-separated (`*.example.com` and `*` allowed): a "
                    "request for any other host is refused, so DNS rebinding cannot reach a loopback service.")
    session_days: float = Field(default=7.0, gt=0, le=366, description="How long a dashboard sign-in lasts.")
    submit_rate_per_minute: int = Field(default=60, ge=1, description="Sweeps one token may submit a minute.")
    max_queued_sweeps_per_token: int = Field(default=100, ge=1, description="Sweeps one token may have queued.")
    server_url: str | None = Field(
        default=None, description="Where the CLI finds the API; unset means http://{host}:{port}.")
    max_runs_per_sweep: int = Field(default=100_000, ge=1, le=2**31 - 1,
                                    description="Largest grid (lrs × arms × seeds) a sweep may have.")
    max_sweep_steps: int = Field(default=10**9, ge=1, description="Most training steps a sweep may ask for in all "
                                                                  "(runs × max_steps).")
    max_trial_memory_mb: float = Field(
        default=4096.0, gt=0, description="Most memory one trial may need by its task's and clipper's estimate "
                                          "(trainers/budget.py); raise it for large GPU chunks.")
    max_body_bytes: int = Field(default=2**20, ge=1024, description="Largest request body the API reads; "
                                                                    "larger is a 413.")
    worker_poll_seconds: float = Field(
        default=0.25, gt=0, description="How often an idle worker looks for a queued sweep: one indexed SELECT, so "
                                        "a sweep starts within a quarter of a second of its POST.")
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    heartbeat_timeout_seconds: float = Field(
        default=120.0, gt=0, description="A running sweep whose heartbeat is older is claimed again.")
    results_flush_seconds: float = Field(
        default=0.5, gt=0, description="Longest a reported result waits before it is written.")
    max_sweeps_per_worker: int = Field(
        default=1, ge=1, description="Sweeps one worker runs at once (each in a driver process of its own above "
                                     "one); the rest wait queued, in order.")
    control_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often a running sweep checks whether it was cancelled.")
    max_infra_retries: int = Field(
        default=2, ge=0, description="Times a run is trained again after lost infrastructure (a killed "
                                     "worker or Ray actor) before it ends `failed`. Divergence is never retried.")
    resource_wait_seconds: float = Field(
        default=30.0, gt=0, description="How long a sweep the cluster cannot place waits before it is tried again.")
    keep_freed_memory: bool = Field(
        default=True, description="Tell glibc to reuse freed memory in training processes (trainers/allocator.py); "
                                  "0 leaves the allocator alone.")
    webhook_allow_private: bool = Field(
        default=False, description="Let webhooks reach loopback and private addresses (a self-hosted chat server, "
                                   "tests); link-local ones, such as the cloud metadata address, never.")
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60, description="One webhook attempt, all hops.")
    webhook_retry_seconds: str = Field(
        default="5,60,300,1800,7200,28800,86400", pattern=r"^\s*\d+(\.\d+)?(\s*,\s*\d+(\.\d+)?){0,19}\s*$",
        description="Waits before each retry of a failed webhook delivery, comma-separated seconds (±10% jitter); "
                    "after the last the delivery is given up.")
    tune_storage: str | None = Field(
        default=None, description="Where Ray Tune keeps its experiment files (a path or a storage URI such as "
                                  "s3://bucket/prefix); unset means data_dir/ray_results. Never read back.")

    @property
    def is_embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'clipsweep.sqlite3'}"

    @property
    def resolved_tune_storage(self) -> str:
        return self.tune_storage or str(self.data_dir / "ray_results")

    @property
    def allowed_host_list(self) -> list[str]:
        return [h.strip() for h in self.allowed_hosts.split(",") if h.strip()]

    @property
    def webhook_retry_schedule(self) -> tuple[float, ...]:
        return tuple(float(part) for part in self.webhook_retry_seconds.split(","))

    @property
    def resolved_server_url(self) -> str:
        return (self.server_url or f"http://{self.host}:{self.port}").rstrip("/")


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = [f"CLIPSWEEP_{'_'.join(map(str, e['loc'])).upper()}={e.get('input')!r}: {e['msg']}"
                    for e in exc.errors()]
        raise SettingsError("bad settings in the environment:\n  " + "\n  ".join(problems)) from None
