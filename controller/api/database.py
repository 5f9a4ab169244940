"""The REST API's database work, handed to store threads: the loop that serves requests never runs SQL."""

from collections.abc import Callable, Sequence
from typing import TypeVar

from controller.store import Store
from controller.store_thread import StoreWorker

T = TypeVar("T")

READERS = 2
"""Reading connections: a long read (a page of 2,000 operations, counted) takes one, a small GET the other."""


class ApiDatabase:
    """Reads go to the least busy of a few reading connections, which WAL lets read beside each other and beside a
    writer; writes go to one writing connection, in the order they came. A DELETE of 100,000 device operations then
    holds up neither the loop (`/healthz`) nor a GET, only other writes, which wait for SQLite's lock anyway.

    Used from the API's loop only: the counts of work under way need no lock.
    """

    def __init__(self, readers: Sequence[StoreWorker], writer: StoreWorker) -> None:
        if not readers:
            raise ValueError("the API needs at least one reading connection")
        self._readers = list(readers)
        self._under_way = [0] * len(self._readers)
        self._writer = writer

    async def read(self, work: Callable[[Store], T]) -> T:
        """Run `work`, which only reads, on the least busy reading connection, and return what it returns."""
        chosen = min(range(len(self._readers)), key=self._under_way.__getitem__)
        self._under_way[chosen] += 1
        try:
            return await self._readers[chosen].call(work)
        finally:
            self._under_way[chosen] -= 1

    async def write(self, work: Callable[[Store], T]) -> T:
        """Run `work` on the writing connection, after what was handed to it before, and return what it returns."""
        return await self._writer.call(work)
