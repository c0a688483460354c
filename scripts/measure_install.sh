#!/usr/bin/env bash
# Measures the README's install (python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e .)
# on a fresh clone: wall time and the virtual environment's size, RUNS times (default 3), then the
# median of each with the date and the machine. What the README states about installing comes
# from here. Usage: bash scripts/measure_install.sh [RUNS]
set -euo pipefail
runs=${1:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
times=() sizes=()
for i in $(seq "$runs"); do
  work=$(mktemp -d)
  git clone -q "$repo" "$work/clipsweep"
  cd "$work/clipsweep"
  start=$(date +%s)
  python3 -m venv .venv && .venv/bin/pip install -q --no-cache-dir torch==2.13.0 -e . >/dev/null 2>&1
  times+=($(( $(date +%s) - start )))
  sizes+=($(du -sm .venv | cut -f1))
  cd / && rm -rf "$work"
  echo "run $i: ${times[-1]} s, ${sizes[-1]} MB" >&2
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "install: median of $runs runs $(median "${times[@]}") s, venv $(median "${sizes[@]}") MB" \
     "($(date -u +%Y-%m-%d), $(uname -m), $(nproc) cores, pip cache off)"
