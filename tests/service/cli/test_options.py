"""What the CLI checks itself, before it sends anything: option ranges (a bad --tolerance must not
cost a sweep's training first), and spec files read with YAML 1.2's numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from service.cli import main
from service.cli.common import load_file


@pytest.mark.parametrize("args, says", [
    (["submit", "SPEC", "--wait", "--tolerance", "5"], "Invalid value for '--tolerance'"),
    (["submit", "SPEC", "--poll", "0"], "Invalid value for '--poll'"),
    (["status", "1", "--tolerance", "0"], "Invalid value for '--tolerance'"),
    (["compare", "2", "1", "--alpha", "1.5"], "Invalid value for '--alpha'"),
    (["alerts", "--state", "opened"], "Invalid value for '--state'"),
])
def test_a_bad_option_is_refused_before_any_request(tmp_path: Path, args: list[str], says: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("task: {name: adding}\nlearning_rates: [0.1]\nseeds: 2\n")
    # No server listens at this address: an answer about the option proves nothing was sent.
    result = CliRunner().invoke(main, [a.replace("SPEC", str(spec)) for a in args],
                                env={"CLIPSWEEP_SERVER_URL": "http://127.0.0.1:9"})
    assert result.exit_code == 2 and says in result.output, result.output


def test_spec_files_read_numbers_as_yaml_1_2_does(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text('loss_factor: 1.0e10\nlr: 1e-3\nsteps: 1_000\nquoted: "1e5"\nname: e10\n')
    assert load_file(path) == {"loss_factor": 1e10, "lr": 0.001, "steps": 1000, "quoted": "1e5", "name": "e10"}
