"""Numbers as people read them: halves round up everywhere, as the dashboard's pct() rounds them."""

from __future__ import annotations

from service.analysis.numbers import count, duration, percent, percent_range, rate, steps
from service.cli.output import summary_table


def test_2_of_80_is_3_percent_on_every_screen() -> None:
    assert percent(2 / 80) == "3%" and percent(0.5 / 100) == "1%" and percent(0.0) == "0%" and percent(1.0) == "100%"
    assert percent_range(0.004, 0.125) == "0–13"
    cell = {"divergence_rate": 2 / 80, "divergence_ci95": [0.005, 0.087], "lr": 0.1, "clipping": "none",
            "finished": 80, "runs": 80, "diverged": 2, "converged": 0, "median_steps_to_target": None}
    assert "3% [1%-9%]" in summary_table({"cells": [cell], "headline": None})
    # adaptive seeds: the verdict, and why a cell stopped undecided short of `max`
    short = {**cell, "verdict": "undecided", "out_of_reach": True}
    assert "3% [1%-9%] undecided (out of reach)" in summary_table({"cells": [short], "headline": None})
    # a search's probe started ahead on a bet that the probe before it then lost
    ahead = {**cell, "cell_index": 7, "verdict": "undecided", "out_of_reach": False}
    search = {"arms": [{"probes": [{"cell_index": 7, "left_behind": True}, {"cell_index": 3, "left_behind": False}]}]}
    assert "undecided (left behind)" in summary_table({"cells": [ahead], "headline": None, "search": search})
    assert "left behind" not in summary_table({"cells": [{**ahead, "cell_index": 3}], "headline": None,
                                               "search": search})


def test_counts_steps_paces_and_spans_of_time() -> None:
    assert (count(96_000), count(2.5), count(0)) == ("96,000", "3", "0")
    assert (steps(1812.5), steps(2962.0), steps(1_000_000)) == ("1,812.5", "2,962", "1,000,000")
    assert (rate(12_029.4), rate(9.96), rate(0.25)) == ("12,029", "10.0", "0.3")
    assert [duration(s) for s in (0.4, 44.5, 89, 90, 5369, 5400, 9000, 15_000)] == [
        "0 s", "45 s", "89 s", "2 min", "89 min", "1 h 30 min", "2 h 30 min", "4 h 10 min"]


def test_the_cli_table_writes_median_steps_as_the_dashboard_does() -> None:
    cell = {"divergence_rate": 0.0, "divergence_ci95": [0.0, 0.05], "lr": 0.1, "clipping": "none",
            "finished": 80, "runs": 80, "diverged": 0, "converged": 80, "median_steps_to_target": 1812.5}
    assert summary_table({"cells": [cell], "headline": None}).splitlines()[-1].split()[-1] == "1,812.5"
