"""controller/api/database.py over real store threads and a real database (each engine): which connection does what."""

import asyncio
import threading
from collections.abc import Iterator

import pytest

from controller.api.database import ApiDatabase
from controller.store import Store
from controller.store.database import Database
from controller.store_thread import StoreThread


@pytest.fixture
def threads(database: Database) -> Iterator[list[StoreThread]]:
    opened = [StoreThread(database) for _ in range(3)]
    yield opened
    for thread in opened:
        thread.close()


def connection_of(store: Store) -> int:
    return id(store.conn)


def test_a_read_goes_to_a_reader_that_is_not_busy_while_a_long_read_holds_the_other(
    threads: list[StoreThread],
) -> None:
    database = ApiDatabase(readers=threads[:2], writer=threads[2])
    release = threading.Event()

    def long_read(store: Store) -> int:
        release.wait(10)
        return connection_of(store)

    async def run() -> tuple[int, int, int]:
        held = asyncio.create_task(database.read(long_read))
        await asyncio.sleep(0)  # the long read has taken its reader
        small = await asyncio.wait_for(database.read(connection_of), timeout=5)
        written = await database.write(connection_of)
        release.set()
        return await held, small, written

    long_one, small, written = asyncio.run(run())
    assert len({long_one, small, written}) == 3
