"""A small client of the HTTP API, used by the CLI (the CLI never touches the database)."""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(RuntimeError):
    """The API refused a request or could not be reached; the message says what to do."""


class Client:
    """The API at `base_url`, with `token` as its Bearer token if given."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers)
        self.has_token = bool(token)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(f"cannot reach clipsweep at {self.base_url} ({exc}); start it with "
                           "`clipsweep serve`, or point --server / CLIPSWEEP_SERVER_URL at it") from exc
        if response.status_code == 401:
            raise ApiError(
                ("the server refused the token: " if self.has_token else "the server needs an API token: ")
                + f"{self._detail(response)}. Ask its admin for one (`clipsweep token create --name NAME --scopes "
                "read,write` on the server) and pass it with --token or CLIPSWEEP_TOKEN")
        if response.status_code == 403:
            raise ApiError(f"not allowed: {self._detail(response)}")
        if response.status_code == 429:
            raise ApiError(f"{self._detail(response)} (the server asks to wait "
                           f"{response.headers.get('retry-after', 'a while')} s)")
        if response.status_code == 422:
            lines = [f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in response.json()["detail"]]
            what = "the sweep spec was" if path == "/api/v1/sweeps" else f"{method} {path} was"
            raise ApiError(f"{what} rejected:\n" + "\n".join(lines))
        if response.status_code >= 400:
            raise ApiError(f"{method} {path} failed with HTTP {response.status_code}: {self._detail(response)}")
        return response.json() if response.content else None

    @staticmethod
    def _detail(response: httpx.Response) -> Any:
        try:
            return response.json().get("detail")
        except ValueError:
            return response.text

    def submit(self, spec: Any) -> dict[str, Any]:
        return self._request("POST", "/api/v1/sweeps", json=spec)

    def plan(self, spec: Any, params: dict[str, float]) -> dict[str, Any]:
        return self._request("POST", "/api/v1/sweeps/plan", json=spec, params=params)

    def sweep(self, sweep_id: int) -> dict[str, Any]:
        return self._request("GET", f"/api/v1/sweeps/{sweep_id}")

    def summary(self, sweep_id: int, tolerance: float = 0.05) -> dict[str, Any]:
        return self._request("GET", f"/api/v1/sweeps/{sweep_id}/summary", params={"tolerance": tolerance})

    def sweeps(self, limit: int = 20, offset: int = 0) -> dict[str, Any]:
        return self._request("GET", "/api/v1/sweeps", params={"limit": limit, "offset": offset})

    def cancel(self, sweep_id: int) -> dict[str, Any]:
        return self._request("POST", f"/api/v1/sweeps/{sweep_id}/cancel")

    def create_schedule(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", "/api/v1/schedules", json=body)

    def schedules(self, limit: int = 50) -> dict[str, Any]:
        return self._request("GET", "/api/v1/schedules", params={"limit": limit})

    def schedule(self, schedule_id: int) -> dict[str, Any]:
        return self._request("GET", f"/api/v1/schedules/{schedule_id}")

    def change_schedule(self, schedule_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        return self._request("PATCH", f"/api/v1/schedules/{schedule_id}", json=changes)

    def delete_schedule(self, schedule_id: int) -> None:
        self._request("DELETE", f"/api/v1/schedules/{schedule_id}")

    def trigger(self, schedule_id: int) -> dict[str, Any]:
        return self._request("POST", f"/api/v1/schedules/{schedule_id}/trigger")

    def fires(self, schedule_id: int, limit: int = 10) -> dict[str, Any]:
        return self._request("GET", f"/api/v1/schedules/{schedule_id}/sweeps", params={"limit": limit})

    def alerts(self, **filters: Any) -> dict[str, Any]:
        return self._request("GET", "/api/v1/alerts", params={k: v for k, v in filters.items() if v is not None})

    def acknowledge(self, alert_id: int) -> dict[str, Any]:
        return self._request("POST", f"/api/v1/alerts/{alert_id}/acknowledge")

    def compare(self, sweep_id: int, baseline_id: int, **thresholds: Any) -> dict[str, Any]:
        return self._request("GET", f"/api/v1/sweeps/{sweep_id}/compare/{baseline_id}",
                             params={k: v for k, v in thresholds.items() if v is not None})

    def add_webhook(self, schedule_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", f"/api/v1/schedules/{schedule_id}/webhooks", json=body)

    def webhooks(self, schedule_id: int) -> list[dict[str, Any]]:
        return self._request("GET", f"/api/v1/schedules/{schedule_id}/webhooks")

    def delete_webhook(self, schedule_id: int, webhook_id: int) -> None:
        self._request("DELETE", f"/api/v1/schedules/{schedule_id}/webhooks/{webhook_id}")

    def deliveries(self, schedule_id: int, webhook_id: int, limit: int = 20) -> dict[str, Any]:
        return self._request("GET", f"/api/v1/schedules/{schedule_id}/webhooks/{webhook_id}/deliveries",
                             params={"limit": limit})
