"""A connection to the database on a thread of its own: one for the writes of status ingest and dispatch, one for
resolving operations (controller/scheduler.py).

The event loop receives, decodes and publishes; storing a batch of statuses or of dispatched commands happens here
meanwhile. SQLite runs without the GIL during each statement's step (controller/store/one_step), so the two overlap
on a 2-core machine instead of taking turns on the loop.
"""

import asyncio
import contextvars
import functools
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, TypeVar

from controller.errors import StorageUnavailable
from controller.store import Store
from controller.store.database import Database

log = logging.getLogger(__name__)

T = TypeVar("T")


class StoreWorker(Protocol):
    """Runs work on the store it owns (`StoreThread`), one piece at a time."""

    async def call(self, work: Callable[[Store], T]) -> T: ...


class StoreThread:
    """Work runs one piece at a time, in the order it is handed over, each with the caller's logging context."""

    def __init__(self, database: Database | Path | str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tether-store")
        self._store = Store(database)

    async def call(self, work: Callable[[Store], T]) -> T:
        """Run `work` on the thread and return what it returns (or raise what it raises)."""
        return await asyncio.wrap_future(self._submit(work))

    def submit(self, work: Callable[[Store], object]) -> None:
        """Run `work` on the thread without waiting for it; a failure is logged."""
        self._submit(work).add_done_callback(_log_failure)

    def close(self) -> None:
        """Finish what was handed over, then close the connection."""
        self._executor.shutdown(wait=True)
        self._store.close()

    def _submit(self, work: Callable[[Store], T]) -> "Future[T]":
        return self._executor.submit(functools.partial(contextvars.copy_context().run, work, self._store))


def _log_failure(done: "Future[object]") -> None:
    # A full disk is logged once, when it fills (controller/store/space.py), an unreachable database once as it goes
    # (controller/store/postgres.py); what failed for either is retried later.
    if not done.cancelled() and (error := done.exception()) is not None and not isinstance(error, StorageUnavailable):
        log.error("a store write failed: %s", error, exc_info=error)
