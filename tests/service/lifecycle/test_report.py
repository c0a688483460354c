"""The typed hand-off from the trainers: every RunResult field, nothing missing, nothing extra."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from service.errors import ReportError
from service.lifecycle.report import TrainedRun, parse_report
from tests.factories import trained_run
from tests.trainers.helpers import small_config
from trainers import RunResult, run_seed
from trainers.ray_adapter import result_payload


def payload(**run: Any) -> dict[str, Any]:
    return {"cell_index": 1, "seed": 4, "device": "cpu", "node": "n", "run": run or trained_run()}


def test_the_report_has_exactly_the_fields_of_a_run_result() -> None:
    assert set(TrainedRun.model_fields) == {f.name for f in dataclasses.fields(RunResult)}


def test_what_the_adapter_sends_is_accepted_whole() -> None:
    result = run_seed(small_config(max_steps=6, record_every=2), 0)
    report = parse_report(payload(**result_payload(result)))
    assert report.run.outcome == result.outcome and report.run.steps_done == result.steps_done
    assert report.run.norm_histogram == result.norm_histogram
    assert [list(p) for p in report.run.points] == [[p.step, p.loss, p.grad_norm, p.clipped] for p in result.points]


def test_non_finite_numbers_are_data() -> None:
    report = parse_report(payload(**trained_run("diverged", trigger="nonfinite_grad", max_grad_norm=math.nan,
                                                final_loss=math.inf, points=[[2, math.nan, math.nan, False]])))
    assert math.isnan(report.run.max_grad_norm) and report.run.final_loss == math.inf
    assert report.run.trigger == "nonfinite_grad"


@pytest.mark.parametrize(("change", "named"), [
    (lambda run: run.pop("norm_histogram"), "run.norm_histogram: Field required"),
    (lambda run: run.update(learning_rate=0.1), "run.learning_rate: Extra inputs are not permitted"),
    (lambda run: run.update(outcome="exploded"), "run.outcome"),
    (lambda run: run.update(trigger="boom"), "run.trigger"),
    (lambda run: run.update(points=[[0, 0.1, 1.0]]), "run.points.0"),
])
def test_a_report_that_does_not_fit_is_refused_naming_the_field(change: Any, named: str) -> None:
    run = trained_run()
    change(run)
    with pytest.raises(ReportError, match="the trainer's report does not fit this service") as info:
        parse_report(payload(**run))
    assert named in str(info.value)


def test_a_missing_identity_is_refused_too() -> None:
    broken = payload()
    del broken["seed"]
    with pytest.raises(ReportError, match="seed: Field required"):
        parse_report(broken)
