"""The lead among replicas (controller/leadership.py) on a real PostgreSQL: one holder at a time, handed on when the
holder's connection ends, lost by a holder whose server restarted, and woken through NOTIFY."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import psycopg
import pytest

from controller.leadership import LEAD_LOCK, WAKE_CHANNEL, PostgresLeadership
from tests.fixtures_postgres import PostgresDatabase, PostgresServer

CHECK_S = 0.1
GRACE_S = 0.3


class Woken:
    def __init__(self, expected: int = 0) -> None:
        self.seen: list[str] = []
        self.all_seen = asyncio.Event()
        self._expected = expected

    def dispatch(self) -> None:
        self._saw("dispatch")

    def supervise(self) -> None:
        self._saw("supervise")

    def _saw(self, what: str) -> None:
        self.seen.append(what)
        if len(self.seen) >= self._expected:
            self.all_seen.set()


@asynccontextmanager
async def three(url: str) -> AsyncIterator[list[PostgresLeadership]]:
    made = [PostgresLeadership(url, CHECK_S, GRACE_S) for _ in range(3)]
    try:
        yield made
    finally:
        for leadership in made:
            await leadership.close()


def run(url: str, test: Callable[[list[PostgresLeadership]], Awaitable[None]]) -> None:
    async def main() -> None:
        async with three(url) as replicas:
            await test(replicas)

    asyncio.run(main())


def holders(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND granted",
            (LEAD_LOCK & 0xFFFFFFFF,),
        ).fetchall()
    return [pid for (pid,) in rows]


def test_one_leads_the_others_wait_and_the_next_leads_once_its_connection_ends(
    postgres_database: PostgresDatabase,
) -> None:
    async def test(replicas: list[PostgresLeadership]) -> None:
        first, second, _ = replicas
        await asyncio.wait_for(first.acquire(), 5)
        waiting = asyncio.create_task(second.acquire())
        await asyncio.sleep(5 * CHECK_S)
        assert not waiting.done()
        assert len(holders(postgres_database.url)) == 1

        losing = asyncio.create_task(first.lost(Woken()))
        (pid,) = holders(postgres_database.url)
        with psycopg.connect(postgres_database.url, autocommit=True) as admin:  # as if the replica's process died
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        await asyncio.wait_for(losing, 5)
        await asyncio.wait_for(waiting, 5)
        assert len(holders(postgres_database.url)) == 1
        assert holders(postgres_database.url) != [pid]

    run(postgres_database.url, test)


def test_the_leader_is_woken_by_any_replica_through_the_database(postgres_database: PostgresDatabase) -> None:
    async def test(replicas: list[PostgresLeadership]) -> None:
        leader, standby, _ = replicas
        await asyncio.wait_for(leader.acquire(), 5)
        woken = Woken(expected=3)
        listening = asyncio.create_task(leader.lost(woken))
        await standby.wake("dispatch")
        await standby.wake("supervise")
        await leader.wake("dispatch")  # the leader's own API asks the same way

        await asyncio.wait_for(woken.all_seen.wait(), 5)
        assert sorted(woken.seen) == ["dispatch", "dispatch", "supervise"]
        listening.cancel()

    run(postgres_database.url, test)


def test_a_hostile_notification_on_the_wake_channel_only_wakes_the_dispatcher(
    postgres_database: PostgresDatabase,
) -> None:
    """Anyone who may log in to the database may NOTIFY: junk, or the largest payload PostgreSQL allows, is a wake-up
    of the dispatcher (which then finds nothing to do) and nothing more; the leader keeps leading."""

    async def test(replicas: list[PostgresLeadership]) -> None:
        leader, _, _ = replicas
        await asyncio.wait_for(leader.acquire(), 5)
        woken = Woken(expected=3)
        listening = asyncio.create_task(leader.lost(woken))
        async with await psycopg.AsyncConnection.connect(postgres_database.url, autocommit=True) as stranger:
            for payload in ("", "DROP TABLE operations", "x" * 7999):
                await stranger.execute("SELECT pg_notify(%s, %s)", (WAKE_CHANNEL, payload))
        await asyncio.wait_for(woken.all_seen.wait(), 5)
        assert woken.seen == ["dispatch"] * 3
        await asyncio.sleep(3 * CHECK_S)
        assert not listening.done()  # still leading
        listening.cancel()

    run(postgres_database.url, test)


def test_a_leader_whose_server_restarts_stops_leading_and_one_leads_again_after(
    postgres_server: PostgresServer, postgres_database: PostgresDatabase
) -> None:
    async def test(replicas: list[PostgresLeadership]) -> None:
        leader, standby, _ = replicas
        await asyncio.wait_for(leader.acquire(), 5)
        losing = asyncio.create_task(leader.lost(Woken()))
        waiting = asyncio.create_task(standby.acquire())
        await asyncio.to_thread(postgres_server.stop, "immediate")
        await asyncio.wait_for(losing, 5)  # it knows within a check, with the server still down
        assert not waiting.done()
        await asyncio.to_thread(postgres_server.start)
        await asyncio.wait_for(waiting, 15)
        assert len(holders(postgres_database.url)) == 1

    run(postgres_database.url, test)


def test_a_wake_while_the_server_is_down_is_only_logged(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture, postgres_database: PostgresDatabase
) -> None:
    async def test(replicas: list[PostgresLeadership]) -> None:
        _, standby, _ = replicas
        await asyncio.to_thread(postgres_server.stop, "fast")
        await standby.wake("dispatch")
        assert "could not wake the leading replica" in caplog.text
        await asyncio.to_thread(postgres_server.start)

    run(postgres_database.url, test)
