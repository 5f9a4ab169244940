"""Fixtures: `api` (the controller's REST API over a fresh database), `database` (on each engine), `store` on it, and
`ingest` on that store."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.dispatcher import ArtifactSettings, Dispatcher
from controller.ingest import Ingest
from controller.mqtt_link import MqttLink
from controller.signing_keys import SigningKeys
from controller.signing_worker import SigningWorker
from controller.store import Store
from controller.store.database import Database
from controller.store_thread import StoreThread
from shared.topics import Topics
from shared.transport import BrokerUrl
from tests.controller.api_harness import Api


@pytest.fixture
def api(database: Database, tmp_path: Path) -> Iterator[Api]:
    """The REST API on a store of its own over the test's `database` (each engine)."""
    store = Store(database)
    yield Api(store, tmp_path / "artifacts")
    store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The test's own empty database, once on each engine: a SQLite file, and a database of the session's private
    PostgreSQL (tests/fixtures_postgres.py)."""
    if request.param == "sqlite":
        opened = Database(tmp_path / "tether.db")
    else:
        opened = Database(request.getfixturevalue("postgres_database").url)
    yield opened
    opened.close()


@pytest.fixture
def store(database: Database) -> Iterator[Store]:
    opened = Store(database)
    yield opened
    opened.close()


@pytest.fixture
def ingest(store: Store, tmp_path: Path) -> Iterator[Ingest]:
    """A real ingest on a real store; its link is never connected (nothing parsed here reaches the broker)."""
    link = MqttLink(BrokerUrl.parse("mqtt://127.0.0.1:1"), identifier="hostile", subscriptions=[], on_message=bool)
    signing = SigningWorker(SigningKeys(tmp_path / "keys").signer())  # never started: nothing here is dispatched
    writes = StoreThread(store.database)
    artifacts = ArtifactSettings("http://127.0.0.1:1", 1000)
    yield Ingest(writes, Topics(), Dispatcher(store, writes, link, Topics(), artifacts, signing), link)
    writes.close()
