"""The `api` fixture: the controller's REST API over a fresh database."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.store import Store
from tests.controller.api_harness import Api


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    store = Store(tmp_path / "tether.db")
    yield Api(store, tmp_path / "artifacts")
    store.close()
