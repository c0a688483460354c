"""The dashboard in a real headless Chromium (Playwright), against a real `clipsweep serve` that has
trained a small real sweep: the list shows it finished, the sweep page shows one row per cell with
the counts and intervals the API answers, and nothing errors or loads from outside loopback.

Regression alerts are seeded without training, on the app in this process (no worker, no scheduler):
a schedule's sweeps with stored results, compared in order as the scheduler's notifier would.

Full-page screenshots of both pages are kept under test-artifacts/ at the repository root."""

from __future__ import annotations

import itertools
import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import torch
import uvicorn
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response, expect, sync_playwright
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service.analysis import numbers
from service.api.app import create_app
from service.db.models import Alert, Run, Sweep
from service.db.session import make_engine, make_session_factory, session_scope
from service.lifecycle.alerts import evaluate
from service.lifecycle.queue import claim_next_sweep, record_live_steps
from service.settings import Settings
from service.states import AlertState, RunOutcome, SweepStatus
from tests.factories import make_sweep, report, store
from tests.harness import CHROMIUM, CHROMIUM_ARGS, Server, free_port
from tests.service.worker.test_execute import ScriptedRunner, execute
from tests.service.worker.test_search import SEARCH, SEEDS, near_the_tolerance

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
NAME = "dashboard-browser-test"
SPEC: dict[str, Any] = {
    "name": NAME,
    "task": {"name": "adding", "params": {"seq_len": 50, "hidden": 50}},
    "learning_rates": [0.1, 0.5],
    "clipping": [{"method": "none"}, {"method": "norm", "max_norm": 1.0}],
    "seeds": 4,
    "budget": {"max_steps": 40, "batch_size": 16},
    "resources": {"max_seeds_per_trial": 4},
}
# Not UTC, and not a whole number of hours off it: times must be shown converted from UTC.
TIMEZONE = "Asia/Kolkata"
# A rate with its Wilson interval, as dashboard.js renders it: "75% [30%–95%]".
RATE_WITH_CI = re.compile(r"^(\d{1,3})% \[(\d{1,3})%–(\d{1,3})%\]$")


@pytest.fixture(scope="module")
def sweep(server: Server) -> dict[str, Any]:
    """The finished sweep as the API answers it, with its summary under "summary"."""
    response = server.http.post("/api/v1/sweeps", json=SPEC)
    assert response.status_code == 201, response.text
    sweep_id = response.json()["id"]
    # Created means committed: readable at once (and the dashboard link it answers is live).
    assert server.http.get(f"/api/v1/sweeps/{sweep_id}").status_code == 200
    assert server.http.get(response.json()["url"]).status_code == 200
    finished = server.wait_finished(sweep_id)
    assert finished["status"] == "succeeded", (finished, server.log()[-5000:])
    summary = server.http.get(f"/api/v1/sweeps/{sweep_id}/summary").json()
    return {**finished, "summary": summary}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as pw:
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
        page.on("requestfailed", self._on_request_failed)
        page.on("response", self._on_response)
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))

    def _on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _on_request_failed(self, request: Request) -> None:
        # net::ERR_ABORTED is the browser cancelling a request itself, as Chromium does to the favicon
        # fetch still in flight when the test navigates to the next page. It says nothing about the
        # server; a request the server failed shows up as an error status or a connection error.
        if request.failure != "net::ERR_ABORTED":
            self.problems.append(f"request failed: {request.url} ({request.failure})")

    def _on_response(self, response: Response) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text} at {message.location}")


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US",
                                  timezone_id=TIMEZONE)
    # Generous: the machine has 2 cores, and the tests around this one may be training.
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield Watched(page)
    context.close()


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def lr_text(lr: float) -> str:
    """How JavaScript prints a plain float: 0.5 -> "0.5", 1.0 -> "1" (not exponents: 1e-05)."""
    return repr(lr).removesuffix(".0")


def js_pct(x: float) -> int:
    """dashboard.js's `(100 * x).toFixed(0)`, which rounds halves up (Python's round does not)."""
    return math.floor(100 * x + 0.5)


def local_time(iso: str) -> re.Pattern[str]:
    """An API time (UTC, with or without an offset) as en-US `toLocaleString` shows it in TIMEZONE."""
    t = datetime.fromisoformat(iso)
    t = (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).astimezone(ZoneInfo(TIMEZONE))
    hour = t.hour % 12 or 12
    return re.compile(rf"^{t.month}/{t.day}/{t.year},\s{hour}:{t:%M:%S}\s{t:%p}$")


def test_dashboard_shows_the_finished_sweep(server: Server, sweep: dict[str, Any],
                                           watched: Watched) -> None:
    page = watched.page
    sweep_id = sweep["id"]
    cells = sweep["summary"]["cells"]
    assert len(cells) == 4
    assert (sweep["progress"]["done"], sweep["progress"]["runs_total"]) == (16, 16)

    # The list: the sweep with its name, final status, full progress and creation time.
    response = page.goto(server.url + "/")
    assert response is not None and response.status == 200
    expect(page).to_have_title("Sweeps · clipsweep")
    row = page.locator(f'#sweeps tr[data-sweep="{sweep_id}"]')
    expect(row).to_have_count(1)
    cols = row.locator("td")
    expect(cols).to_have_count(page.locator("#sweeps thead th").count())
    expect(cols.nth(0)).to_have_text(str(sweep_id))
    expect(cols.nth(1)).to_have_text(NAME)
    expect(cols.nth(2)).to_have_text("adding")
    expect(cols.nth(3)).to_have_text("succeeded")
    expect(cols.nth(3)).to_have_class("status-succeeded")
    expect(cols.nth(4)).to_have_text("16/16")
    expect(cols.nth(4).locator(".fill")).to_have_attribute("style", re.compile(r"width:\s*100%"))
    expect(cols.nth(5)).to_have_text(str(sweep["progress"]["by_outcome"]["diverged"]))
    expect(cols.nth(6)).to_have_text(local_time(sweep["created_at"]))
    expect(cols.nth(7)).to_have_text(re.compile(r"^\d+(\.\d)? (s|min|h)$"))
    expect(page.locator("#load-error")).to_be_hidden()
    page.wait_for_load_state("networkidle")
    screenshot(page, "dashboard-sweeps.png")

    # The status filter lists only sweeps with that status, and says so when there are none.
    page.select_option("#status-filter", "failed")
    expect(row).to_have_count(0)
    statuses = page.locator("#sweeps tbody td:nth-child(4)").all_inner_texts()
    assert all(s == "failed" for s in statuses), statuses
    assert page.url.endswith("?status=failed")
    page.select_option("#status-filter", "succeeded")
    expect(row).to_have_count(1)

    # Click through to the sweep's page.
    with page.expect_navigation(url=f"{server.url}/sweeps/{sweep_id}"):
        cols.nth(1).get_by_role("link", name=NAME).click()
    expect(page).to_have_title(f"{NAME} · clipsweep")
    expect(page.locator("h1")).to_have_text(f"Sweep {sweep_id}: {NAME}")
    check_export_buttons(page, server, sweep_id)
    expect(page.locator("#status")).to_contain_text("succeeded · 16 of 16 runs done")
    expect(page.locator("#status .status-succeeded")).to_have_text("succeeded")
    expect(page.locator("#bar-fill")).to_have_attribute("style", re.compile(r"width:\s*100%"))
    expect(page.locator("#about")).to_contain_text("adding(seq_len=50, hidden=50")
    expect(page.locator("#about")).to_contain_text("4 seeds per cell · 40 steps × batch 16")
    expect(page.locator("#about")).to_contain_text(re.compile(r"took [\d.]+ (s|min|h)"))
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#load-error")).to_be_hidden()

    # One row per cell, in grid order, each showing what the API's summary answers.
    rows = page.locator("#cells tbody tr")
    expect(rows).to_have_count(len(cells))
    expect(page.locator("#cells tbody tr[data-cell]")).to_have_count(len(cells))
    assert [int(i) for i in rows.evaluate_all("rs => rs.map(r => r.dataset.cell)")] == [
        c["cell_index"] for c in cells]
    for cell in cells:
        row_cols = page.locator(f'#cells tr[data-cell="{cell["cell_index"]}"] td')
        expect(row_cols).to_have_count(page.locator("#cells thead th").count())
        expect(row_cols.nth(0)).to_have_text(lr_text(cell["lr"]))
        expect(row_cols.nth(1)).to_have_text(cell["clipping"])
        expect(row_cols.nth(2)).to_have_text(f'{cell["finished"]}/{cell["runs"]}')
        expect(row_cols.nth(3)).to_have_text(str(cell["diverged"]))
        expect(row_cols.nth(5)).to_have_text(str(cell["converged"]))
        rate = row_cols.nth(4).inner_text().strip()
        match = RATE_WITH_CI.match(rate)
        assert match, f"cell {cell['cell_index']}: rate {rate!r} has no [lo–hi] interval"
        shown, lo, hi = (int(g) for g in match.groups())
        assert shown == js_pct(cell["divergence_rate"])
        assert [lo, hi] == [js_pct(x) for x in cell["divergence_ci95"]]
        assert lo <= shown <= hi
        shade = "rate-high" if cell["divergence_rate"] >= 0.5 else (
            "rate-mid" if cell["divergence_rate"] > 0 else "rate-low")
        expect(row_cols.nth(4)).to_have_class(re.compile(rf"\b{shade}\b"))

    # The cell the experiment is about: lr 0.5 without clipping.
    [unclipped] = [c for c in cells if c["lr"] == 0.5 and c["clipping"] == "none"]
    row_cols = page.locator(f'#cells tr[data-cell="{unclipped["cell_index"]}"] td')
    expect(row_cols.nth(0)).to_have_text("0.5")
    expect(row_cols.nth(1)).to_have_text("none")
    expect(row_cols.nth(3)).to_have_text(str(unclipped["diverged"]))

    check_charts(page, sweep)
    page.wait_for_load_state("networkidle")
    screenshot(page, "dashboard-sweep.png")
    check_run_page(page, sweep)
    check_tolerance_link(page, server, sweep_id)

    assert watched.problems == []
    outside = [url for url in watched.requests if not url.startswith(server.url + "/")]
    assert outside == [], f"the dashboard loaded from outside the server: {outside}"
    for path in ("/static/dashboard.js", "/static/style.css", "/vendor/plotly.min.js",
                 f"/api/v1/sweeps/{sweep_id}/summary?tolerance=0.05"):
        assert server.url + path in watched.requests


def check_export_buttons(page: Page, server: Server, sweep_id: int) -> None:
    """The export links are buttons beside the page title, on its line, not small print at the bottom."""
    buttons = page.locator(".title-row .exports a.button")
    expect(buttons).to_have_text(["runs CSV", "runs Parquet", "points CSV", "points Parquet"])
    export = f"/api/v1/sweeps/{sweep_id}/export"
    assert buttons.evaluate_all("as => as.map(a => a.getAttribute('href'))") == [
        f"{export}?format=csv", f"{export}?format=parquet", f"{export}?format=csv&include=points",
        f"{export}?format=parquet&include=points"]
    assert page.locator("#export-csv").get_attribute("href") == f"{export}?format=csv"
    title = page.locator("h1").bounding_box()
    assert title is not None
    for i in range(buttons.count()):
        box = buttons.nth(i).bounding_box()
        assert box is not None
        middle = box["y"] + box["height"] / 2
        assert title["y"] <= middle <= title["y"] + title["height"], (i, box, title)  # on the title's line
        assert box["x"] >= title["x"] + title["width"], (i, box, title)  # after it
    assert server.http.get(f"{export}?format=csv").status_code == 200


def check_modebar(page: Page, chart: str, shot: bool = False) -> None:
    """The chart's plotly toolbar shows only while the pointer is over the chart, and then sits in the
    margin above the plot area, covering none of the chart's text (colorbar title, legend, ticks).
    `shot`: keep a picture of the hovered chart, toolbar showing, under test-artifacts/."""
    page.mouse.move(0, 0)
    found = page.locator(f"#{chart}").evaluate("""el => {
        const bar = el.querySelector(".modebar").getBoundingClientRect();
        const plotTop = el.getBoundingClientRect().top + el._fullLayout._size.t;
        const covered = [...el.querySelectorAll(".main-svg text")].filter((t) => {
          const r = t.getBoundingClientRect();
          return r.width > 0 && r.left < bar.right && r.right > bar.left && r.top < bar.bottom && r.bottom > bar.top;
        }).map((t) => t.textContent);
        return { mode: el._context.displayModeBar, logo: el._context.displaylogo,
                 hover: el.querySelector(".modebar").classList.contains("modebar--hover"),
                 below: plotTop - bar.bottom, covered };
    }""")
    assert found["mode"] == "hover" and found["logo"] is False and found["hover"], (chart, found)
    assert found["below"] >= 0, (chart, found)  # the toolbar ends above the plot area
    assert found["covered"] == [], (chart, found)
    # (computed styles, polled by expect: the page's CSP refuses wait_for_function's eval)
    tools = page.locator(f"#{chart} .modebar-group").first
    expect(tools).to_have_css("opacity", "0")  # hidden until hovered
    page.locator(f"#{chart}").hover()
    expect(tools).to_have_css("opacity", "1")
    if shot:
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator(f"#{chart}").screenshot(path=str(ARTIFACTS / f"dashboard-modebar-{chart}.png"))
    page.mouse.move(0, 0)
    expect(tools).to_have_css("opacity", "0")  # and gone again (it fades: not in the page's screenshots)


def check_frontier_note(page: Page, summary: dict[str, Any]) -> None:
    """The caption under the frontier: each arm's highest stable lr, or "no stable lr" with the reason
    on hover. Never "none": that is also an arm's name, and "none none" read like a stutter."""
    parts = page.locator("#frontier-note > .part")
    expect(parts).to_have_text([f'{f["clipping"]}: ' + (lr_text(f["stable_lr"]["value"]) if f["stable_lr"]["value"]
                                                        is not None else "no stable lr") for f in summary["frontier"]])
    for i, f in enumerate(summary["frontier"]):
        if f["stable_lr"]["value"] is None:
            assert parts.nth(i).locator(".missing").get_attribute("title") == f["stable_lr"]["reason"]
    assert not re.search(r"\bnone\s+none\b", page.locator("#frontier-note").inner_text())


def check_seed_table(page: Page, lr: float, clipping: str, runs: int) -> None:
    """The per-seed table is folded away below the cells table, its summary saying which cell and how many."""
    folded = page.locator("details#seed-runs")
    assert folded.evaluate("d => d.open") is False
    expect(folded.locator("summary")).to_have_text(f"Per-seed outcomes of lr {lr_text(lr)} · {clipping} ({runs} runs)")
    expect(page.locator("#cell-runs")).to_be_hidden()
    assert page.evaluate("""() => Boolean(document.querySelector("#cells").compareDocumentPosition(
        document.querySelector("#seed-runs")) & Node.DOCUMENT_POSITION_FOLLOWING)""")


def marks(page: Page, chart: str, what: str) -> int:
    return page.locator(f"#{chart} {what}").count()


def curve_seeds(page: Page, chart: str) -> list[int]:
    """The seeds whose curves a seeds chart draws (each point's customdata: seed, step, outcome),
    in the order drawn, once each; and it draws them in one trace per kind of curve, not per seed."""
    return page.locator(f"#{chart}").evaluate(
        "el => [...new Set(el.data.filter((t) => (t.name || '').endsWith(' seeds'))"
        ".flatMap((t) => t.customdata.filter((c) => c !== null).map((c) => c[0])))]")


def check_charts(page: Page, sweep: dict[str, Any]) -> None:
    """Each chart drew one mark per thing it shows: a labelled square per cell, a line and band per
    arm, a curve per seed (in a trace per kind) and an x per divergence."""
    page.wait_for_selector("html[data-rendered]")
    summary = sweep["summary"]
    cells = summary["cells"]
    arms = sorted({c["clipping"] for c in cells})
    expect(page.locator("#headline")).to_have_text(summary["headline"])
    assert summary["headline"].startswith("norm(max_norm=1.0) cut divergence at lr 0.5")

    # heatmap: one labelled square per cell, showing the rate and the counts
    labels = page.locator("#heatmap .hm text").all_text_contents()
    assert sorted(labels) == sorted(f'{js_pct(c["divergence_rate"])}%{c["diverged"]}/{c["finished"]}' for c in cells)
    # frontier: a band and a line per arm, a point per cell, the tolerance line
    assert marks(page, "frontier", ".scatterlayer .trace") == 2 * len(arms)
    assert marks(page, "frontier", ".scatterlayer .trace .points path") == len(cells)
    assert marks(page, "frontier", ".shapelayer path") == 1
    expect(page.locator("#frontier-note")).to_contain_text("Highest stable learning rate")
    check_frontier_note(page, summary)
    # convergence: a curve per arm at the chosen learning rate (that of the cliff, 0.5)
    assert page.locator("#convergence-lr").input_value() == "0.5"
    assert marks(page, "convergence", ".scatterlayer .trace") == len(arms)

    # every seed of the cell shown first: the unclipped one at lr 0.5, where seeds diverged
    [cliff] = [c for c in cells if c["lr"] == 0.5 and c["clipping"] == "none"]
    assert cliff["diverged"] > 0
    assert page.locator("#cell-select").input_value() == str(cliff["cell_index"])
    seeds = SPEC["seeds"]
    # the band (p10, p90 shaded between them, the median), every seed's curve, the divergence marks
    assert sorted(curve_seeds(page, "losses")) == list(range(seeds))
    assert marks(page, "losses", ".scatterlayer .trace") <= 3 + 3 * 2 + 1  # band, kinds × (lines, markers), x
    assert marks(page, "losses", ".scatterlayer .trace:last-child .points path") == cliff["diverged"]
    assert marks(page, "norms", ".shapelayer path") == 0  # no clip threshold without clipping
    check_seed_table(page, 0.5, "none", seeds)
    expect(page.locator("#cell-runs tbody tr")).to_have_count(0)  # made when unfolded, not on every draw
    page.locator("#seed-runs summary").click()
    expect(page.locator("#cell-runs tbody tr")).to_have_count(seeds)
    expect(page.locator("#cell-runs tbody tr td.outcome-diverged")).to_have_count(cliff["diverged"])
    page.locator("#seed-runs summary").click()  # folded again, as the page opened
    for chart in ("heatmap", "frontier", "convergence", "losses", "norms"):
        check_modebar(page, chart, shot=chart == "heatmap")

    # the clipped cell at the same rate: no divergence, and the clip threshold drawn on the norms
    [clipped] = [c for c in cells if c["lr"] == 0.5 and c["clipping"] == "norm(max_norm=1.0)"]
    page.select_option("#cell-select", str(clipped["cell_index"]))
    expect(page.locator("#threshold-note")).to_have_text("; dashed: the clip threshold 1")
    assert marks(page, "norms", ".shapelayer path") == 1
    assert sorted(curve_seeds(page, "losses")) == list(range(seeds))
    expect(page.locator("#seed-runs summary")).to_have_text(
        f"Per-seed outcomes of lr 0.5 · {clipped['clipping']} ({seeds} runs)")

    # telemetry: a row per cell; the clipped cell at lr 0.5 clipped some of its steps
    expect(page.locator("#telemetry tbody tr")).to_have_count(len(cells))
    clipped_share = page.locator(f'#telemetry tr[data-cell="{clipped["cell_index"]}"] td').nth(3).inner_text()
    assert clipped_share == f'{js_pct(clipped["telemetry"]["clipped_fraction"])}%'


def check_tolerance_link(page: Page, server: Server, sweep_id: int) -> None:
    """?tolerance= opens the sweep page at that tolerance, headline and frontier included, and
    choosing another puts it in the address; an unknown value falls back to the default 5%."""
    page.goto(f"{server.url}/sweeps/{sweep_id}?tolerance=0.5")
    page.wait_for_selector("html[data-rendered]")
    assert page.locator("#tolerance").input_value() == "0.5"
    lenient = httpx.get(f"{server.url}/api/v1/sweeps/{sweep_id}/summary", params={"tolerance": 0.5}).json()
    expect(page.locator("#headline")).to_have_text(lenient["headline"])
    expect(page.locator("#frontier-note")).to_contain_text("upper bound under 50%")
    check_frontier_note(page, lenient)
    page.select_option("#tolerance", "0.2")
    expect(page.locator("#frontier-note")).to_contain_text("upper bound under 20%")
    assert page.url.endswith("?tolerance=0.2")
    page.goto(f"{server.url}/sweeps/{sweep_id}?tolerance=7")
    page.wait_for_selector("html[data-rendered]")
    assert page.locator("#tolerance").input_value() == "0.05"


def check_run_page(page: Page, sweep: dict[str, Any]) -> None:
    """A run's page: outcome, its two charts, and the recipe that trains it again. The cell shown is
    the clipped one at lr 0.5, drawn completely (check_charts waited for its threshold note)."""
    page.locator("#seed-runs summary").click()  # unfolds the per-seed table
    link = page.locator("#cell-runs tbody a").first
    expect(link).to_have_text(re.compile(r"^run \d+$"))
    run_id = int(link.inner_text().split()[1])
    with page.expect_navigation(url=re.compile(rf"/runs/{run_id}$"), wait_until="commit"):
        link.click()
    page.wait_for_selector("html[data-rendered]")
    expect(page.locator("h1")).to_have_text(re.compile(rf"^Run {run_id}: seed \d+$"))
    expect(page.locator("#outcome")).to_contain_text("lr 0.5 · norm(max_norm=1.0)")
    assert marks(page, "run-loss", ".scatterlayer .trace") >= 1
    assert marks(page, "run-norm", ".scatterlayer .trace") >= 1
    expect(page.locator("#reproduce")).to_contain_text("result = run_seed(config, seed=")
    expect(page.locator("#facts")).to_contain_text("attempts")
    for chart in ("run-loss", "run-norm"):
        check_modebar(page, chart)
    screenshot(page, "dashboard-run.png")


def test_unknown_sweep_page_is_404(server: Server, watched: Watched) -> None:
    assert server.http.get("/sweeps/999999").status_code == 404
    assert server.http.get("/runs/999999").status_code == 404
    page = watched.page
    response = page.goto(server.url + "/sweeps/999999")
    assert response is not None and response.status == 404
    expect(page.locator("#not-found")).to_have_text("No sweep with id 999999.")
    screenshot(page, "dashboard-not-found.png")
    with page.expect_navigation(url=server.url + "/"):
        page.get_by_role("link", name="all sweeps").click()
    expect(page.locator("#sweeps tbody tr").first).not_to_have_text("loading…")
    # The only complaints are about the 404 document itself (Chromium logs it as a console error).
    unknown = server.url + "/sweeps/999999"
    assert watched.problems and all(unknown in problem for problem in watched.problems), watched.problems


def test_the_schedule_pages_show_each_night_and_what_changed(server: Server, watched: Watched) -> None:
    """A schedule fired twice (manually), its spec changed in between and its first sweep recorded
    as trained with an older torch: the list links it with its last headline, and its page draws
    the trends and says what changed between the nights."""
    spec = {"task": {"name": "quadratic"}, "learning_rates": [0.05, 0.5], "seeds": 4, "budget": {"max_steps": 30}}
    created = server.http.post("/api/v1/schedules", json={"name": "browser-nightly", "cron": "0 3 * * *",
                                                           "sweep": spec})
    assert created.status_code == 201, created.text
    schedule_id = created.json()["id"]
    try:
        first = server.http.post(f"/api/v1/schedules/{schedule_id}/trigger").json()["sweep_id"]
        assert server.wait_finished(first)["status"] == "succeeded"
        factory = make_session_factory(make_engine(Settings(data_dir=server.data_dir).resolved_database_url))
        with session_scope(factory) as session:  # as if that night had run on an older torch
            sweep = session.get_one(Sweep, first)
            sweep.environment = {**sweep.environment, "torch": "2.12.0"}
        changed = server.http.patch(f"/api/v1/schedules/{schedule_id}", json={"sweep": {**spec, "seeds": 5}})
        assert changed.json()["version"] == 2, changed.text
        second = server.http.post(f"/api/v1/schedules/{schedule_id}/trigger").json()["sweep_id"]
        assert server.wait_finished(second)["status"] == "succeeded"

        page = watched.page
        page.goto(server.url + "/schedules")
        row = page.locator(f'#schedules tr[data-schedule="{schedule_id}"]')
        expect(row).to_contain_text("browser-nightly")
        expect(row).to_contain_text("At 03:00 every day (UTC)")
        expect(row).to_contain_text("manual")
        expect(row.locator("td").last).to_contain_text("lr")  # the last sweep's headline
        screenshot(page, "dashboard-schedules.png")
        with page.expect_navigation(url=f"{server.url}/schedules/{schedule_id}"):
            row.get_by_role("link", name="browser-nightly").click()
        page.wait_for_selector("html[data-rendered]", state="attached")
        fires = page.locator("#fires tbody tr")
        expect(fires).to_have_count(2)
        expect(fires.nth(0)).to_contain_text("manual")
        expect(fires.nth(0).locator("td.changed")).to_have_text(f"spec v1 → v2; torch 2.12.0 → {torch.__version__}")
        expect(fires.nth(1).locator("td").last).to_have_text("–")
        for chart in ("trend-divergence", "trend-frontier", "trend-steps"):
            expect(page.locator(f"#{chart} .main-svg").first).to_be_attached()
            check_modebar(page, chart)
        expect(page.locator("#trend-lr option")).to_have_count(2)
        screenshot(page, "dashboard-schedule.png")
        assert watched.problems == [], watched.problems
        assert all(url.startswith(server.url) for url in watched.requests), watched.requests
    finally:
        server.http.delete(f"/api/v1/schedules/{schedule_id}")


# ---- regression alerts -------------------------------------------------------------------------

@dataclass
class Quiet:
    """The app on uvicorn in this process, on its own SQLite file: nothing trains or compares by itself."""
    url: str
    http: httpx.Client
    factory: sessionmaker[Session]


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quiet]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("alerts"), auth="off")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    engine = make_engine(settings.resolved_database_url)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        yield Quiet(f"http://127.0.0.1:{port}", http, make_session_factory(engine))
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


# A name a page must show as text, never as markup (schedule names are unique: one per test).
HOSTILE = 'nightly <img src=x onerror="document.title=1"> & co'
NIGHTLY = {"task": {"name": "adding", "params": {"seq_len": 20}}, "learning_rates": [0.1],
           "clipping": [{"method": "none"}, {"method": "norm", "max_norm": 1.0}], "seeds": 16,
           "budget": {"max_steps": 10}}


@dataclass
class Nights:
    schedule_id: int
    sweeps: list[int]  # oldest first: good, bad (alert A), good (A resolved), bad on a newer torch (alert B, open)
    resolved: dict[str, Any]
    open: dict[str, Any]


def nights(quiet: Quiet, name: str) -> Nights:
    """A schedule fired four times: its unclipped cell diverges in seeds 0-11 on the second and
    fourth nights only, the fourth on a newer torch; each night compared with the one before."""
    created = quiet.http.post("/api/v1/schedules", json={"name": name, "cron": "0 2 * * *", "sweep": NIGHTLY})
    assert created.status_code == 201, created.text
    schedule_id = created.json()["id"]
    sweeps = []
    for night, (diverged, torch_version) in enumerate([(set(), "2.13.0"), (set(range(12)), "2.13.0"),
                                                       (set(), "2.13.0"), (set(range(12)), "2.14.0")]):
        fired = quiet.http.post(f"/api/v1/schedules/{schedule_id}/trigger")
        assert fired.status_code == 201, fired.text
        sweep_id = fired.json()["sweep_id"]
        store(quiet.factory, sweep_id, [report(c, s, "diverged" if c == 0 and s in diverged else "unconverged")
                                        for c in (0, 1) for s in range(16)])
        with session_scope(quiet.factory) as session:
            session.execute(update(Sweep).where(Sweep.id == sweep_id).values(
                status=SweepStatus.SUCCEEDED, environment={"torch": torch_version}))
        at = datetime.now(timezone.utc) + night * timedelta(seconds=1)
        with session_scope(quiet.factory) as session:  # as the scheduler's notifier does once it ends
            evaluate(session, session.get_one(Sweep, sweep_id), at, server_url=quiet.url)
        sweeps.append(sweep_id)
    alerts = quiet.http.get("/api/v1/alerts", params={"schedule_id": schedule_id}).json()["items"]
    [resolved] = [a for a in alerts if a["state"] == "resolved"]
    [opened] = [a for a in alerts if a["state"] == "open"]
    assert (resolved["sweep_id"], opened["sweep_id"]) == (sweeps[1], sweeps[3])
    assert opened["kind"] == "divergence" and opened["evidence"]["flipped_seeds"] == list(range(12))
    assert "torch 2.13.0 → 2.14.0" in opened["text"]
    return Nights(schedule_id, sweeps, resolved, opened)


def alert_cells(page: Page, table: str, alert_id: int) -> Any:
    return page.locator(f'#{table} tr[data-alert="{alert_id}"] td')


def test_the_alerts_page_lists_open_alerts_and_acknowledges_one(quiet: Quiet, watched: Watched) -> None:
    found = nights(quiet, HOSTILE)
    alert = found.open
    page = watched.page
    page.goto(quiet.url + "/schedules")
    with page.expect_navigation(url=f"{quiet.url}/alerts"):
        page.locator("header a.nav", has_text="alerts").click()
    expect(page).to_have_title("Alerts · clipsweep")
    assert page.locator("#state-filter").input_value() == "open"
    cols = alert_cells(page, "alerts", alert["id"])
    expect(cols).to_have_count(page.locator("#alerts thead th").count())
    expect(cols.nth(0)).to_have_text("open")
    expect(cols.nth(1)).to_have_text("divergence")
    expect(cols.nth(2)).to_have_text(alert["text"])
    assert alert["text"].startswith("divergence at lr 0.1, none: 0/16 → 12/16")
    expect(cols.nth(3)).to_have_text(HOSTILE)  # the schedule's name as text, linked
    assert cols.nth(3).locator("a").get_attribute("href") == f"/schedules/{found.schedule_id}"
    assert page.locator("#alerts img").count() == 0
    assert cols.nth(4).locator("a").get_attribute("href") == f"/sweeps/{found.sweeps[3]}"
    assert cols.nth(5).locator("a").get_attribute("href") == f"/sweeps/{found.sweeps[2]}"
    expect(cols.nth(6)).to_have_text("0, 1, 2, 3, 4, 5, 6, 7 and 4 more")
    expect(cols.nth(7)).to_have_text(local_time(alert["created_at"]))
    expect(alert_cells(page, "alerts", found.resolved["id"])).to_have_count(0)  # resolved: not open
    screenshot(page, "dashboard-alerts.png")

    # Acknowledged, it leaves the open list; the API says who and when.
    cols.nth(8).get_by_role("button", name="Acknowledge").click()
    expect(cols).to_have_count(0)
    expect(page.locator("#alert-error")).to_be_hidden()
    assert quiet.http.get(f"/api/v1/alerts/{alert['id']}").json()["state"] == "acknowledged"
    # All of them: the acknowledged one (no button now) before the resolved one.
    page.select_option("#state-filter", "all")
    assert page.url.endswith("?state=all")
    # (waits for the list of all to arrive before reading its order: it comes by fetch)
    expect(cols.nth(0)).to_have_text("acknowledged")
    expect(alert_cells(page, "alerts", found.resolved["id"])).not_to_have_count(0)
    rows = page.locator("#alerts tbody tr[data-alert]")
    order = [int(i) for i in rows.evaluate_all("rs => rs.map(r => r.dataset.alert)")]
    assert order.index(alert["id"]) < order.index(found.resolved["id"])
    expect(cols.get_by_role("button")).to_have_count(0)
    expect(alert_cells(page, "alerts", found.resolved["id"]).nth(2)).to_contain_text(
        f"sweep {found.sweeps[2]} is back within the thresholds")
    # One schedule's (the schedule page links here): its two alerts only, and the way back to all.
    page.goto(f"{quiet.url}/alerts?state=all&schedule_id={found.schedule_id}")
    expect(page.locator("#scope")).to_have_text(f"of {HOSTILE} only · every schedule's")
    assert page.locator("#alerts img").count() == 0
    expect(rows).to_have_count(2)
    assert watched.problems == [], watched.problems
    assert all(url.startswith(quiet.url) for url in watched.requests), watched.requests


def test_the_schedule_and_sweep_pages_show_alerts_and_comparisons(quiet: Quiet, watched: Watched) -> None:
    name = f"{HOSTILE} 2"
    found = nights(quiet, name)
    good, bad, back, worse = found.sweeps
    page = watched.page
    page.goto(f"{quiet.url}/schedules/{found.schedule_id}")
    page.wait_for_selector("html[data-rendered]", state="attached")
    expect(page.locator("h1")).to_have_text(f"Schedule {found.schedule_id}: {name}")

    # Its alerts: the open one first, then the resolved one.
    rows = page.locator("#schedule-alerts tbody tr[data-alert]")
    expect(rows).to_have_count(2)
    assert [int(i) for i in rows.evaluate_all("rs => rs.map(r => r.dataset.alert)")] == [
        found.open["id"], found.resolved["id"]]
    expect(rows.nth(0).locator("td").nth(0)).to_have_text("open")
    expect(rows.nth(0).locator("td").nth(2)).to_have_text(found.open["text"])
    expect(rows.nth(0).locator("td").nth(5)).to_have_text("0, 1, 2, 3, 4, 5, 6, 7 and 4 more")
    expect(rows.nth(1).locator("td").nth(0)).to_have_text("resolved")

    # Each night against its baseline, in the history (newest first).
    fires = page.locator("#fires tbody tr")
    expect(fires).to_have_count(4)
    versus = page.locator("#fires thead th").all_inner_texts().index("vs baseline")
    expect(fires.nth(0).locator("td").nth(versus)).to_have_text(f"1 regression vs {back}")
    expect(fires.nth(1).locator("td").nth(versus)).to_have_text(f"1 improvement vs {bad}")
    expect(fires.nth(2).locator("td").nth(versus)).to_have_text(f"1 regression vs {good}")
    expect(fires.nth(3).locator("td").nth(versus)).to_have_text(
        "no earlier succeeded sweep of this schedule to compare with")
    expect(fires.nth(0).locator("td.changed")).to_have_text("torch 2.13.0 → 2.14.0")

    # The charts mark the nights that raised an alert, and the one that resolved it.
    fire_time = {f["sweep_id"]: f["scheduled_for"] for f in quiet.http.get(
        f"/api/v1/schedules/{found.schedule_id}/sweeps").json()["items"]}
    for chart in ("trend-divergence", "trend-frontier", "trend-steps"):
        traces = page.locator(f"#{chart}").evaluate(
            "el => el.data.filter(t => t.yaxis === 'y2').map(t => ({name: t.name, x: t.x, said: t.customdata}))")
        assert [t["name"] for t in traces] == ["regression alert", "alert resolved"], traces
        raised, resolved = traces
        assert raised["x"] == [fire_time[bad], fire_time[worse]] and resolved["x"] == [fire_time[back]]
        assert found.open["text"].split(";")[0] in raised["said"][1]
        expect(page.locator(f"#{chart} .legendtext", has_text="regression alert")).to_have_count(1)
        assert marks(page, chart, ".shapelayer path") == 3  # a dotted line at each marked night
    screenshot(page, "dashboard-schedule-alerts.png")

    # Resolved behind the page's back, the alert can no longer be acknowledged: the API's detail shows.
    with session_scope(quiet.factory) as session:
        session.execute(update(Alert).where(Alert.id == found.open["id"]).values(
            state=AlertState.RESOLVED, resolved_at=datetime.now(timezone.utc), resolution="resolved meanwhile"))
    rows.nth(0).get_by_role("button", name="Acknowledge").click()
    expect(page.locator("#alert-error")).to_have_text(
        f"Could not acknowledge alert {found.open['id']}: alert {found.open['id']} is resolved; "
        "only an open alert can be acknowledged")
    expect(rows.nth(0).locator("td").nth(0)).to_have_text("resolved")  # and the list is read again
    refused = [p for p in watched.problems if "/acknowledge" in p]
    assert refused and len(refused) == len(watched.problems), watched.problems
    watched.problems.clear()

    # The bad night's sweep page says which schedule made it and what the comparison found.
    with page.expect_navigation(url=f"{quiet.url}/sweeps/{worse}"):
        fires.nth(0).get_by_role("link", name=str(worse), exact=True).click()
    page.wait_for_selector("html[data-rendered]")
    box = page.locator("#compared")
    expect(box).to_be_visible()
    expect(box).to_have_class(re.compile(r"\bworse\b"))
    expect(box).to_contain_text(f"Scheduled by {name}")
    expect(box).to_contain_text(f"Compared with sweep {back}:")
    expect(box.locator("li.regressed")).to_have_text([found.open["text"].split(";")[0]])
    expect(box).to_contain_text("environment: torch 2.13.0 → 2.14.0")
    assert box.get_by_role("link", name="full comparison").get_attribute("href") == (
        f"/api/v1/sweeps/{worse}/compare/{back}")
    assert box.locator("img").count() == 0
    screenshot(page, "dashboard-sweep-compared.png")
    # The first night had nothing to compare with.
    page.goto(f"{quiet.url}/sweeps/{good}")
    expect(page.locator("#compared")).to_contain_text(
        "Not compared: no earlier succeeded sweep of this schedule to compare with.")
    assert watched.problems == [], watched.problems
    assert all(url.startswith(quiet.url) for url in watched.requests), watched.requests


def test_a_cancelled_sweep_counts_trained_runs_and_spreads_early_divergences(quiet: Quiet, watched: Watched) -> None:
    """A cancelled 300-step sweep whose unclipped seeds diverged at steps 2, 3, 5 and 8: its list row
    fills the bar with the trained runs only and counts the cancelled and failed ones apart, and its
    seed charts spread the divergence marks over a log step axis rather than crush them at its left end."""
    name = "cancelled-early"
    sweep_id = make_sweep(quiet.factory, {**NIGHTLY, "name": name, "seeds": 8, "budget": {"max_steps": 300}})
    early = {0: 2, 1: 3, 2: 5, 3: 8}  # seed: divergence step, in cell 0 (lr 0.1, none)
    long = [[s, 0.3 - s / 2000, 1.5, False] for s in range(0, 300, 10)] + [[299, 0.15, 1.2, False]]
    store(quiet.factory, sweep_id, [
        *(report(0, seed, "diverged", trigger="loss_explosion", diverged_at_step=step, steps_done=step,
                 final_loss=1e9, divergence_grad_norm=40.0, max_grad_norm=40.0,
                 points=[[0, 0.3, 2.0, False], [step, 1e9, None, False]]) for seed, step in early.items()),
        *(report(cell, seed, steps_done=300, points=long)
          for cell, seed in [(0, 4), (0, 5), *((1, s) for s in range(6))]),
    ])
    with session_scope(quiet.factory) as session:  # cell 1 seed 6 failed; the rest were cancelled
        session.execute(update(Run).where(Run.sweep_id == sweep_id, Run.cell_index == 1, Run.seed == 6)
                        .values(outcome=RunOutcome.FAILED, error="worker lost"))
        session.execute(update(Run).where(Run.sweep_id == sweep_id, Run.outcome.is_(None))
                        .values(outcome=RunOutcome.CANCELLED))
        session.execute(update(Sweep).where(Sweep.id == sweep_id).values(status=SweepStatus.CANCELLED))
    progress = quiet.http.get(f"/api/v1/sweeps/{sweep_id}").json()["progress"]
    assert progress["done"] == progress["runs_total"] == 16, progress  # cancelled and failed runs count as done
    assert {o: n for o, n in progress["by_outcome"].items() if n} == {
        "diverged": 4, "unconverged": 8, "failed": 1, "cancelled": 3}, progress

    # The list: 12 of 16 trained, the bar three quarters full, the cancelled and failed counted apart.
    page = watched.page
    page.goto(quiet.url + "/?status=cancelled")
    cols = page.locator(f'#sweeps tr[data-sweep="{sweep_id}"] td')
    expect(cols.nth(3)).to_have_text("cancelled")
    expect(cols.nth(4)).to_have_text("12/16, 3 cancelled, 1 failed")
    expect(cols.nth(4).locator(".fill")).to_have_attribute("style", re.compile(r"width:\s*75%"))
    screenshot(page, "dashboard-sweeps-cancelled.png")

    page.goto(f"{quiet.url}/sweeps/{sweep_id}")
    page.wait_for_selector("html[data-rendered]")
    expect(page.locator("#bar-fill")).to_have_attribute("style", re.compile(r"width:\s*75%"))
    expect(page.locator("#status")).to_contain_text("16 of 16 runs done")
    check_seed_table(page, 0.1, "none", 8)
    # The cell shown first diverged early: a log step axis, labelled in steps from 0.
    loss = page.locator("#losses")
    axis = loss.evaluate("el => ({ type: el._fullLayout.xaxis.type, title: el._fullLayout.xaxis.title.text, "
                         "ticks: [...el.querySelectorAll('.xtick text')].map((t) => t.textContent) })")
    assert axis["type"] == "log" and axis["title"] == "step (log scale)", axis
    assert axis["ticks"][:5] == ["0", "1", "2", "5", "10"] and "200" in axis["ticks"], axis
    crosses = loss.locator(".scatterlayer .trace:last-child .points path")
    expect(crosses).to_have_count(len(early))
    said = loss.evaluate("el => el.data[el.data.length - 1].customdata")
    assert [re.search(r"diverged at step (\d+)$", s).group(1) for s in said] == [str(s) for s in early.values()], said
    left = loss.evaluate("el => el.getBoundingClientRect().left + el._fullLayout._size.l")
    width = loss.evaluate("el => el._fullLayout._size.w")
    centres = [b["x"] + b["width"] / 2 - left for b in (crosses.nth(i).bounding_box() for i in range(len(early)))]
    assert centres == sorted(centres), centres
    assert centres[0] > 0.15 * width, (centres, width)  # step 2 well clear of the axis
    assert all(b - a >= 16 for a, b in itertools.pairwise(centres)), centres  # marks 11 px wide, apart
    assert centres[-1] - centres[0] > 0.15 * width, (centres, width)
    # Curves hover with their true step, not the shifted position on the axis.
    # (each point's customdata: seed, step, outcome; the first curve after the band's three traces)
    assert loss.evaluate("el => el.data[3].customdata.slice(0, 2).map((c) => c[1])") == [0, 2]
    screenshot(page, "dashboard-sweep-cancelled.png")
    # A cell with no divergence keeps a linear step axis.
    page.select_option("#cell-select", "1")
    expect(page.locator("#seed-runs summary")).to_have_text("Per-seed outcomes of lr 0.1 · norm(max_norm=1.0) (8 runs)")
    # (drawn before the summary changes, in the same task)
    assert loss.evaluate("el => el._fullLayout.xaxis.type") == "linear"

    # The run page of the seed that diverged at step 2.
    page.select_option("#cell-select", "0")
    expect(page.locator("#seed-runs summary")).to_have_text("Per-seed outcomes of lr 0.1 · none (8 runs)")
    page.locator("#seed-runs summary").click()
    first = page.locator("#cell-runs tbody tr").first
    expect(first.locator("td").nth(3)).to_have_text("2")
    with page.expect_navigation(url=re.compile(r"/runs/\d+$")):
        first.get_by_role("link").click()
    page.wait_for_selector("html[data-rendered]")
    expect(page.locator("#outcome")).to_contain_text("diverged at step 2 (loss_explosion)")
    expect(page.locator("#run-loss .scatterlayer .trace:last-child .points path")).to_have_count(1)
    screenshot(page, "dashboard-run-diverged.png")
    assert watched.problems == [], watched.problems
    assert all(url.startswith(quiet.url) for url in watched.requests), watched.requests


def test_a_running_sweep_says_what_is_provisional(quiet: Quiet, watched: Watched) -> None:
    """2 of 80 runs in, both diverged: the headline gives the counts and waits, and the heatmap
    shows the cell's counts "so far", uncoloured, instead of a red 100%."""
    sweep_id = make_sweep(quiet.factory, {**NIGHTLY, "name": "running-early", "seeds": 20,
                                          "learning_rates": [0.1, 0.5]})
    store(quiet.factory, sweep_id, [report(0, 0, "diverged", trigger="loss_explosion", diverged_at_step=3,
                                           steps_done=3, points=[[0, 0.3, 2.0, False], [3, 1e9, None, False]]),
                                    report(0, 1, "diverged", trigger="loss_explosion", diverged_at_step=4,
                                           steps_done=4, points=[[0, 0.3, 2.0, False], [4, 1e9, None, False]])])
    with session_scope(quiet.factory) as session:  # a worker trains it: the other runs made 100 steps so far
        assert claim_next_sweep(session, "w", heartbeat_timeout=60) == sweep_id
        record_live_steps(session, sweep_id, 100)
    page = watched.page
    page.goto(f"{quiet.url}/sweeps/{sweep_id}")
    page.wait_for_selector("html[data-rendered]")
    # Progress moves in steps: 2 finished runs count their budget of 10, the rest the 100 made.
    expect(page.locator("#status")).to_have_text(re.compile(
        r"^running · 120 of 800 steps \(15%\), [\d,.]+ steps/s, about \d+ s left · 2 of 80 runs done \(2 diverged\)$"))
    expect(page.locator("#headline")).to_have_text(
        "so far 2 of 80 runs have finished (2 diverged); the answer waits until every cell has 8 (the thinnest has 0).")
    heatmap = page.locator("#heatmap").evaluate("el => ({ z: el.data[0].z, text: el.data[0].text })")
    # Rows are learning rates (0.1, 0.5), columns arms (none, norm): only cell (0.1, none) has runs.
    assert heatmap["text"][0][0] == "so far 2/2<br>of 20" and heatmap["z"][0][0] is None, heatmap
    assert heatmap["text"][1] == ["–", "–"], heatmap
    expect(page.locator("#narrowing-figure")).to_be_hidden()  # fixed seeds: no rounds to show


def test_the_dashboard_writes_numbers_as_the_cli_and_the_api_do(quiet: Quiet, watched: Watched) -> None:
    """dashboard.js's formatting functions against service/analysis/numbers.py, value by value:
    halves, thousands, paces and spans of time read the same on every screen."""
    page = watched.page
    page.goto(f"{quiet.url}/")
    values = {"pct": [0, 0.025, 2 / 80, 0.125, 0.5, 0.995, 1], "count": [0, 999, 1000, 96000, 1234567.5],
              "steps": [0, 700, 2962.5, 1812.5, 1000, 1234567],
              "rate": [0.04, 0.25, 2.45, 9.96, 10, 1234.5], "duration": [0, 0.5, 44.5, 89, 90, 150, 5369, 5400, 9000]}
    python = {"pct": numbers.percent, "count": numbers.count, "steps": numbers.steps, "rate": numbers.rate,
              "duration": numbers.duration}
    got = page.evaluate("(values) => Object.fromEntries(Object.entries(values).map(([name, xs]) => "
                        "[name, xs.map((x) => clipsweep.format[name](x))]))", values)
    assert got == {name: [python[name](x) for x in xs] for name, xs in values.items()}


def test_a_searched_sweeps_frontier_shows_the_path_and_what_it_saved(quiet: Quiet, watched: Watched) -> None:
    """Trained by the scripted runner (no Ray): each arm's probes are numbered in the order they
    ran on the frontier chart, the one left undecided out of reach says so, and the note compares
    the runs with the grid's."""
    sweep_id = make_sweep(quiet.factory, {**NIGHTLY, "name": "searched", "learning_rates": SEARCH, "seeds": SEEDS,
                                          "resources": {"max_seeds_per_trial": 64}})
    with session_scope(quiet.factory) as session:
        assert claim_next_sweep(session, "w1", heartbeat_timeout=60) == sweep_id
    execute(quiet.factory, sweep_id, ScriptedRunner(*[near_the_tolerance] * 40))
    search = quiet.http.get(f"/api/v1/sweeps/{sweep_id}/summary").json()["search"]
    [short] = [p for arm in search["arms"] for p in arm["probes"] if p["out_of_reach"]]
    assert (short["lr"], short["verdict"]) == (0.008, "undecided")
    page = watched.page
    page.goto(f"{quiet.url}/sweeps/{sweep_id}")
    page.wait_for_selector("html[data-rendered]")
    labels = page.locator("#frontier").evaluate("el => el.data.filter((t) => t.text).map((t) => [t.name, t.text])")
    assert {name.split("(")[0]: sorted(int(t) for t in texts if t) for name, texts in labels} == {
        arm["clipping"].split("(")[0]: list(range(1, len(arm["probes"]) + 1)) for arm in search["arms"]}
    hovers = page.locator("#frontier").evaluate(
        "el => el.data.filter((t) => t.name === 'none').flatMap((t) => t.x.map((x, i) => [x, t.customdata[i]]))")
    at_short = [text for lr, text in hovers if lr == 0.008]
    assert len(at_short) == 1 and [text for _, text in hovers if "out of reach" in text] == at_short, hovers
    expect(page.locator("#frontier-note")).to_contain_text(
        f"Searched (numbers: the order of the probes): {search['runs']:,} runs; a grid of the same 10 points with "
        f"the 73 seeds per cell a fixed grid needs at 5% would take {search['grid_runs']:,}")
    # The chosen cell's interval as its seeds came in, round by round, with its verdict.
    expect(page.locator("#narrowing-figure")).to_be_visible()
    cell = page.locator("#narrowing").evaluate("el => ({ n: el.data[1].x.length, last: el.data[1].y.at(-1) })")
    chosen = page.locator("#cell-select").input_value()
    summary = quiet.http.get(f"/api/v1/sweeps/{sweep_id}/summary").json()
    [row] = [c for c in summary["cells"] if str(c["cell_index"]) == chosen]
    assert cell == {"n": row["finished"], "last": row["divergence_rate"]}
    expect(page.locator("#narrowing-verdict")).to_have_text(row["verdict"])


def test_a_cell_of_many_seeds_shows_its_band_every_divergence_and_a_sample(quiet: Quiet, watched: Watched) -> None:
    """300 seeds: the chart draws the median and 10th-90th percentile band of all of them, every
    diverged seed's curve and 40 of the others, not 300 curves; the table still lists every run."""
    sweep_id = make_sweep(quiet.factory, {**NIGHTLY, "name": "many-seeds", "seeds": 300, "budget": {"max_steps": 200}})
    diverged = set(range(0, 300, 25))
    def points(s: int, last: int, blow_up: bool) -> list[list[Any]]:
        climb = 1 / 100 if blow_up else 0
        end = [last, 1e9, None, False] if blow_up else [last, 0.3, 1.0, False]
        return [[step, 0.3 + s / 1000 + step * climb, 1.0, False] for step in range(0, last, 10)] + [end]

    store(quiet.factory, sweep_id, [
        report(0, s, "diverged", trigger="loss_explosion", diverged_at_step=120, steps_done=120,
               points=points(s, 120, True)) if s in diverged
        else report(0, s, steps_done=200, points=points(s, 199, False)) for s in range(300)])
    page = watched.page
    page.goto(f"{quiet.url}/sweeps/{sweep_id}")
    page.wait_for_selector("html[data-rendered]")
    expect(page.locator("#curves-note")).to_have_text("every diverged seed (12), 40 of the 288 others")
    traces = page.locator("#losses").evaluate(
        "el => el.data.map((t) => ({ name: t.name, fill: t.fill || null, n: t.x.length,"
        " seeds: [...new Set((t.customdata || []).filter((c) => Array.isArray(c) && c.length === 3)"
        ".map((c) => c[0]))] }))")
    assert [t["fill"] for t in traces[:2]] == [None, "tonexty"] and traces[2]["name"] == "median"
    # One trace per kind of curve, not one per seed: diverged, then the others (none converged).
    curves = traces[3:-1]
    assert [t["name"] for t in curves] == ["diverged seeds", "other seeds"], curves
    assert traces[-1]["name"] == "divergence step"
    assert set(curves[0]["seeds"]) == diverged and len(curves[1]["seeds"]) == 40
    assert not diverged & set(curves[1]["seeds"])
    median = page.locator("#losses").evaluate("el => el.data[2]")
    assert median["customdata"][0][0] == 0 and median["customdata"][0][3] == 300, median["customdata"][0]
    assert "over %{customdata[3]} seeds" in median["hovertemplate"]
    expect(page.locator("#seed-runs summary")).to_contain_text("(300 runs)")
    page.locator("#seed-runs summary").click()
    expect(page.locator("#cell-runs tbody tr")).to_have_count(300)


def test_a_cell_of_hundreds_of_divergences_draws_every_curve_without_the_marks(quiet: Quiet, watched: Watched) -> None:
    """Over 500 diverged seeds the × marks are left out (each is an SVG node, and they would cover
    each other), and the note says so; every diverged curve is still drawn."""
    sweep_id = make_sweep(quiet.factory, {**NIGHTLY, "name": "many-divergences", "seeds": 501,
                                          "budget": {"max_steps": 200}})
    store(quiet.factory, sweep_id, [
        report(0, s, "diverged", trigger="loss_explosion", diverged_at_step=5 + s % 50, steps_done=5 + s % 50,
               points=[[0, 0.3, 1.0, False], [5 + s % 50, 1e9, None, False]]) for s in range(501)])
    page = watched.page
    page.goto(f"{quiet.url}/sweeps/{sweep_id}")
    page.wait_for_selector("html[data-rendered]")
    expect(page.locator("#curves-note")).to_have_text(
        "every diverged seed (501); over 500 diverged, no × marks: the red curves end where each diverged")
    for chart in ("losses", "norms"):
        traces = page.locator(f"#{chart}").evaluate(
            "el => el.data.map((t) => ({ name: t.name, seeds: new Set((t.customdata || [])"
            ".filter((c) => Array.isArray(c)).map((c) => c[0])).size }))")
        assert "divergence step" not in [t["name"] for t in traces], traces
        assert {"name": "diverged seeds", "seeds": 501} in traces, traces
