"""The fast MQTT client against real brokers: pipelined QoS 1, retained messages, wills, many subscriptions, acks."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from controller.fastmqtt.client import ConnectionLost, FastClient
from controller.fastmqtt.codec import Publish, Will
from tests.fixtures_brokers import free_port


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 60))


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("mqtt://").rsplit(":", 1)
    return host, int(port)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Publish] = []
        self._changed = asyncio.Event()

    def __call__(self, message: Publish) -> None:
        self.messages.append(message)
        self._changed.set()

    async def until(self, count: int) -> list[Publish]:
        while len(self.messages) < count:
            self._changed.clear()
            await self._changed.wait()
        return self.messages


def test_seventy_thousand_pipelined_publishes_arrive_once_each_and_in_order(mosquitto_url: str) -> None:
    """More than the 65,535 packet ids: they are reused once acknowledged. (The embedded amqtt broker, in this
    test's own process, takes 25 s for as many: its size is measured by bench/, not here.)"""
    count = 70_000

    async def test() -> None:
        inbox = Inbox()
        host, port = address(mosquitto_url)
        async with (
            await FastClient.connect(host, port, "reader", on_message=inbox) as reader,
            await FastClient.connect(host, port, "writer", max_inflight=5000) as writer,
        ):
            await reader.subscribe(["load/#"])
            await writer.publish_many((f"load/{n % 7}", str(n).encode()) for n in range(count))
            received = await inbox.until(count)
        assert [int(m.payload) for m in received] == list(range(count))
        assert {m.qos for m in received} == {1}

    run(test)


def test_retained_messages_reach_later_subscribers_until_cleared(broker_url: str) -> None:
    async def test() -> None:
        host, port = address(broker_url)
        async with await FastClient.connect(host, port, "writer") as writer:
            await writer.publish_many([("keep/a", b"one"), ("keep/b", b"two")], retain=True)
            await writer.publish_many([("keep/b", b"")], retain=True)  # cleared
        inbox = Inbox()
        async with await FastClient.connect(host, port, "late", on_message=inbox) as late:
            await late.subscribe(["keep/+"])
            (only,) = await inbox.until(1)
            await asyncio.sleep(0.3)
        assert (only.topic, only.payload, only.retain) == ("keep/a", b"one", True)
        assert len(inbox.messages) == 1

    run(test)


def test_thousands_of_subscriptions_in_batches(broker_url: str) -> None:
    async def test() -> None:
        inbox = Inbox()
        host, port = address(broker_url)
        topics = [f"dev/d{n}/commands/+" for n in range(2500)]
        async with (
            await FastClient.connect(host, port, "many", on_message=inbox) as many,
            await FastClient.connect(host, port, "writer") as writer,
        ):
            await many.subscribe(topics)
            await writer.publish_many((f"dev/d{n}/commands/c", b"x") for n in range(0, 2500, 5))
            await writer.publish_many([("dev/other/commands/c", b"not mine")])
            received = await inbox.until(500)
            await asyncio.sleep(0.3)
        assert sorted(m.topic for m in received) == sorted(f"dev/d{n}/commands/c" for n in range(0, 2500, 5))

    run(test)


def test_an_aborted_connection_leaves_its_will(broker_url: str) -> None:
    async def test() -> None:
        inbox = Inbox()
        host, port = address(broker_url)
        async with await FastClient.connect(host, port, "watcher", on_message=inbox) as watcher:
            await watcher.subscribe(["presence/#"])
            doomed = await FastClient.connect(host, port, "doomed", will=Will("presence/doomed", b"offline", 1, False))
            doomed.abort()
            (will,) = await inbox.until(1)
            polite = await FastClient.connect(host, port, "polite", will=Will("presence/polite", b"offline", 1, False))
            await polite.close()
            await asyncio.sleep(0.5)
        assert (will.topic, will.payload) == ("presence/doomed", b"offline")
        assert len(inbox.messages) == 1  # a clean DISCONNECT leaves no will

    run(test)


def test_unacknowledged_messages_come_again_to_a_persistent_session(mosquitto_url: str) -> None:
    async def test() -> None:
        host, port = address(mosquitto_url)
        inbox = Inbox()
        first = await FastClient.connect(host, port, "keeper", on_message=inbox, auto_ack=False, clean_session=False)
        await first.subscribe(["held/#"])
        async with await FastClient.connect(host, port, "writer") as writer:
            await writer.publish_many([("held/1", b"a"), ("held/2", b"b"), ("held/3", b"c")])
        one, two, _unacknowledged = await inbox.until(3)
        first.ack(one.packet_id)
        first.ack_many([two.packet_id, 0])  # 0: a QoS 0 message's, nothing to acknowledge
        await asyncio.sleep(0.2)
        first.abort()
        again = Inbox()
        async with await FastClient.connect(host, port, "keeper", on_message=again, clean_session=False) as second:
            assert second.session_present
            (redelivered,) = await again.until(1)
            await asyncio.sleep(0.3)
        assert (redelivered.topic, redelivered.payload, redelivered.dup) == ("held/3", b"c", True)
        assert len(again.messages) == 1

    run(test)


def test_a_closed_port_and_a_lost_connection_raise_connection_lost(broker_url: str) -> None:
    async def test() -> None:
        with pytest.raises(ConnectionLost, match="cannot connect"):
            await FastClient.connect("127.0.0.1", free_port(), "nobody")
        host, port = address(broker_url)
        client = await FastClient.connect(host, port, "short-lived")
        await client.close()
        with pytest.raises(ConnectionLost, match="closed by this client"):
            await client.publish("x", b"y")

    run(test)


@contextlib.asynccontextmanager
async def subscribed_pair(
    url: str, name: str, topics: str, max_inflight: int
) -> AsyncIterator[tuple[Inbox, FastClient]]:
    """A reader subscribed to `topics`, its inbox, and a writer with `max_inflight` messages in flight at most."""
    host, port = address(url)
    inbox = Inbox()
    async with (
        await FastClient.connect(host, port, f"reader-{name}", on_message=inbox) as reader,
        await FastClient.connect(host, port, f"writer-{name}", max_inflight=max_inflight) as writer,
    ):
        await reader.subscribe([topics])
        yield inbox, writer


def test_batches_in_flight_resolve_as_the_broker_acknowledges_them_or_fail_with_the_connection(broker_url: str) -> None:
    async def test() -> None:
        host, port = address(broker_url)
        async with subscribed_pair(broker_url, "batch", "batch/#", 100) as (inbox, writer):
            batches = [
                await writer.publish_batch([(f"batch/{b}", f"{n}".encode()) for n in range(300)]) for b in range(4)
            ]
            await asyncio.gather(*batches)
            assert len(await inbox.until(1200)) == 1200
            assert (await writer.publish_batch([])).done()

        doomed = await FastClient.connect(host, port, "doomed", max_inflight=10)
        pending = await doomed.publish_batch([("batch/x", b"1")] * 5)
        doomed.abort()
        with pytest.raises(ConnectionLost):
            await pending

    run(test)


def test_a_batch_larger_than_the_window_resolves_once_every_message_is_acknowledged(broker_url: str) -> None:
    """publish_batch waits for room while it queues; acknowledgements of the batch's first messages arriving
    meanwhile must not resolve it early (nor, later, a second time, which killed the connection)."""

    async def test() -> None:
        async with subscribed_pair(broker_url, "big", "big/#", 5) as (inbox, writer):
            for round_ in range(3):
                done = await writer.publish_batch([(f"big/{round_}", f"{n}".encode()) for n in range(400)])
                await done
                assert not writer._unacked  # resolved only when nothing is left in flight
                assert not writer._backlog
            await writer.flush()
            assert not writer.closed.done()
            assert len(await inbox.until(1200)) == 1200

    run(test)


def test_a_batch_its_publisher_stopped_waiting_for_is_acknowledged_without_harm(broker_url: str) -> None:
    """A leader's term that ends cancels its publisher's wait: the broker's acknowledgements arriving after it set the
    cancelled batch's result, which raised in the reader and closed the connection (seen under a PostgreSQL
    restart that cost the lead)."""

    async def test() -> None:
        async with subscribed_pair(broker_url, "gone", "gone/#", 100) as (inbox, writer):
            abandoned = await writer.publish_batch([(f"gone/{n}", b"x") for n in range(200)])
            waiting = asyncio.ensure_future(abandoned)
            await asyncio.sleep(0)
            waiting.cancel()
            assert len(await inbox.until(200)) == 200
            await writer.flush()
            await writer.publish_many([("gone/after", b"y")])  # the connection lives on
            assert not writer.closed.done()
            assert len(await inbox.until(201)) == 201

    run(test)


def test_a_paused_reader_takes_nothing_until_it_resumes_and_then_everything_in_order(mosquitto_url: str) -> None:
    async def test() -> None:
        inbox = Inbox()
        host, port = address(mosquitto_url)
        async with (
            await FastClient.connect(host, port, "paused-reader", on_message=inbox) as reader,
            await FastClient.connect(host, port, "writer") as writer,
        ):
            await reader.subscribe(["held/#"])
            reader.pause_reading()
            await writer.publish_many((f"held/{n}", str(n).encode()) for n in range(2000))
            await asyncio.sleep(0.3)
            assert inbox.messages == []
            reader.resume_reading()
            received = await inbox.until(2000)
        assert [int(m.payload) for m in received] == list(range(2000))

    run(test)


def test_a_paused_client_waiting_for_room_to_publish_still_reads_its_acknowledgements(mosquitto_url: str) -> None:
    """A receiver that paused to catch up may be the one publishing (ingest clears commands): were its
    acknowledgements left unread, it would wait for room forever."""

    async def test() -> None:
        inbox = Inbox()
        host, port = address(mosquitto_url)
        async with await FastClient.connect(host, port, "narrow", on_message=inbox, max_inflight=10) as client:
            await client.subscribe(["echo/#"])
            client.pause_reading()
            # Queuing ten windows' worth returns only if the acknowledgements of the first ones were read.
            batch = await asyncio.wait_for(client.publish_batch((f"echo/{n}", b"x") for n in range(100)), 10)
            client.resume_reading()
            await batch
            assert len(await inbox.until(100)) == 100

    run(test)


def test_a_client_that_paused_reading_is_not_judged_by_the_answers_it_leaves_unread(mosquitto_url: str) -> None:
    """The keep-alive check counts on reading the PINGRESP: while paused (ingest catching up), the broker answers into
    the socket, and the connection must outlive several keep-alives of that."""

    async def test() -> None:
        host, port = address(mosquitto_url)
        async with await FastClient.connect(host, port, "paused-pinger", keepalive=1) as client:
            client.pause_reading()
            await asyncio.sleep(3)
            assert not client.closed.done()
            client.resume_reading()
            await asyncio.sleep(1.5)
            assert not client.closed.done()

    run(test)
