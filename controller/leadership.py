"""Which of several `tether serve` replicas leads: ingests statuses, dispatches, times out, paces rollouts and clears.

Every replica serves the whole REST API; the work that must be done once is done by the leader alone. On PostgreSQL
the lead is a session advisory lock held by a connection of its own: the server lets go of it when that connection
ends, however the replica ended (a SIGKILL closes its socket at once). The leader connects to the broker with the
controller's one client id and persistent session, so what the broker queued for the last leader (statuses, and
those delivered but not yet acknowledged) goes to the next one: nothing is lost when the lead moves, on any broker.

A replica that takes the lead waits TAKEOVER_GRACE_S first: a leader whose lock connection the server dropped (a
restart, a network cut) while the process lives notices within CHECK_INTERVAL_S and stops leading before then.
"""

import asyncio
import logging
from typing import Protocol

import psycopg

log = logging.getLogger(__name__)

LEAD_LOCK = int.from_bytes(b"tlead", "big")
"""The advisory lock the leader holds."""
CHECK_INTERVAL_S = 1.0
"""How often the leader checks that its lock connection is alive, and a standby that the lock is free."""
TAKEOVER_GRACE_S = 3 * CHECK_INTERVAL_S
WAKE_CHANNEL = "tether_wake"
"""The channel a replica's writes wake the leader on (LISTEN/NOTIFY): new operations to dispatch, stops to apply."""


class Wakes(Protocol):
    def dispatch(self) -> None: ...
    def supervise(self) -> None: ...


class Leadership(Protocol):
    async def acquire(self) -> None:
        """Return once this process leads."""

    async def lost(self, wakes: Wakes) -> None:
        """Return when this process no longer leads, waking `wakes` meanwhile on what other replicas ask."""

    async def wake(self, what: str) -> None:
        """Ask the leader (whichever replica it is) to `dispatch` or `supervise` now."""

    async def close(self) -> None: ...


class Alone:
    """The only controller of its database (SQLite, or PostgreSQL with the embedded broker): it always leads."""

    async def acquire(self) -> None:
        return

    async def lost(self, wakes: Wakes) -> None:
        await asyncio.Event().wait()

    async def wake(self, what: str) -> None:
        return  # the callers wake this process's own dispatcher and supervisor

    async def close(self) -> None:
        return


class PostgresLeadership:
    """The lead among replicas on one PostgreSQL database."""

    def __init__(self, url: str, check_interval_s: float = CHECK_INTERVAL_S, grace_s: float = TAKEOVER_GRACE_S) -> None:
        self._url = url
        self._check_interval_s = check_interval_s
        self._grace_s = grace_s
        self._lock: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._notifier: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._notifier_lock = asyncio.Lock()

    async def acquire(self) -> None:
        waiting_said = False
        failing: str | None = None
        while True:
            try:
                conn = await self._connect()
                try:
                    while not await self._try_lock(conn):
                        if not waiting_said:
                            log.info("another replica leads: serving the REST API, ready to take over")
                            waiting_said = True
                        await asyncio.sleep(self._check_interval_s)
                    await conn.execute(f"LISTEN {WAKE_CHANNEL}")
                except BaseException:
                    await conn.close()
                    raise
            except psycopg.OperationalError as err:
                failing = self._said_once(failing, err)
                await asyncio.sleep(self._check_interval_s)
                continue
            self._lock = conn
            await asyncio.sleep(self._grace_s)
            log.info("leading: ingesting, dispatching and supervising for every replica")
            return

    async def lost(self, wakes: Wakes) -> None:
        conn = self._lock
        assert conn is not None, "lost() before acquire()"
        try:
            while True:
                async for notice in conn.notifies(timeout=self._check_interval_s):
                    (wakes.supervise if notice.payload == "supervise" else wakes.dispatch)()
                async with asyncio.timeout(self._check_interval_s):
                    await conn.execute("SELECT 1")
        except (psycopg.Error, TimeoutError) as err:
            log.warning("lost the lead (%s): stopped ingesting and dispatching; another replica takes over", _line(err))
        finally:
            self._lock = None
            await conn.close()

    async def wake(self, what: str) -> None:
        """NOTIFY the leader; a failure is only logged: the leader's own sweeps find the work within seconds."""
        async with self._notifier_lock:
            try:
                if self._notifier is None or self._notifier.closed or self._notifier.broken:
                    self._notifier = await self._connect()
                await self._notifier.execute("SELECT pg_notify(%s, %s)", (WAKE_CHANNEL, what))
            except psycopg.Error as err:
                log.warning("could not wake the leading replica (%s); its next sweep finds the work", _line(err))

    async def close(self) -> None:
        for conn in (self._lock, self._notifier):
            if conn is not None:
                await conn.close()

    async def _connect(self) -> "psycopg.AsyncConnection[tuple[object, ...]]":
        from controller.store.postgres import CONNECT_TIMEOUT_S

        return await psycopg.AsyncConnection.connect(self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)

    @staticmethod
    async def _try_lock(conn: "psycopg.AsyncConnection[tuple[object, ...]]") -> bool:
        row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (LEAD_LOCK,))).fetchone()
        return bool(row and row[0])

    def _said_once(self, said: str | None, err: BaseException) -> str:
        from controller.store.postgres import unreachable

        line = unreachable(self._url, err)
        if line != said:
            log.error("%s; retrying to take the lead", line)
        return line


def _line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__
