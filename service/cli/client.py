"""A small client of the HTTP API, used by the CLI (the CLI never touches the database)."""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(RuntimeError):
    """The API refused a request or could not be reached; the message says what to do."""


class Client:
    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(f"cannot reach clipsweep at {self.base_url} ({exc}); start it with "
                           "`clipsweep serve`, or point --server / CLIPSWEEP_SERVER_URL at it") from exc
        if response.status_code == 422:
            lines = [f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in response.json()["detail"]]
            raise ApiError("the sweep spec was rejected:\n" + "\n".join(lines))
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            raise ApiError(f"{method} {path} failed with HTTP {response.status_code}: {detail}")
        return response.json()

    def submit(self, spec: Any) -> dict[str, Any]:
        return self._request("POST", "/api/v1/sweeps", json=spec)

    def sweep(self, sweep_id: int) -> dict[str, Any]:
        return self._request("GET", f"/api/v1/sweeps/{sweep_id}")

    def summary(self, sweep_id: int, tolerance: float = 0.05) -> dict[str, Any]:
        return self._request("GET", f"/api/v1/sweeps/{sweep_id}/summary", params={"tolerance": tolerance})

    def sweeps(self, limit: int = 20, offset: int = 0) -> dict[str, Any]:
        return self._request("GET", "/api/v1/sweeps", params={"limit": limit, "offset": offset})

    def cancel(self, sweep_id: int) -> dict[str, Any]:
        return self._request("POST", f"/api/v1/sweeps/{sweep_id}/cancel")
