"""Ingest's flow control: reading from the broker pauses while received messages wait to be stored."""

import asyncio

import pytest

from controller.fastmqtt.codec import Publish
from controller.ingest import Ingest
from controller.store import Store
from shared.messages import Presence, encode
from shared.operations import PresenceState
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
        while store.list_devices(limit=1, offset=0).total < 40:  # noqa: ASYNC110 -- written on the store thread
            await asyncio.sleep(0.01)
        running.cancel()
        assert not link._reading_paused

    asyncio.run(asyncio.wait_for(test(), 30))
    assert [d.device_id for d in store.list_devices(online=True, limit=100, offset=0).items] == [
        f"d{n:02d}" for n in range(40)
    ]
