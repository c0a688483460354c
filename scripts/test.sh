#!/usr/bin/env bash
# Install everything the test suite needs into .venv, then run it. Extra arguments go to pytest.
# What it needs from the machine: python3 (3.10+), PostgreSQL on 127.0.0.1:5432 (user postgres,
# trust auth, database `test`), and Debian's chromium for the dashboard's browser test.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
# The CPU build of torch first: an unpinned torch would pull several GB of CUDA packages.
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e '.[dev]'

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if [ ! -x /usr/bin/chromium ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
fi

# Two pytest workers: many real-process tests mostly wait (a server starting, a heartbeat lapsing,
# a minute turning), so the other worker computes meanwhile; more would have each test's own
# local Ray fight for two cores. worksteal: a worker that runs out takes the other's last tests.
# `-n 0` (after these) runs the suite in this one process.
exec .venv/bin/python -m pytest -n 2 --dist worksteal "$@"
