"""The API tests run on SQLite. PostgreSQL sees every request of the API too: the migration test
replays a whole 0004 database through it there (tests/service/db/), and the layers under the API
(lifecycle/, queries/, analysis/) run on both."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
