"""Numbers as people read them: halves round up everywhere, as the dashboard's pct() rounds them."""

from __future__ import annotations

from service.analysis.numbers import percent, percent_range
from service.cli.output import summary_table


def test_2_of_80_is_3_percent_on_every_screen() -> None:
    assert percent(2 / 80) == "3%" and percent(0.5 / 100) == "1%" and percent(0.0) == "0%" and percent(1.0) == "100%"
    assert percent_range(0.004, 0.125) == "0–13"
    cell = {"divergence_rate": 2 / 80, "divergence_ci95": [0.005, 0.087], "lr": 0.1, "clipping": "none",
            "finished": 80, "runs": 80, "diverged": 2, "converged": 0, "median_steps_to_target": None}
    assert "3% [1%-9%]" in summary_table({"cells": [cell], "headline": None})
