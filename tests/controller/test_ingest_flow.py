"""Ingest's flow control: reading from the broker pauses while received messages wait to be stored."""

import asyncio
from collections import deque

import pytest

from controller.fastmqtt.codec import Publish
from controller.ingest import Ingest, Received, parse_received, take_batch
from controller.store import Store
from shared.messages import Presence, StatusReport, encode, utc_now
from shared.operations import DeviceStatus, PresenceState
from shared.topics import Topics


def presence(device_id: str) -> Publish:
    payload = encode(Presence(device_id=device_id, state=PresenceState.ONLINE))
    return Publish(Topics().presence(device_id), payload, qos=1, retain=True, dup=False, packet_id=1)


def test_reading_pauses_at_the_high_water_mark_and_resumes_once_enough_is_stored(
    ingest: Ingest, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("controller.ingest.MAX_BATCH", 10)
    monkeypatch.setattr("controller.ingest.HIGH_WATER", 30)
    monkeypatch.setattr("controller.ingest.LOW_WATER", 15)
    link = ingest._link

    async def test() -> None:
        for n in range(29):
            ingest.on_message(presence(f"d{n:02d}"))
        assert not link._reading_paused
        ingest.on_message(presence("d29"))
        assert link._reading_paused  # the 30th waiting message
        for n in range(30, 40):  # what the socket had already delivered is still taken
            ingest.on_message(presence(f"d{n:02d}"))

        running = asyncio.create_task(ingest.run())
        while store.devices.page(limit=1, offset=0).total < 40:  # noqa: ASYNC110 -- written on the store thread
            await asyncio.sleep(0.01)
        running.cancel()
        assert not link._reading_paused

    asyncio.run(asyncio.wait_for(test(), 30))
    assert [d.device_id for d in store.devices.page(online=True, limit=100, offset=0).items] == [
        f"d{n:02d}" for n in range(40)
    ]


def status(device_id: str, command_id: str, state: DeviceStatus) -> Received:
    report = StatusReport(command_id=command_id, device_id=device_id, status=state, timestamp=utc_now())
    message = Publish(
        Topics().status(device_id, command_id), encode(report), qos=1, retain=False, dup=False, packet_id=1
    )
    received = parse_received(Topics(), message)
    assert received is not None
    return received


def test_a_batch_holds_up_to_max_batch_rows_however_many_statuses_change_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("controller.ingest.MAX_BATCH", 2)
    monkeypatch.setattr("controller.ingest.MAX_BATCH_MESSAGES", 5)
    lifecycle = (DeviceStatus.PENDING, DeviceStatus.EXECUTING, DeviceStatus.SUCCESSFUL)
    messages = [status(f"d{n}", f"c{n}", state) for n in range(2) for state in lifecycle]
    messages += [status("d2", "c2", DeviceStatus.PENDING), status("d2", "c3", DeviceStatus.PENDING)]
    waiting = deque(messages)

    first = take_batch(waiting)
    assert first == messages[:4]  # c0's three statuses and c1's first: two rows, stopped at the second
    second = take_batch(waiting)
    assert second == messages[4:7]  # c1's last two and c2: two rows again
    assert take_batch(waiting) == messages[7:]
    assert not waiting


def test_a_batch_holds_max_batch_messages_at_most(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("controller.ingest.MAX_BATCH_MESSAGES", 5)
    repeated = [status("d0", "c0", DeviceStatus.EXECUTING) for _ in range(7)]
    waiting = deque(repeated)
    assert len(take_batch(waiting)) == 5
    assert len(waiting) == 2


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # SQLite's own way to fill a disk
def test_a_batch_that_finds_the_disk_full_is_held_unacknowledged_and_stored_once_there_is_room(
    ingest: Ingest, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("controller.ingest.FULL_RETRY_MAX_S", 0.05)
    writer = ingest._writes._store.conn
    pages = writer.execute("PRAGMA page_count").fetchone()[0]
    writer.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL: no page more
    acknowledged: list[Publish] = []
    monkeypatch.setattr(ingest._link, "ack_all", acknowledged.extend)
    messages = [presence(f"device-{n:03d}") for n in range(300)]

    async def test() -> None:
        for message in messages:
            ingest.on_message(message)
        running = asyncio.create_task(ingest.run())
        await asyncio.sleep(0.5)  # several attempts
        assert acknowledged == []
        assert store.devices.page(limit=1, offset=0).total == 0
        writer.execute("PRAGMA max_page_count = 1073741823")
        while len(acknowledged) < len(messages):  # noqa: ASYNC110 -- acknowledged once stored on the store thread
            await asyncio.sleep(0.01)
        running.cancel()

    asyncio.run(asyncio.wait_for(test(), 30))
    assert acknowledged == messages
    assert store.devices.page(limit=1000, offset=0).total == 300
