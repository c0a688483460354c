"""A sweep's runs, series and exports over HTTP, in this process, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import math
from typing import Any

import pyarrow.parquet as pq
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import hand_made_sweep


def test_runs_are_listed_in_grid_order_with_filters(api: TestClient, session_factory: sessionmaker[Session]) -> None:
    base = f"/api/v1/sweeps/{hand_made_sweep(session_factory)}/runs"

    def keys(params: Any) -> list[tuple[int, int]]:
        return [(r["cell_index"], r["seed"]) for r in api.get(base, params=params).json()["items"]]

    everything = api.get(base).json()
    assert everything["total"] == 12 and keys({}) == [(c, s) for c in range(4) for s in range(3)]
    run = everything["items"][6]
    assert (run["lr"], run["clipping"], run["outcome"], run["trigger"]) == (0.5, "none", "diverged", "loss_explosion")
    assert (run["device"], run["node"], run["attempts"]) == ("cpu", "test", 0)
    assert keys({"outcome": "diverged", "lr": 0.5, "clipping": "none"}) == [(2, 0), (2, 1), (2, 2)]
    assert keys([("outcome", "converged"), ("outcome", "pending")]) == [(1, 0), (1, 1), (3, 1), (3, 2)]
    assert keys({"clipping": "norm(max_norm=1.0)", "cell": 3}) == [(3, 0), (3, 1), (3, 2)]
    assert keys({"limit": 2, "offset": 5}) == [(1, 2), (2, 0)]


def test_a_filter_the_sweep_cannot_match_is_a_422_saying_what_it_has(
        api: TestClient, session_factory: sessionmaker[Session]) -> None:
    base = f"/api/v1/sweeps/{hand_made_sweep(session_factory)}"
    bad = api.get(f"{base}/runs", params={"lr": 0.3})
    assert bad.status_code == 422
    assert bad.json()["detail"] == [{"loc": ["query", "lr"], "type": "value_error",
                                     "msg": "the sweep has no learning rate 0.3; it has [0.1, 0.5]"}]
    assert api.get(f"{base}/runs", params={"clipping": "norm"}).json()["detail"][0]["loc"] == ["query", "clipping"]
    assert api.get(f"{base}/runs", params={"cell": 9}).json()["detail"][0]["loc"] == ["query", "cell"]
    assert api.get(f"{base}/runs", params={"outcome": "exploded"}).status_code == 422
    assert api.get(f"{base}/cells/9/series").json()["detail"] == [{
        "loc": ["path", "cell_index"], "type": "value_error", "msg": "the sweep has no cell 9; its cells are 0 to 3"}]
    assert api.get(f"{base}/cells/-1/series").status_code == 422


def test_a_cells_series_and_a_runs_points(api: TestClient, session_factory: sessionmaker[Session]) -> None:
    sweep_id = hand_made_sweep(session_factory)
    series = api.get(f"/api/v1/sweeps/{sweep_id}/cells/2/series").json()
    assert (series["lr"], series["clipping"], series["clip_method"], series["clip_params"]) == (0.5, "none", "none", {})
    assert [r["seed"] for r in series["runs"]] == [0, 1, 2]
    explosion, nan_grad, nan_loss = series["runs"]
    assert (explosion["steps"], explosion["grad_norm"], explosion["diverged_at_step"]) == ([0, 5], [2.0, None], 5)
    assert nan_grad["grad_norm"] == [2.0, "NaN"] and nan_loss["loss"] == [0.3, "NaN"]
    points = api.get(f"/api/v1/runs/{nan_grad['run_id']}/points").json()
    assert {k: points[k] for k in ("steps", "loss", "grad_norm", "clipped")} == {
        k: nan_grad[k] for k in ("steps", "loss", "grad_norm", "clipped")}
    norm_cell = api.get(f"/api/v1/sweeps/{sweep_id}/cells/3/series").json()
    assert norm_cell["clip_params"] == {"max_norm": 1.0, "norm_type": 2}
    assert [r["outcome"] for r in norm_cell["runs"]] == ["unconverged", None, None]


def test_a_run_carries_its_stored_config_and_the_python_that_trains_it_again(
        api: TestClient, session_factory: sessionmaker[Session]) -> None:
    sweep_id = hand_made_sweep(session_factory)
    run = api.get(f"/api/v1/sweeps/{sweep_id}/runs", params={"cell": 3, "limit": 1}).json()["items"][0]
    detail = api.get(f"/api/v1/runs/{run['id']}").json()
    assert (detail["sweep_id"], detail["sweep_name"], detail["seed"]) == (sweep_id, "store-test", 0)
    assert detail["config"]["lr"] == 0.5 and detail["config"]["clipping"] == {
        "method": "norm", "params": {"max_norm": 1.0, "norm_type": 2}}
    assert detail["max_grad_norm"] == 12.0 and detail["initial_loss"] == 0.3
    assert "TrainConfig.from_dict(json.loads(" in detail["reproduce"]
    assert "run_seed(config, seed=0)" in detail["reproduce"]


def test_export_streams_csv_and_parquet(api: TestClient, session_factory: sessionmaker[Session]) -> None:
    sweep_id = hand_made_sweep(session_factory)
    base = f"/api/v1/sweeps/{sweep_id}/export"
    runs = api.get(base)
    assert runs.status_code == 200 and runs.headers["content-type"].startswith("text/csv")
    assert runs.headers["content-disposition"] == f'attachment; filename="sweep-{sweep_id}-runs.csv"'
    assert len(runs.text.splitlines()) == 1 + 12
    points = api.get(base, params={"format": "parquet", "include": "points"})
    assert points.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(points.content))
    norms = table.column("grad_norm").to_pylist()
    assert table.num_rows == 20 and sum(v is not None and math.isnan(v) for v in norms) == 1 and norms.count(None) == 2
    assert api.get(base, params={"format": "xlsx"}).status_code == 422
    assert api.get(base, params={"include": "everything"}).status_code == 422
