"""Orchestration that holds, on real processes: a worker or the whole service killed with SIGKILL
mid-sweep, a killed Ray actor, a killed Ray head, PostgreSQL stopped for a few seconds, two
workers on one queue. Whatever dies, the sweep finishes, every run has exactly one outcome, and runs finished before the
failure are not trained again (each run counts its trainings in `attempts`)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.db import schema
from service.db.models import Run, Sweep
from service.db.session import make_engine, make_session_factory, session_scope
from service.lifecycle.submit import Limits, create_sweep
from service.spec import SweepSpec
from service.worker.processes import stop_process
from tests.harness import ROOT, Server, free_port

pytestmark = pytest.mark.slow

# Chunks of 2 seeds on 1 CPU each: a dozen trials of about a second each, so a failure after 6 runs
# lands mid-sweep.
SPEC: dict[str, Any] = {
    "name": "orchestration",
    "task": {"name": "adding", "params": {"seq_len": 20, "hidden": 16}},
    "learning_rates": [0.05],
    "clipping": [{"method": "none"}, {"method": "norm", "max_norm": 1.0}],
    "seeds": 12,
    "budget": {"max_steps": 400, "batch_size": 16},
    "resources": {"max_seeds_per_trial": 2},
}
RUNS = 2 * 12  # SPEC's arms × seeds
FAST_FAILOVER = {"CLIPSWEEP_HEARTBEAT_SECONDS": "0.5", "CLIPSWEEP_HEARTBEAT_TIMEOUT_SECONDS": "4",
                 "CLIPSWEEP_WORKER_POLL_SECONDS": "0.3"}


def submit(factory: sessionmaker[Session], spec: dict[str, Any] = SPEC) -> int:
    with session_scope(factory) as session:
        return create_sweep(session, SweepSpec.model_validate(spec), limits=Limits(max_runs=10_000)).id


def runs_of(factory: sessionmaker[Session], sweep_id: int) -> list[Run]:
    with factory() as session:
        return list(session.scalars(select(Run).where(Run.sweep_id == sweep_id)))


def sweep_of(factory: sessionmaker[Session], sweep_id: int) -> Sweep:
    with factory() as session:
        return session.get(Sweep, sweep_id)


def wait_for(condition: Callable[[], bool], timeout: float, what: str, log: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001 (the database may be away on purpose)
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{what} within {timeout} s\n{log()[-6000:]}")


def done_count(factory: sessionmaker[Session], sweep_id: int) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Run).where(
            Run.sweep_id == sweep_id, Run.outcome.is_not(None)))


class WorkerProcess:
    """A real `clipsweep worker`."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.log_path = data_dir / f"worker-{time.monotonic_ns()}.log"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("CLIPSWEEP_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker"], cwd=ROOT,
            env={**inherited, "CLIPSWEEP_DATA_DIR": str(data_dir), **env},
            stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture
def sqlite_dir(tmp_path: Path) -> Iterator[tuple[Path, sessionmaker[Session]]]:
    """The embedded database of a data directory, upgraded, and a session factory on it."""
    url = f"sqlite:///{tmp_path / 'clipsweep.sqlite3'}"
    schema.upgrade(url)
    engine = make_engine(url)
    yield tmp_path, make_session_factory(engine)
    engine.dispose()


def assert_finished_once(factory: sessionmaker[Session], sweep_id: int, before: dict[int, int]) -> list[Run]:
    """The sweep succeeded; every run has one outcome; the runs finished before the failure (ids in
    `before`, with their attempts then) were not trained again."""
    sweep = sweep_of(factory, sweep_id)
    runs = runs_of(factory, sweep_id)
    assert sweep.status == "succeeded", sweep.error
    assert len(runs) == RUNS and all(r.outcome in ("converged", "diverged", "unconverged") for r in runs)
    assert len({(r.cell_index, r.seed) for r in runs}) == RUNS  # the unique key holds: one row, one outcome
    again = {r.id: r.attempts for r in runs if r.id in before and r.attempts != before[r.id]}
    assert not again, f"runs finished before the failure were trained again: {again}"
    return runs


def test_a_worker_killed_mid_sweep_is_replaced_and_nothing_is_trained_twice(sqlite_dir) -> None:
    data_dir, factory = sqlite_dir
    sweep_id = submit(factory)
    first = WorkerProcess(data_dir, FAST_FAILOVER)
    try:
        wait_for(lambda: done_count(factory, sweep_id) >= 6, 120, "6 runs done", first.log)
        first.kill()
    finally:
        first.stop()
    before = {r.id: r.attempts for r in runs_of(factory, sweep_id) if r.outcome is not None}
    assert 6 <= len(before) < RUNS, "the kill came too late to test a take-over"
    assert all(attempts == 1 for attempts in before.values())
    assert sweep_of(factory, sweep_id).status == "running"  # a killed worker cannot give it back

    second = WorkerProcess(data_dir, FAST_FAILOVER)
    try:
        wait_for(lambda: sweep_of(factory, sweep_id).status == "succeeded", 180, "sweep succeeded", second.log)
    finally:
        second.stop()
    runs = assert_finished_once(factory, sweep_id, before)
    assert sweep_of(factory, sweep_id).claims == 2
    # The runs in flight at the kill were trained by both workers.
    assert {r.attempts for r in runs if r.id not in before} <= {1, 2}
    assert any(r.attempts == 2 for r in runs), "no run was in flight at the kill?"


def test_a_second_worker_on_sqlite_is_refused_with_the_reason(sqlite_dir) -> None:
    data_dir, _ = sqlite_dir
    first = WorkerProcess(data_dir, {})
    try:
        wait_for(lambda: "polling for sweeps" in first.log(), 60, "first worker up", first.log)
        second = subprocess.run([sys.executable, "-m", "service.cli", "worker"], cwd=ROOT, capture_output=True,
                                text=True, timeout=60,
                                env={**os.environ, "CLIPSWEEP_DATA_DIR": str(data_dir)})
    finally:
        first.stop()
    assert second.returncode != 0
    assert f"pid {first.process.pid}" in second.stderr and "SQLite supports one worker" in second.stderr
    assert "PostgreSQL" in second.stderr


def test_serve_killed_mid_sweep_takes_its_worker_along_and_a_restart_finishes(tmp_path: Path) -> None:
    first = Server(tmp_path, env=FAST_FAILOVER)
    factory = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'clipsweep.sqlite3'}"))
    try:
        sweep_id = first.http.post("/api/v1/sweeps", json=SPEC).json()["id"]
        wait_for(lambda: done_count(factory, sweep_id) >= 6, 120, "6 runs done", first.log)
        worker_pids = subprocess.run(["pgrep", "-P", str(first.process.pid), "-f", "service.cli worker"],
                                     capture_output=True, text=True).stdout.split()
        assert len(worker_pids) == 1, first.log()[-3000:]
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
    finally:
        first.stop()
    # The orphaned worker notices, gives the sweep back and exits: it does not train on.
    wait_for(lambda: not Path(f"/proc/{worker_pids[0]}").exists(), 60, "orphaned worker gone", first.log)
    before = {r.id: r.attempts for r in runs_of(factory, sweep_id) if r.outcome is not None}
    assert 6 <= len(before) < RUNS, "the kill came too late to test a restart"

    second = Server(tmp_path, env=FAST_FAILOVER)
    try:
        second.wait_finished(sweep_id)
    finally:
        second.stop()
    assert_finished_once(factory, sweep_id, before)


def _parent(pid: int) -> int | None:
    try:  # /proc/PID/stat: "pid (name) state ppid ...", the name possibly holding spaces
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):  # it ended meanwhile
        return None


def ray_trial_pids(root: int) -> list[int]:
    """Processes of Ray actors running a trial (Tune wraps a function trainable in ImplicitFunc)
    under `root`: a worker whose local Ray it started, not another test's Ray on this machine."""
    out = subprocess.run(["pgrep", "-f", "^ray::ImplicitFunc"], capture_output=True, text=True).stdout.split()
    pids = []
    for pid in map(int, out):
        ancestor: int | None = pid
        while ancestor not in (None, 0, 1, root):
            ancestor = _parent(ancestor)
        if ancestor == root:
            pids.append(pid)
    return pids


def test_a_killed_ray_actor_is_retried_and_its_finished_runs_are_kept(sqlite_dir) -> None:
    data_dir, factory = sqlite_dir
    sweep_id = submit(factory)
    worker = WorkerProcess(data_dir, {})
    try:
        wait_for(lambda: done_count(factory, sweep_id) >= 4 and ray_trial_pids(worker.process.pid), 120,
                 "4 runs done and a trial running", worker.log)
        before = {r.id: r.attempts for r in runs_of(factory, sweep_id) if r.outcome is not None}
        for pid in ray_trial_pids(worker.process.pid):
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: sweep_of(factory, sweep_id).status == "succeeded", 240, "sweep succeeded", worker.log)
    finally:
        worker.stop()
    runs = assert_finished_once(factory, sweep_id, before)
    assert any(r.attempts == 2 for r in runs), worker.log()[-4000:]
    assert "will be retried" in worker.log()
    assert sweep_of(factory, sweep_id).claims == 1  # the worker lived: no re-claim, a retry round


POSTGRES_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None) \
    if Path("/usr/lib/postgresql").is_dir() else None


class PrivatePostgres:
    """A PostgreSQL server of this test's own (initdb in a temp directory, a free port, trust
    auth), run as the `postgres` user: stopping it stops no other test's database."""

    def __init__(self) -> None:
        assert POSTGRES_BIN is not None
        self.dir = Path(tempfile.mkdtemp(prefix="cspg-", dir="/tmp"))
        shutil.chown(self.dir, "postgres")
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres("initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def _as_postgres(self, tool: str, *args: str, check: bool = True) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(POSTGRES_BIN / tool), *args], check=check,
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def start(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w", "start", "-o",
                          f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off")

    def stop(self, mode: str = "fast", check: bool = True) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.dir / "data"), "-m", mode, "-w", "stop", check=check)

    def remove(self) -> None:
        self.stop("immediate", check=False)  # it may be stopped already, or never have started
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0 or POSTGRES_BIN is None or shutil.which("runuser") is None,
                    reason="a PostgreSQL server of the test's own needs root (to run it as postgres) and its binaries")
def test_postgres_stopped_for_seconds_mid_sweep_loses_nothing(tmp_path: Path) -> None:
    server = PrivatePostgres()
    engine = None
    try:
        schema.upgrade(server.url)
        engine = make_engine(server.url)
        factory = make_session_factory(engine)
        sweep_id = submit(factory)
        worker = WorkerProcess(tmp_path, {"CLIPSWEEP_DATABASE_URL": server.url, "CLIPSWEEP_HEARTBEAT_SECONDS": "0.5"})
        try:
            wait_for(lambda: done_count(factory, sweep_id) >= 4, 120, "4 runs done", worker.log)
            server.stop()
            try:
                time.sleep(6)  # trials keep reporting into the worker's buffer meanwhile
            finally:
                server.start()
            wait_for(lambda: sweep_of(factory, sweep_id).status == "succeeded", 240, "sweep succeeded", worker.log)
        finally:
            worker.stop()
        runs = assert_finished_once(factory, sweep_id, {})
        assert all(r.attempts == 1 for r in runs)  # nothing was retrained: the buffer held it all
        assert "database is unavailable" in worker.log() or "failed; will retry" in worker.log()
    finally:
        if engine is not None:
            engine.dispose()
        server.remove()


def test_two_workers_on_postgres_claim_each_sweep_once(pg_url: str, tmp_path: Path) -> None:
    schema.upgrade(pg_url)
    engine = make_engine(pg_url)
    factory = make_session_factory(engine)
    small = {**SPEC, "seeds": 4, "clipping": [{"method": "norm", "max_norm": 1.0}], "budget": {"max_steps": 200}}
    sweep_ids = [submit(factory, {**small, "name": f"queued-{i}"}) for i in range(4)]
    env = {"CLIPSWEEP_DATABASE_URL": pg_url, "CLIPSWEEP_WORKER_POLL_SECONDS": "0.2"}
    workers = [WorkerProcess(tmp_path, env) for _ in range(2)]
    try:
        wait_for(lambda: all(sweep_of(factory, i).status == "succeeded" for i in sweep_ids), 300,
                 "every sweep succeeded", lambda: "\n".join(w.log() for w in workers))
    finally:
        for w in workers:
            w.stop()
        engine.dispose()
    sweeps = [sweep_of(factory, i) for i in sweep_ids]
    assert [s.claims for s in sweeps] == [1] * 4
    assert all(r.attempts == 1 for i in sweep_ids for r in runs_of(factory, i))
    claimed_by = {s.worker_id.rsplit(":", 1)[1] for s in sweeps}
    assert claimed_by <= {str(w.process.pid) for w in workers}


class RayCluster:
    """A real Ray cluster on this machine: `ray start --head` and `nodes - 1` more `ray start
    --address=…`, each a blocking process with 1 CPU of its own, in a private temp directory (so no
    other test's local Ray can join it). Ray's token authentication is on, as `ray start` does by
    default, with a token of this cluster's own: every process of the cluster and its drivers gets
    it in `RAY_AUTH_TOKEN` (`driver_env`), so nothing depends on a `~/.ray/auth_token` file."""

    def __init__(self, tmp: Path, nodes: int = 2) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.driver_env = {"CLIPSWEEP_RAY_ADDRESS": self.address, "RAY_AUTH_MODE": "token",
                           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.env = {**os.environ, **self.driver_env}
        self.ray = str(Path(sys.executable).parent / "ray")
        self.common = ["--num-cpus=1", "--disable-usage-stats", "--block"]
        self.temp_dir = Path(tempfile.mkdtemp(prefix="csray-", dir="/tmp"))  # short: Ray's socket paths
        self.tmp = tmp
        self.logs: list[Path] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self.start_head()
        for i in range(1, nodes):
            self.processes.append(self._start("node", [f"--address={self.address}"]))
            self._wait_for_nodes(i + 1)

    def _start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = self.tmp / f"ray-{name}-{len(self.logs)}.log"
        self.logs.append(log)
        return subprocess.Popen([self.ray, "start", *args, *self.common], env=self.env, stdout=log.open("wb"),
                                stderr=subprocess.STDOUT)

    def start_head(self) -> None:
        """Start the head (again, after kill_head: same port, same temp directory)."""
        self.processes.insert(0, self._start("head", [
            "--head", f"--port={self.port}", f"--temp-dir={self.temp_dir}", "--include-dashboard=false"]))
        self._wait_for_nodes(1)

    def kill_head(self) -> None:
        """SIGKILL the head node whole: `ray start`, the GCS, the raylet and its worker processes
        (every process started with this cluster's temp directory on its command line, which on
        a cluster of several nodes on this machine may take the others too: use it with nodes=1)."""
        subprocess.run(["pkill", "-9", "-f", str(self.temp_dir)], check=False)
        head = self.processes.pop(0)
        head.wait(30)

    def _wait_for_nodes(self, n: int) -> None:
        script = ("import ray; ray.init(address=%r, logging_level='ERROR'); "
                  "print(sum(1 for node in ray.nodes() if node['Alive']))" % self.address)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            out = subprocess.run([sys.executable, "-c", script], env=self.env, capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip() == str(n):
                return
            time.sleep(1)
        raise TimeoutError(f"Ray cluster did not reach {n} node(s):\n"
                           + "\n".join(p.read_text(errors="replace")[-3000:] for p in self.logs))

    def stop(self) -> None:
        for process in reversed(self.processes):  # SIGTERM: `ray start --block` stops its node
            process.terminate()
        for process in self.processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        subprocess.run(["pkill", "-9", "-f", str(self.temp_dir)], check=False)  # anything a kill left behind
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def test_a_sweep_on_a_two_node_ray_cluster_runs_on_both_and_records_where(sqlite_dir) -> None:
    data_dir, factory = sqlite_dir
    cluster = RayCluster(data_dir)
    try:
        sweep_id = submit(factory, {**SPEC, "budget": {"max_steps": 300, "batch_size": 16},
                                    "resources": {"max_seeds_per_trial": 2, "cpus_per_trial": 1}})
        worker = WorkerProcess(data_dir, cluster.driver_env)
        try:
            wait_for(lambda: sweep_of(factory, sweep_id).status == "succeeded", 240, "sweep succeeded", worker.log)
        finally:
            worker.stop()
    finally:
        cluster.stop()
    runs = assert_finished_once(factory, sweep_id, {})
    nodes = {r.node for r in runs}
    assert len(nodes) == 2, nodes  # one trial at a time per 1-CPU node: both nodes trained
    assert all(r.device == "cpu" for r in runs)
    # Tune's files went under the data directory, never the source of truth but kept there.
    assert (data_dir / "ray_results" / f"sweep-{sweep_id}").is_dir()


def test_a_worker_runs_up_to_its_cap_of_sweeps_at_once_and_the_rest_wait_in_order(sqlite_dir) -> None:
    data_dir, factory = sqlite_dir
    spec = {**SPEC, "seeds": 4, "budget": {"max_steps": 300, "batch_size": 16},
            "resources": {"max_seeds_per_trial": 2}}
    sweep_ids = [submit(factory, {**spec, "name": f"capped-{i}"}) for i in range(3)]
    worker = WorkerProcess(data_dir, {"CLIPSWEEP_MAX_SWEEPS_PER_WORKER": "2", "CLIPSWEEP_WORKER_POLL_SECONDS": "0.2"})
    most_running = 0
    try:
        deadline = time.monotonic() + 300
        while not all(sweep_of(factory, i).status == "succeeded" for i in sweep_ids):
            assert time.monotonic() < deadline, worker.log()[-6000:]
            statuses = [sweep_of(factory, i).status for i in sweep_ids]
            most_running = max(most_running, statuses.count("running"))
            assert statuses.count("running") <= 2, statuses
            time.sleep(0.1)
    finally:
        worker.stop()
    sweeps = [sweep_of(factory, i) for i in sweep_ids]
    assert most_running == 2, "the worker never ran two sweeps at once"
    assert [s.claims for s in sweeps] == [1, 1, 1]
    # the third waited for a free slot: it started after one of the first two had finished
    assert sweeps[2].started_at >= min(sweeps[0].finished_at, sweeps[1].finished_at)
    assert all(r.attempts == 1 for i in sweep_ids for r in runs_of(factory, i))


def test_a_ray_head_killed_mid_sweep_and_restarted_loses_nothing(tmp_path: Path) -> None:
    """The Ray head dies whole (SIGKILL) mid-sweep and comes back on the same address. Whatever Ray
    does to the worker's driver meanwhile (Ray 2.60 aborts the process, or, when the new head is
    up first, answers WrongClusterID, which gives the sweep back to the queue), serve's supervisor
    keeps a worker running, and the sweep finishes with the runs stored before the kill kept as
    they were."""
    cluster = RayCluster(tmp_path, nodes=1)
    try:
        server = Server(tmp_path, env={**FAST_FAILOVER, **cluster.driver_env,
                                       "CLIPSWEEP_RESOURCE_WAIT_SECONDS": "1"})
        factory = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'clipsweep.sqlite3'}"))
        try:
            sweep_id = server.http.post("/api/v1/sweeps", json=SPEC).json()["id"]
            seen: list[Run] = []

            def training() -> bool:  # 6 runs done and a trial in flight (its attempt is stored at its start)
                seen[:] = runs_of(factory, sweep_id)
                return sum(r.outcome is not None for r in seen) >= 6 and any(r.attempts and r.outcome is None
                                                                              for r in seen)

            wait_for(training, 120, "6 runs done and a trial in flight", server.log)
            cluster.kill_head()
            in_flight = {r.id for r in seen if r.attempts and r.outcome is None}
            before = {r.id: r.attempts for r in runs_of(factory, sweep_id) if r.outcome is not None}
            assert 6 <= len(before) < RUNS, "the kill came too late to test a recovery"
            time.sleep(3)  # the head stays away a while: the worker's driver notices
            cluster.start_head()
            server.wait_finished(sweep_id, timeout=240)
        finally:
            server.stop()
    finally:
        cluster.stop()
    runs = assert_finished_once(factory, sweep_id, before)
    # The trial in flight at the kill either finished (Ray lets a running actor report to its
    # driver for a while) or was trained again: once or twice, never lost.
    assert in_flight and all(r.attempts in (1, 2) for r in runs if r.id in in_flight), in_flight
