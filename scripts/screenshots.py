"""Take the README's screenshots from a real service: a fresh `clipsweep serve` trains the first
sweep (examples/first-sweep.json) and headless Chromium photographs the sweep page while it
trains, then the sweeps list, the finished sweep page and a diverged run's page.

    .venv/bin/python scripts/screenshots.py     # writes docs/images/*.png (about a minute)

Needs Debian's chromium at /usr/bin/chromium (scripts/test.sh installs it) and Playwright (a dev
dependency). Nothing is drawn by hand: the pictures are what a user sees on this machine today.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from first_sweep_output import fresh_server  # scripts/ is on sys.path when this file runs
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "first-sweep.json"
IMAGES = ROOT / "docs" / "images"
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 900}
# The running sweep is photographed once this share of its steps is done.
RUNNING_AT = 0.3


def _api(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def _wait(url: str, sweep_id: int, done: Any, timeout: float = 600.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sweep = _api(url, f"/api/v1/sweeps/{sweep_id}")
        if done(sweep):
            return sweep
        time.sleep(0.5)
    sys.exit(f"sweep {sweep_id} did not get there within {timeout:.0f} s")


def _shoot(page: Page, address: str, name: str, height: int = VIEWPORT["height"]) -> None:
    page.goto(address)
    page.wait_for_selector("html[data-rendered]", timeout=60_000)  # every chart has drawn once
    page.screenshot(path=IMAGES / name, clip={"x": 0, "y": 0, "width": VIEWPORT["width"], "height": height})
    print(f"wrote {(IMAGES / name).relative_to(ROOT)}", flush=True)


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with fresh_server() as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport=VIEWPORT)
        sweep_id = _api(url, "/api/v1/sweeps", json.loads(SPEC.read_text()))["id"]

        def far_enough(sweep: dict[str, Any]) -> bool:
            p = sweep["progress"]
            running = sweep["status"] == "running"
            return sweep["finished"] or (running and p["steps_done"] >= RUNNING_AT * p["steps_total"])

        if _wait(url, sweep_id, far_enough)["finished"]:
            sys.exit("the sweep finished before it could be photographed running; lower RUNNING_AT")
        _shoot(page, f"{url}/sweeps/{sweep_id}", "sweep-running.png")
        finished = _wait(url, sweep_id, lambda sweep: sweep["finished"])
        if finished["status"] != "succeeded":
            sys.exit(f"the sweep ended {finished['status']}: {finished['error']}")
        _shoot(page, f"{url}/", "sweeps.png", height=280)  # one sweep: the rest of the page is empty
        _shoot(page, f"{url}/sweeps/{sweep_id}", "sweep-finished.png")
        runs = _api(url, f"/api/v1/sweeps/{sweep_id}/runs?outcome=diverged&clipping=none&limit=1")["items"]
        if not runs:
            sys.exit("no run of the first sweep diverged: nothing to show on a run page")
        _shoot(page, f"{url}/runs/{runs[0]['id']}", "run-diverged.png")
        browser.close()


if __name__ == "__main__":
    main()
