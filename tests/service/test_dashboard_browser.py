"""The dashboard in a real headless Chromium (Playwright), against a real `clipsweep serve` that has
trained a small real sweep: the list shows it finished, the sweep page shows one row per cell with
the counts and intervals the API answers, and nothing errors or loads from outside loopback.

Full-page screenshots of both pages are kept under test-artifacts/ at the repository root."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

pytestmark = pytest.mark.slow

sync_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, expect  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    "--disable-default-apps", "--disable-extensions",
]
NAME = "dashboard-browser-test"
SPEC: dict[str, Any] = {
    "name": NAME,
    "task": {"name": "adding", "params": {"seq_len": 50, "hidden": 16}},
    "learning_rates": [0.1, 0.5],
    "clipping": [{"method": "none"}, {"method": "norm", "max_norm": 1.0}],
    "seeds": 4,
    "budget": {"max_steps": 40, "batch_size": 16},
    "resources": {"max_seeds_per_trial": 4},
}
# A rate with its Wilson interval, as dashboard.js renders it: "75% [30%–95%]".
RATE_WITH_CI = re.compile(r"^(\d{1,3})% \[(\d{1,3})%–(\d{1,3})%\]$")


@pytest.fixture(scope="module")
def sweep(server: Any) -> dict[str, Any]:
    """The finished sweep as the API answers it, with its summary under "summary"."""
    response = server.http.post("/api/v1/sweeps", json=SPEC)
    assert response.status_code == 201, response.text
    sweep_id = response.json()["id"]
    # The API answers 201 before its request session commits (service/api/deps.py: a yield
    # dependency's exit runs after the response is sent), so the sweep may not be readable yet.
    deadline = time.monotonic() + 10
    while server.http.get(f"/api/v1/sweeps/{sweep_id}").status_code == 404 and time.monotonic() < deadline:
        time.sleep(0.05)
    finished = server.wait_finished(sweep_id)
    assert finished["status"] == "succeeded", (finished, server.log()[-5000:])
    summary = server.http.get(f"/api/v1/sweeps/{sweep_id}/summary").json()
    return {**finished, "summary": summary}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Watched:
    """A page with everything that went wrong on it recorded: console errors, uncaught exceptions,
    failed requests, error answers, and every URL it asked for."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.requests: list[str] = []
        self.problems: list[str] = []
        page.on("request", self._on_request)
        page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url} ({r.failure})"))
        page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"))
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))

    def _on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text} at {message.location}")


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US",
                                  timezone_id="UTC")
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield Watched(page)
    context.close()


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def lr_text(lr: float) -> str:
    """How JavaScript prints a float: 0.5 -> "0.5", 1.0 -> "1"."""
    return f"{lr:g}" if lr != int(lr) else str(int(lr))


def test_dashboard_shows_the_finished_sweep(server: Any, sweep: dict[str, Any], watched: Watched) -> None:
    page = watched.page
    sweep_id = sweep["id"]
    cells = sweep["summary"]["cells"]
    assert len(cells) == 4
    assert (sweep["progress"]["done"], sweep["progress"]["runs_total"]) == (16, 16)

    # The list: the sweep with its name, final status and full progress.
    response = page.goto(server.url + "/")
    assert response is not None and response.status == 200
    row = page.locator(f'#sweeps tr[data-sweep="{sweep_id}"]')
    expect(row).to_have_count(1)
    cols = row.locator("td")
    expect(cols.nth(0)).to_have_text(str(sweep_id))
    expect(cols.nth(1)).to_have_text(NAME)
    expect(cols.nth(2)).to_have_text("adding")
    expect(cols.nth(3)).to_have_text("succeeded")
    expect(cols.nth(4)).to_have_text("16/16")
    expect(cols.nth(5)).to_have_text(str(sweep["progress"]["by_outcome"]["diverged"]))
    fill = cols.nth(4).locator(".fill")
    expect(fill).to_have_attribute("style", re.compile(r"width:\s*100%"))
    page.wait_for_load_state("networkidle")
    screenshot(page, "dashboard-sweeps.png")

    # Click through to the sweep's page.
    with page.expect_navigation(url=f"{server.url}/sweeps/{sweep_id}"):
        cols.nth(1).get_by_role("link", name=NAME).click()
    expect(page).to_have_title(f"{NAME} · clipsweep")
    expect(page.locator("h1")).to_have_text(f"Sweep {sweep_id}: {NAME}")
    expect(page.locator("#status")).to_contain_text("succeeded · 16 of 16 runs done")
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#bar-fill")).to_have_attribute("style", re.compile(r"width:\s*100%"))

    # One row per cell, each showing what the API's summary answers.
    rows = page.locator("#cells tbody tr[data-cell]")
    expect(rows).to_have_count(len(cells))
    expect(page.locator("#cells tbody tr")).to_have_count(len(cells))
    for cell in cells:
        row_cols = page.locator(f'#cells tr[data-cell="{cell["cell_index"]}"] td')
        expect(row_cols).to_have_count(7)
        expect(row_cols.nth(0)).to_have_text(lr_text(cell["lr"]))
        expect(row_cols.nth(1)).to_have_text(cell["clipping"])
        expect(row_cols.nth(2)).to_have_text(f'{cell["finished"]}/{cell["runs"]}')
        expect(row_cols.nth(3)).to_have_text(str(cell["diverged"]))
        expect(row_cols.nth(5)).to_have_text(str(cell["converged"]))
        rate = row_cols.nth(4).inner_text().strip()
        match = RATE_WITH_CI.match(rate)
        assert match, f"cell {cell['cell_index']}: rate {rate!r} has no [lo–hi] interval"
        shown, lo, hi = (int(g) for g in match.groups())
        assert shown == round(100 * cell["divergence_rate"])
        assert (lo, hi) == tuple(round(100 * x) for x in cell["divergence_ci95"])
        assert lo <= shown <= hi

    # The cell the experiment is about: lr 0.5 without clipping.
    [unclipped] = [c for c in cells if c["lr"] == 0.5 and c["clipping"] == "none"]
    row_cols = page.locator(f'#cells tr[data-cell="{unclipped["cell_index"]}"] td')
    expect(row_cols.nth(0)).to_have_text("0.5")
    expect(row_cols.nth(1)).to_have_text("none")
    expect(row_cols.nth(3)).to_have_text(str(unclipped["diverged"]))

    page.wait_for_load_state("networkidle")
    screenshot(page, "dashboard-sweep.png")

    assert watched.problems == []
    outside = [url for url in watched.requests if not url.startswith(server.url + "/")]
    assert outside == [], f"the dashboard loaded from outside the server: {outside}"
    assert any(url.endswith("/static/dashboard.js") for url in watched.requests)
    assert any(url.endswith("/static/style.css") for url in watched.requests)


def test_unknown_sweep_page_is_404(server: Any, watched: Watched) -> None:
    assert server.http.get("/sweeps/999999").status_code == 404
    response = watched.page.goto(server.url + "/sweeps/999999")
    assert response is not None and response.status == 404
