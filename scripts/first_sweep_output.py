"""Run the README's first sweep (examples/first-sweep.yaml) as a user does and print what the
README shows of it: the summary table and headline that `clipsweep submit --wait` prints, then
how long that took. The README's block is this script's output, not typed by hand.

    .venv/bin/python scripts/first_sweep_output.py              # one run
    .venv/bin/python scripts/first_sweep_output.py --times 3    # the median of 3 runs' times

The server is the one at CLIPSWEEP_SERVER_URL if that is set; otherwise each run gets a fresh
`clipsweep serve` in a temporary data directory, so that its time includes starting Ray, as a
user's first sweep does. The time is the wall clock of `clipsweep submit ... --wait` alone, from
submitting to the summary printed (the server's own start-up is not counted).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "first-sweep.yaml"
# The tolerance the README's command uses: the CLI's default, 5% (80 seeds make it reachable).
TOLERANCE = 0.05
# The table's header line: the block the README shows starts there and runs to the headline.
TABLE_START = "lr "


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def fresh_server() -> Iterator[str]:
    """A `clipsweep serve` on a free loopback port with an empty data directory; its URL."""
    with tempfile.TemporaryDirectory(prefix="first-sweep-") as data_dir:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPSWEEP_")}
        env["CLIPSWEEP_DATA_DIR"] = data_dir
        log_path = Path(data_dir) / "serve.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
                                       stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, process, log_path)
            yield url
        finally:
            process.send_signal(signal.SIGTERM)  # the worker gives back its sweep and stops Ray
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"clipsweep serve exited early:\n{log_path.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/api/v1/healthz", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    sys.exit(f"clipsweep serve did not answer within {timeout:.0f} s:\n{log_path.read_text(errors='replace')}")


def submit(url: str, spec: Path, tolerance: float) -> tuple[str, float]:
    """`clipsweep submit SPEC --wait --tolerance T` against `url`: the README's block of its
    output (the summary table and the headline) and its wall time in seconds."""
    env = {**os.environ, "CLIPSWEEP_SERVER_URL": url}
    command = [sys.executable, "-m", "service.cli", "submit", str(spec), "--wait", "--tolerance", str(tolerance)]
    start = time.monotonic()
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"clipsweep submit failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return readme_block(done.stdout), seconds


def readme_block(stdout: str) -> str:
    """The part of `submit --wait`'s output the README shows: from the table's header to the end
    (the progress lines and the sweep's id and URL before it differ from run to run)."""
    lines = stdout.rstrip().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(TABLE_START)), None)
    if start is None:
        sys.exit(f"no summary table in clipsweep's output:\n{stdout}")
    return "\n".join(lines[start:])


def machine() -> str:
    """`uname -m` and the CPU cores this process may use (what `nproc` says)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 0
    return f"{platform.machine()}, {cores} CPU cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--times", type=int, default=1, metavar="N",
                        help="run the sweep N times and print the median time (default 1)")
    parser.add_argument("--spec", type=Path, default=SPEC, help=f"the sweep (default {SPEC.relative_to(ROOT)})")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE,
                        help=f"passed to clipsweep submit (default {TOLERANCE})")
    args = parser.parse_args()
    if args.times < 1:
        parser.error("--times must be at least 1")

    given = os.environ.get("CLIPSWEEP_SERVER_URL")
    blocks, seconds = [], []
    for i in range(args.times):
        if given:
            block, took = submit(given, args.spec, args.tolerance)
        else:
            with fresh_server() as url:
                block, took = submit(url, args.spec, args.tolerance)
        blocks.append(block)
        seconds.append(took)
        print(f"run {i + 1} of {args.times}: {took:.1f} s", file=sys.stderr, flush=True)

    print(blocks[0])
    print()
    where = f"the server at {given}" if given else "a fresh `clipsweep serve` each, Ray start-up included"
    today = datetime.date.today().isoformat()
    if args.times == 1:
        print(f"# wall time of `clipsweep submit --wait`: {seconds[0]:.0f} s ({where}); {today}, {machine()}")
    else:
        each = ", ".join(f"{s:.0f}" for s in seconds)
        print(f"# wall time of `clipsweep submit --wait`: median {statistics.median(seconds):.0f} s of "
              f"{args.times} runs ({each} s; {where}); {today}, {machine()}")
    differing = [i + 1 for i, block in enumerate(blocks) if block != blocks[0]]
    if differing:
        for i in differing:
            print(f"\n# run {i} printed a different block:\n{blocks[i - 1]}")
        sys.exit(1)


if __name__ == "__main__":
    main()
