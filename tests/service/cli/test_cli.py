"""The CLI against a real server, as a user types it."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from service.spec_rates import Search
from tests.harness import ROOT, Server, free_port

pytestmark = pytest.mark.slow


def clipsweep(*args: str, server: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLIPSWEEP_SERVER_URL": server}
    return subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


def test_submit_wait_shows_progress_then_the_summary_table(server: Server, tmp_path: Path) -> None:
    spec = yaml.safe_load((ROOT / "examples" / "adding-quick.yaml").read_text())
    spec.update(name="cli-wait", seeds=3, budget={"max_steps": 40, "batch_size": 16})
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))

    done = clipsweep("submit", str(path), "--wait", "--poll", "0.2", server=server.url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "12 runs queued" in lines[0]
    assert any(line.startswith("[") and "/12 runs" in line for line in lines)  # the progress bar
    assert any("12/12 runs" in line and "succeeded" in line for line in lines)
    table = [line.split() for line in lines if line.startswith(("0.1 ", "0.5 "))]
    assert [(row[0], row[1]) for row in table] == [
        ("0.1", "none"), ("0.1", "norm(max_norm=1.0)"), ("0.5", "none"), ("0.5", "norm(max_norm=1.0)")]

    sweep_id = lines[0].split()[1]
    status = clipsweep("status", sweep_id, server=server.url)
    assert status.returncode == 0 and "cli-wait" in status.stdout and "divergence [95% CI]" in status.stdout
    # With 3 seeds no rate is stable at 5% (its upper bound cannot get that low); at 90% it is.
    assert "no stable learning rate at 5%" in status.stdout
    lenient = clipsweep("status", sweep_id, "--tolerance", "0.9", server=server.url)
    assert lenient.returncode == 0 and "highest stable lr 0.5" in lenient.stdout, lenient.stdout
    bad = clipsweep("status", sweep_id, "--tolerance", "1.5", server=server.url)
    assert bad.returncode != 0 and "tolerance" in bad.stderr, bad.stderr
    listing = clipsweep("list", server=server.url)
    assert listing.returncode == 0 and "cli-wait" in listing.stdout


def test_the_adding_example_diverges_where_its_header_says(server: Server) -> None:
    """examples/adding-quick.json (the same spec as its YAML): at lr 0.5 most unclipped seeds
    diverge and no clipped one does; at lr 0.1 neither arm diverges."""
    json_spec = (ROOT / "examples" / "adding-quick.json").read_text()
    assert yaml.safe_load(json_spec) == yaml.safe_load((ROOT / "examples" / "adding-quick.yaml").read_text())
    result = clipsweep("submit", str(ROOT / "examples" / "adding-quick.json"), "--wait", server=server.url)
    assert result.returncode == 0, result.stderr
    assert "64 runs queued" in result.stdout
    rows = {(row[0], row[1]): int(row[3]) for row in
            (line.split() for line in result.stdout.splitlines() if line.startswith(("0.1 ", "0.5 ")))}
    assert rows[("0.5", "none")] >= 12
    assert rows[("0.5", "norm(max_norm=1.0)")] == 0
    assert rows[("0.1", "none")] == rows[("0.1", "norm(max_norm=1.0)")] == 0
    # and the answer in a sentence under the table
    assert "norm(max_norm=1.0) cut divergence at lr 0.5 from " in result.stdout


def test_the_search_example_finds_what_its_header_says(server: Server) -> None:
    """examples/frontier-search.yaml: unclipped, the largest grid point below 2/λmax = 0.02;
    clipped, the top of the range; in the runs its header gives, against a 73-seed grid's."""
    path = ROOT / "examples" / "frontier-search.yaml"
    result = clipsweep("submit", str(path), "--wait", server=server.url)
    assert result.returncode == 0, result.stderr
    headline = result.stdout.splitlines()[-1]
    found = re.search(r"highest stable lr (\S+) vs (\S+);", headline)
    runs = re.search(r"it took ([\d,]+) runs, a grid of the same points ([\d,]+)\.$", headline)
    assert found and runs, headline
    points = Search(low=1e-3, high=1.0, ratio=1.25).points()
    assert found.groups() == (f"{max(points):g}", f"{max(p for p in points if p < 0.02):g}"), headline
    header = " ".join(line.lstrip("# ") for line in path.read_text().splitlines() if line.startswith("#"))
    assert (f"Without clipping it finds {found.group(2)}," in header
            and f"with norm clipping at 1.0, {found.group(1)}, the top of the range" in header), (headline, header)
    assert f"It takes {runs.group(1)} runs," in header and "73 seeds each" in header, (headline, header)
    assert f"takes {runs.group(2)}." in header, (headline, header)


def test_a_rejected_spec_prints_each_field_and_exits_non_zero(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("task: {name: adding}\nlearning_rates: [-1]\nseeds: 0\n")
    result = clipsweep("submit", str(path), server=server.url)
    assert result.returncode != 0
    assert "body.learning_rates: every learning rate must be > 0, got -1.0" in result.stderr
    assert "body.seeds: seeds must be >= 1" in result.stderr
    path.write_text("task: {name: mnist}\nlearning_rates: [0.1]\nseeds: 2\n")
    result = clipsweep("submit", str(path), server=server.url)
    assert result.returncode != 0
    assert "body.task.name: unknown task 'mnist'; known: ['adding', " in result.stderr


def test_unparseable_file_is_named(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("task: [unclosed\n")
    result = clipsweep("submit", str(path), server=server.url)
    assert result.returncode != 0 and "broken.yaml is not valid YAML or JSON" in result.stderr


def test_an_unreachable_server_says_how_to_fix_it() -> None:
    result = clipsweep("list", server=f"http://127.0.0.1:{free_port()}")
    assert result.returncode != 0
    assert "cannot reach clipsweep" in result.stderr and "clipsweep serve" in result.stderr


def test_an_unknown_sweep_is_reported(server: Server) -> None:
    result = clipsweep("status", "999999", server=server.url)
    assert result.returncode != 0 and "no sweep with id 999999" in result.stderr


def test_a_bad_setting_names_the_variable_not_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "CLIPSWEEP_DATA_DIR": str(tmp_path), "CLIPSWEEP_MAX_SWEEPS_PER_WORKER": "0",
           "CLIPSWEEP_PORT": "eighty"}
    result = subprocess.run([sys.executable, "-m", "service.cli", "db", "current"], capture_output=True,
                            text=True, env=env, cwd=ROOT, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "CLIPSWEEP_MAX_SWEEPS_PER_WORKER='0': Input should be greater than or equal to 1" in result.stderr
    assert "CLIPSWEEP_PORT='eighty'" in result.stderr


def test_schedule_commands_from_create_to_delete(server: Server, tmp_path: Path) -> None:
    nightly = clipsweep("schedule", "create", str(ROOT / "examples" / "nightly.yaml"), server=server.url)
    assert nightly.returncode == 0, nightly.stderr
    assert "(adding-nightly): At 02:00 every day (Europe/Berlin); next " in nightly.stdout
    assert " CET (" in nightly.stdout or " CEST (" in nightly.stdout
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(yaml.safe_dump({"task": {"name": "quadratic"}, "learning_rates": [0.1], "seeds": 1,
                                    "budget": {"max_steps": 10}}))
    bad = clipsweep("schedule", "create", str(tiny), "--cron", "0 25 * * *", server=server.url)
    assert bad.returncode == 1 and "cron: hour 25 is out of range 0–23" in bad.stderr
    made = clipsweep("schedule", "create", str(tiny), "--cron", "@hourly", "--name", "tiny-hourly", server=server.url)
    assert made.returncode == 0, made.stderr
    schedule_id = made.stdout.split()[1]
    listed = clipsweep("schedule", "list", server=server.url)
    assert "adding-nightly" in listed.stdout and "tiny-hourly" in listed.stdout
    triggered = clipsweep("schedule", "trigger", schedule_id, server=server.url)
    assert triggered.returncode == 0 and "manual, sweep " in triggered.stdout, triggered.stderr
    assert "paused" in clipsweep("schedule", "pause", schedule_id, server=server.url).stdout
    shown = clipsweep("schedule", "show", schedule_id, server=server.url)
    assert "paused" in shown.stdout and "manual" in shown.stdout, shown.stderr
    assert "enabled, next " in clipsweep("schedule", "resume", schedule_id, server=server.url).stdout
    deleted = clipsweep("schedule", "delete", schedule_id, server=server.url)
    assert deleted.returncode == 0 and "deleted; its sweeps stay" in deleted.stdout
    gone = clipsweep("schedule", "show", schedule_id, server=server.url)
    assert gone.returncode == 1 and f"no schedule with id {schedule_id}" in gone.stderr
    log = server.log()  # writes are in the access log, successful reads (the dashboard's polling) are not
    assert '"POST /api/v1/schedules HTTP/1.1" 201' in log and '"GET /api/v1/schedules HTTP/1.1" 200' not in log
    # The nightly one would train on this shared server if the suite ran past 02:00 in Berlin.
    assert clipsweep("schedule", "delete", nightly.stdout.split()[1], server=server.url).returncode == 0


def test_on_a_terminal_the_wait_is_a_live_bar_with_a_rate_and_an_eta(server: Server, tmp_path: Path) -> None:
    spec = tmp_path / "tiny.yaml"
    # 16 one-seed trials, two at a time: results land in several writes, so the bar moves several
    # times and has a pace (rich estimates it from the bar's own advances).
    spec.write_text("name: cli-live\ntask: {name: quadratic}\nlearning_rates: [0.001, 0.002, 0.003, 0.004]\n"
                    "seeds: 2\nbudget: {max_steps: 3000}\nresources: {max_seeds_per_trial: 1}\n")
    controller, terminal = pty.openpty()  # a real terminal for the CLI: isatty() is true
    env = {**os.environ, "CLIPSWEEP_SERVER_URL": server.url, "COLUMNS": "160", "TERM": "xterm"}
    process = subprocess.Popen([sys.executable, "-m", "service.cli", "submit", str(spec), "--wait", "--poll", "0.2"],
                               stdin=terminal, stdout=terminal, stderr=terminal, env=env, cwd=ROOT)
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the CLI exited and closed its end
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    assert process.wait(timeout=120) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode(errors="replace"))  # colours and cursor moves
    assert "sweep " in text and "16/16 runs" in text and "100%" in text, text
    # The pace and the time left, as the dashboard writes them, while it trained.
    assert re.search(r"[\d,.]+ steps/s", text) and re.search(r"about \d+ (s|min) left", text), text
    assert "succeeded" in text and "lr" in text  # the bar's last state, then the summary table
