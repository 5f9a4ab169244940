"""An asyncio MQTT client built for throughput: pipelined QoS 1 publishes and batched writes on one socket.

aiomqtt (over paho) moves ~10-13k messages a second in Python; this client writes every packet produced in one
event-loop iteration with a single `writelines`, keeps up to `max_inflight` QoS 1 publishes unacknowledged, and
parses incoming packets straight from the socket's buffer. It speaks only what codec.py does.
"""

import asyncio
import itertools
import logging
import socket
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

from controller.fastmqtt.codec import (
    DISCONNECT,
    PINGREQ,
    Connack,
    Decoder,
    Packet,
    PacketIdAck,
    PacketType,
    ProtocolError,
    Publish,
    Will,
    encode_connect,
    encode_puback,
    encode_publish,
    encode_subscribe,
)

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
SUBSCRIBE_BATCH = 1000
"""Topic filters per SUBSCRIBE packet when subscribing to many."""
DEFAULT_MAX_INFLIGHT = 20_000
MAX_INFLIGHT = 60_000
"""Below the 65,535 packet ids, so that a free one is always found quickly."""
T = TypeVar("T")


@dataclass(eq=False, slots=True)
class _Batch:
    done: "asyncio.Future[None]"
    remaining: int = 0


class ConnectionLost(Exception):
    """The broker refused the connection, closed it, or sent something that is not MQTT."""


class _Protocol(asyncio.Protocol):
    def __init__(self, client: "FastClient") -> None:
        self._client = client
        self._decoder = Decoder()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._client._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._client._heard = True
        try:
            packets = self._decoder.feed(data)
        except ProtocolError as err:
            self._client._lost(ConnectionLost(f"broker sent an invalid packet: {err}"))
            return
        for packet in packets:
            self._client._received(packet)

    def connection_lost(self, exc: Exception | None) -> None:
        self._client._lost(ConnectionLost(f"connection closed{f': {exc}' if exc else ''}"))

    def pause_writing(self) -> None:
        self._client._writable.clear()

    def resume_writing(self) -> None:
        self._client._writable.set()


class FastClient:
    """One MQTT connection; use `async with await FastClient.connect(...)`, or call `close()`.

    `on_message` is called on the event loop for every message received; a QoS 1 message is acknowledged right
    after it returns, unless `auto_ack` is off, when the caller acknowledges it with `ack(packet_id)`.
    """

    def __init__(self, on_message: Callable[[Publish], None] | None, *, auto_ack: bool, max_inflight: int) -> None:
        if not 0 < max_inflight <= MAX_INFLIGHT:
            raise ValueError(f"max_inflight must be from 1 to {MAX_INFLIGHT}")
        loop = asyncio.get_running_loop()
        self._on_message = on_message
        self._auto_ack = auto_ack
        self._max_inflight = max_inflight
        self._transport: asyncio.Transport | None = None
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._writable = asyncio.Event()
        self._writable.set()
        self._packet_ids = itertools.cycle(range(1, 65536))
        self._unacked: dict[int, _Batch | None] = {}
        """Packet id of each QoS 1 publish in flight -> the batch it belongs to, if any."""
        self._backlog: deque[tuple[str, bytes, bool, _Batch | None]] = deque()
        """QoS 1 publishes waiting for room in the in-flight window."""
        self._room = asyncio.Event()
        self._room.set()
        self._batches: set[_Batch] = set()
        """Batches with publishes in flight or queued, failed if the connection goes."""
        self._all_acked = asyncio.Event()
        self._all_acked.set()
        self._subacks: dict[int, asyncio.Future[tuple[int, ...]]] = {}
        self._connack: asyncio.Future[Connack] = loop.create_future()
        self.closed: asyncio.Future[ConnectionLost] = loop.create_future()
        """Resolves, with the reason, once the connection is gone."""
        self._pinger: asyncio.Task[None] | None = None
        self._heard = False
        """Whether anything arrived since the last PINGREQ."""
        self._answer_due = False
        """Whether the broker must have answered by the next keep-alive check: not if reading paused meanwhile."""
        self._hold_reading = False
        self._waiting_for_room = 0

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        client_id: str,
        *,
        on_message: Callable[[Publish], None] | None = None,
        auto_ack: bool = True,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        **session: Any,
    ) -> "FastClient":
        """A new client, connected: see `open` for the `session` options."""
        client = cls(on_message, auto_ack=auto_ack, max_inflight=max_inflight)
        await client.open(host, port, client_id, **session)
        return client

    async def open(
        self,
        host: str,
        port: int,
        client_id: str,
        *,
        clean_session: bool = True,
        keepalive: int = 60,
        username: str | None = None,
        password: str | None = None,
        will: Will | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """Connect (over TLS with `tls`) and wait for the broker's CONNACK; ConnectionLost if it refuses or does not
        answer in time.

        Messages of a persistent session may reach `on_message` before this returns.
        """
        connect = encode_connect(
            client_id, clean_session=clean_session, keepalive=keepalive, username=username, password=password, will=will
        )
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                transport, _ = await loop.create_connection(lambda: _Protocol(self), host, port, ssl=tls)
                transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._send(connect)
                connack = await self._result(self._connack)
        except (OSError, TimeoutError) as err:  # ssl.SSLError is an OSError
            self.abort()
            raise ConnectionLost(f"cannot connect to {host}:{port}: {err or 'timed out'}") from err
        if connack.return_code != 0:
            self.abort()
            raise ConnectionLost(f"the broker refused the connection (CONNACK return code {connack.return_code})")
        if keepalive:
            self._pinger = asyncio.create_task(self._keep_alive(keepalive / 2))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def session_present(self) -> bool:
        return self._connack.result().session_present

    async def subscribe(self, filters: Iterable[str], qos: int = 1) -> None:
        """Subscribe to every filter, SUBSCRIBE_BATCH to a packet; ConnectionLost if the broker refuses any."""
        waiting = []
        batch = list(filters)
        for start in range(0, len(batch), SUBSCRIBE_BATCH):
            packet_id = self._free_packet_id()
            future: asyncio.Future[tuple[int, ...]] = asyncio.get_running_loop().create_future()
            self._subacks[packet_id] = future
            self._send(encode_subscribe(packet_id, [(topic, qos) for topic in batch[start : start + SUBSCRIBE_BATCH]]))
            waiting.append(future)
        for future in waiting:
            if 0x80 in await self._result(future):
                raise ConnectionLost("the broker refused a subscription")

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish; for QoS 1, wait only while a whole window of publishes is queued behind the in-flight ones."""
        if qos == 0:
            await self._make_room()
            self._send(encode_publish(topic, payload, retain=retain))
            return
        await self._make_room()
        self.publish_soon(topic, payload, retain=retain)

    def publish_soon(self, topic: str, payload: bytes, *, retain: bool = False, batch: "_Batch | None" = None) -> None:
        """Queue a QoS 1 publish without waiting: it goes out as soon as the in-flight window has room.

        For callbacks that must not block; `flush()` waits until everything queued is acknowledged.
        """
        if self.closed.done():
            raise self.closed.result()
        self._all_acked.clear()
        if self._backlog or len(self._unacked) >= self._max_inflight:
            self._backlog.append((topic, payload, retain, batch))
        else:
            self._send_qos1(topic, payload, retain, batch)

    async def publish_batch(
        self, messages: Iterable[tuple[str, bytes]], *, retain: bool = False
    ) -> "asyncio.Future[None]":
        """Queue QoS 1 messages and return a future that resolves once the broker has acknowledged all of them
        (or fails with ConnectionLost), so that a caller can keep several batches in flight."""
        # One count is held while the batch is filled: waiting for room below lets acknowledgements of its first
        # messages in, which must not bring it to zero (and resolve it) before its last message is even queued.
        batch = _Batch(asyncio.get_running_loop().create_future(), remaining=1)
        self._batches.add(batch)
        try:
            for topic, payload in messages:
                await self._make_room()
                batch.remaining += 1
                self.publish_soon(topic, payload, retain=retain, batch=batch)
        except ConnectionLost:
            self._batches.discard(batch)
            if batch.done.done():
                batch.done.exception()  # retrieved: the caller gets ConnectionLost raised instead
            else:
                batch.done.cancel()
            raise
        batch.remaining -= 1
        if not batch.remaining:
            self._batches.discard(batch)
            batch.done.set_result(None)
        return batch.done

    async def publish_many(self, messages: Iterable[tuple[str, bytes]], *, retain: bool = False) -> None:
        """Publish QoS 1 messages pipelined and return once the broker has acknowledged every one."""
        await (await self.publish_batch(messages, retain=retain))

    def pause_reading(self) -> None:
        """Leave incoming packets in the socket, so that TCP holds the broker back, until `resume_reading`.

        A publisher waiting for room in the in-flight window reads meanwhile: the acknowledgements it waits for
        come in the same stream, and a receiver that paused to catch up may itself be that publisher.
        """
        self._hold_reading = True
        self._follow_reading()

    def resume_reading(self) -> None:
        self._hold_reading = False
        self._follow_reading()

    def _follow_reading(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        wanted = not self._hold_reading or self._waiting_for_room > 0
        if wanted and not transport.is_reading():
            transport.resume_reading()
        elif not wanted and transport.is_reading():
            transport.pause_reading()
            self._answer_due = False  # it may wait in the socket, unread

    async def _make_room(self) -> None:
        if self.closed.done():
            raise self.closed.result()
        if not self._writable.is_set():
            await self._wait(self._writable)
        while len(self._backlog) >= self._max_inflight:
            self._room.clear()
            self._waiting_for_room += 1
            self._follow_reading()
            try:
                await self._wait(self._room)
            finally:
                self._waiting_for_room -= 1
                self._follow_reading()

    def _send_qos1(self, topic: str, payload: bytes, retain: bool, batch: "_Batch | None") -> None:
        packet_id = self._free_packet_id()
        self._unacked[packet_id] = batch
        self._send(encode_publish(topic, payload, qos=1, retain=retain, packet_id=packet_id))

    async def flush(self) -> None:
        """Wait until every QoS 1 publish queued so far is acknowledged."""
        await self._wait(self._all_acked)

    def ack(self, packet_id: int) -> None:
        """Acknowledge a received QoS 1 message, when `auto_ack` is off."""
        self.ack_many([packet_id])

    def ack_many(self, packet_ids: Iterable[int]) -> None:
        """Acknowledge received messages, when `auto_ack` is off; 0 (a QoS 0 message's) is skipped."""
        if not self.closed.done():
            self._send_all([encode_puback(packet_id) for packet_id in packet_ids if packet_id])

    async def close(self) -> None:
        """Disconnect cleanly, after writing what is queued: the broker does not publish the last will."""
        if self._pinger is not None:
            self._pinger.cancel()
        if self._transport is not None and not self.closed.done():
            self._send(DISCONNECT)
            self._flush()
            self._transport.close()
        if not self.closed.done():
            self.closed.set_result(ConnectionLost("closed by this client"))

    def abort(self) -> None:
        """Drop the connection without DISCONNECT, as a crash would: the broker publishes the last will."""
        if self._pinger is not None:
            self._pinger.cancel()
        if self._transport is not None:
            self._transport.abort()

    # -- internals ------------------------------------------------------------------------------------------------

    async def _wait(self, event: asyncio.Event) -> None:
        await self._result(asyncio.ensure_future(event.wait()))

    async def _result(self, waiting: "asyncio.Future[T]") -> T:
        """`waiting`'s result, or ConnectionLost if the connection goes first."""
        closed: asyncio.Future[Any] = self.closed
        done, _ = await asyncio.wait([waiting, closed], return_when=asyncio.FIRST_COMPLETED)
        if waiting not in done:
            waiting.cancel()
            raise self.closed.result()
        return waiting.result()

    def _free_packet_id(self) -> int:
        while (packet_id := next(self._packet_ids)) in self._unacked or packet_id in self._subacks:
            pass  # at most max_inflight ids are taken, far fewer than 65,535
        return packet_id

    def _send(self, packet: bytes) -> None:
        self._out.append(packet)
        self._flush_soon()

    def _send_all(self, packets: list[bytes]) -> None:
        if packets:
            self._out += packets
            self._flush_soon()

    def _flush_soon(self) -> None:
        """Write what is queued once this event-loop iteration ends, in one writelines."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self._transport is not None and not self._transport.is_closing():
            self._transport.writelines(self._out)
        self._out = []

    def _received(self, packet: Packet) -> None:
        if isinstance(packet, Publish):
            if self._on_message is not None:
                self._on_message(packet)
            if packet.qos and self._auto_ack:
                self._send(encode_puback(packet.packet_id))
        elif isinstance(packet, PacketIdAck):
            if packet.kind is PacketType.SUBACK:
                future = self._subacks.pop(packet.packet_id, None)
                if future is not None and not future.done():
                    future.set_result(packet.return_codes)
            elif packet.packet_id in self._unacked:
                batch = self._unacked.pop(packet.packet_id)
                if batch is not None:
                    batch.remaining -= 1
                    if not batch.remaining:
                        self._batches.discard(batch)
                        if not batch.done.done():  # its publisher may have stopped waiting (a term that ended)
                            batch.done.set_result(None)
                backlog = self._backlog
                while backlog and len(self._unacked) < self._max_inflight:
                    self._send_qos1(*backlog.popleft())
                if len(backlog) < self._max_inflight:
                    self._room.set()
                if not self._unacked and not backlog:
                    self._all_acked.set()
        elif isinstance(packet, Connack) and not self._connack.done():
            self._connack.set_result(packet)

    def _lost(self, why: ConnectionLost) -> None:
        if not self.closed.done():
            self.closed.set_result(why)
        for batch in self._batches:
            if not batch.done.done():
                batch.done.set_exception(why)
        self._batches.clear()
        if self._transport is not None:
            self._transport.abort()
        if self._pinger is not None:
            self._pinger.cancel()

    async def _keep_alive(self, interval: float) -> None:
        """A PINGREQ every half keep-alive; the connection is lost if nothing, not even the PINGRESP, arrives in the
        half keep-alive after one.

        A broker behind a proxy or NAT that lost the connection's state stays silent while TCP stays up: this notices
        within one keep-alive of the silence starting. Any packet counts as an answer, because a PINGRESP queues
        behind everything the broker sent before it. While reading is paused the answer waits in the socket unread,
        so a paused connection is not judged.
        """
        while True:
            await asyncio.sleep(interval)
            if self._answer_due and not self._heard:
                self._lost(ConnectionLost(f"the broker did not answer a PINGREQ within {interval:g} s"))
                return
            self._heard = False
            self._send(PINGREQ)
            self._answer_due = self._transport is not None and self._transport.is_reading()
