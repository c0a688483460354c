"""The service as an attacker and a careless colleague meet it, on loopback only: a page on another
site that posts a cancel form, a DNS-rebinding host name, and a service with auth on, through a
real Chromium, httpx and the CLI against a real `clipsweep serve`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.server
import os
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.harness import CHROMIUM, CHROMIUM_ARGS, ROOT, Server, free_port

pytestmark = pytest.mark.slow

# Waits for a GPU the test machine does not have, so it stays queued: something to cancel.
QUEUED: dict[str, Any] = {"name": "security-target", "task": {"name": "quadratic"}, "learning_rates": [0.01],
                          "clipping": [{"method": "none"}], "seeds": 1, "budget": {"max_steps": 10},
                          "resources": {"gpus_per_trial": 1, "device": "cuda"}}
EVIL = "evil.example"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium that resolves evil.example to loopback, as a rebinding DNS server would make it."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {EVIL} 127.0.0.1"])
        yield browser
        browser.close()


@pytest.fixture
def other_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A web site of someone else's, on another loopback port: its URL and the folder it serves."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    site = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{site.server_address[1]}", tmp_path
    site.shutdown()
    site.server_close()


def test_a_page_on_another_site_cannot_cancel_a_sweep_with_a_form(server: Server, browser: Browser,
                                                                   other_site: tuple[str, Path]) -> None:
    sweep_id = server.http.post("/api/v1/sweeps", json=QUEUED).json()["id"]
    url, folder = other_site
    (folder / "index.html").write_text(
        f'<form id="f" method="POST" action="{server.url}/api/v1/sweeps/{sweep_id}/cancel"></form>'
        '<script>document.getElementById("f").submit()</script>')
    page = browser.new_page()
    try:
        with page.expect_response(f"{server.url}/api/v1/sweeps/{sweep_id}/cancel") as answer:
            page.goto(url + "/index.html")
        assert answer.value.status == 403
        assert "may not send POST here from another site" in answer.value.text()
    finally:
        page.close()
    sweep = server.http.get(f"/api/v1/sweeps/{sweep_id}").json()
    assert sweep["cancel_requested_at"] is None and sweep["status"] != "cancelled"
    # httpx says the same without a browser's help: a foreign Origin is refused, none is a script.
    foreign = server.http.post(f"/api/v1/sweeps/{sweep_id}/cancel", headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403
    assert server.http.post(f"/api/v1/sweeps/{sweep_id}/cancel").json()["status"] == "cancelled"


def test_a_rebound_host_name_is_refused(server: Server, browser: Browser) -> None:
    page = browser.new_page()
    try:
        response = page.goto(f"http://{EVIL}:{server.port}/")
        assert response is not None and response.status == 400
        assert "Sweeps" not in page.content()
    finally:
        page.close()
    assert server.http.get("/api/v1/sweeps", headers={"Host": f"{EVIL}:{server.port}"}).status_code == 400
    assert server.http.get("/api/v1/sweeps", headers={"Host": f"localhost:{server.port}"}).status_code == 200


def clipsweep(data_dir: Path, *args: str, server: Server | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPSWEEP_")}
    env.update(CLIPSWEEP_DATA_DIR=str(data_dir), **({"CLIPSWEEP_SERVER_URL": server.url} if server else {}))
    return subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    """A real service with auth on, and a read and a write token made with the CLI."""
    data_dir = tmp_path_factory.mktemp("secured")
    server = Server(data_dir, env={"CLIPSWEEP_AUTH": "token"})
    try:
        tokens = {}
        for name in ("read", "write"):
            made = clipsweep(data_dir, "token", "create", "--name", name, "--scopes", name)
            assert made.returncode == 0, made.stderr
            tokens[name] = made.stdout.strip().splitlines()[-1]
        yield server, tokens
    finally:
        server.stop()


def test_with_auth_on_a_read_token_reads_and_may_not_submit(secured: tuple[Server, dict[str, str]],
                                                            tmp_path: Path) -> None:
    server, tokens = secured
    assert httpx.get(f"{server.url}/api/v1/healthz").status_code == 200  # public
    refused = httpx.get(f"{server.url}/api/v1/sweeps")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == 'Bearer realm="clipsweep"'
    spec = tmp_path / "spec.json"
    spec.write_text('{"task": {"name": "quadratic"}, "learning_rates": [0.01], "seeds": 1}')
    data = server.data_dir
    anonymous = clipsweep(data, "list", server=server)
    assert anonymous.returncode == 1 and "the server needs an API token" in anonymous.stderr
    assert "--token or CLIPSWEEP_TOKEN" in anonymous.stderr
    listed = clipsweep(data, "list", "--token", tokens["read"], server=server)
    assert listed.returncode == 0, listed.stderr
    submitted = clipsweep(data, "submit", str(spec), "--token", tokens["read"], server=server)
    assert submitted.returncode == 1
    assert "not allowed: token 'read' has scopes ['read']; POST /api/v1/sweeps needs 'write'" in submitted.stderr
    written = clipsweep(data, "submit", str(spec), "--token", tokens["write"], server=server)
    assert written.returncode == 0 and "2 runs queued" in written.stdout, written.stderr
    revoked = clipsweep(data, "token", "revoke", "read")
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    after = clipsweep(data, "list", "--token", tokens["read"], server=server)
    assert after.returncode == 1 and "the server refused the token" in after.stderr
    listing = clipsweep(data, "token", "list")
    assert "revoked" in listing.stdout and tokens["write"] not in listing.stdout + listing.stderr


def test_the_dashboard_signs_in_with_a_token_into_a_cookie_scripts_cannot_read(
        secured: tuple[Server, dict[str, str]], browser: Browser) -> None:
    server, tokens = secured
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    try:
        page.goto(f"{server.url}/")
        page.wait_for_url(f"{server.url}/sign-in?next=%2F")
        page.fill("#token", "cs_not-a-token")
        page.click("button[type=submit]")
        page.wait_for_selector("#sign-in-error:not([hidden])")
        assert "unknown, revoked or expired" in page.inner_text("#sign-in-error")
        page.fill("#token", tokens["write"])
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/")
        page.wait_for_selector("#sweeps tbody tr[data-sweep]")
        [cookie] = context.cookies()
        assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
        assert page.evaluate("document.cookie") == ""  # scripts cannot read it
        # The cookie reads; it never writes, not even for a write token.
        status = page.evaluate("""fetch('/api/v1/sweeps', {method: 'POST', headers: {'content-type':
            'application/json'}, body: '{}'}).then(r => r.status)""")
        assert status == 401
    finally:
        context.close()
    assert [p for p in problems if "401" not in p and "Unauthorized" not in p] == []


def test_a_burst_of_clients_is_served_not_deadlocked(secured: tuple[Server, dict[str, str]]) -> None:
    """150 authenticated requests at once, more than the API has threads and connections: before
    requests waited for a database session in turn (service/api/deps.py), each held a connection
    from its auth check while every thread waited for one, and the burst stalled into 503s."""
    server, tokens = secured

    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=150)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60,
                                     headers={"Authorization": f"Bearer {tokens['write']}"}) as http:
            answers = await asyncio.gather(*(http.get("/api/v1/sweeps") for _ in range(150)))
        return [a.status_code for a in answers]

    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        assert set(thread.submit(asyncio.run, burst()).result()) == {200}
