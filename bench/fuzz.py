"""The API fuzzed for longer than CI does: tests/service/api/test_fuzz.py (schemathesis, every
operation, valid and invalid input, on SQLite and PostgreSQL) with many random examples per
operation instead of 25 fixed ones. Pass/fail, not a ratio: any 5xx or answer the OpenAPI document
does not declare fails it, with the request that reproduces it.

    python bench/fuzz.py                 # 1,000 examples per operation and mode
    python bench/fuzz.py --examples 200 -k sqlite
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=1000, help="examples per operation and mode")
    parser.add_argument("-k", default=None, help="pytest -k expression, e.g. sqlite or 'POST and sweeps'")
    args = parser.parse_args()
    command = [sys.executable, "-m", "pytest", "tests/service/api/test_fuzz.py", "-q", "-p", "no:cacheprovider",
               *(["-k", args.k] if args.k else [])]
    env = {**os.environ, "CLIPSWEEP_FUZZ_EXAMPLES": str(args.examples)}
    return subprocess.call(command, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
