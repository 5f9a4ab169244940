"""amqtt 0.12.1 made safe for Tether, by subclassing (each override names the amqtt lines it works around).

- On every connect it replayed the retained messages matching *any* client's subscriptions to the connecting client,
  so device A received device B's retained commands: replays now go only to the client's own subscriptions.
- It put every outgoing QoS 1/2 delivery in flight at once; once 65,535 were unacknowledged to one client, each new
  one scanned every packet id and failed: 100% CPU, ~100 messages/s for the whole broker. A window of
  MAX_INFLIGHT unacknowledged deliveries per connection now bounds it.
- Its anonymous login dropped persistent sessions a second after disconnect and queued nothing for them.
- It ignored the keep-alive, so a vanished device never went offline (no last will).
- A reconnect over a half-open connection published the old connection's will and left the session marked offline.
- It took a session over, or deleted it, for any CONNECT that named its client id, before checking the password;
  and it waited for a CONNECT forever and never closed a connection that ended before one: one file descriptor
  lost per connection. A CONNECT now has CONNECT_TIMEOUT_S, is checked before any session is touched, and every
  connection is closed when it ends.
- With `auth`, it admits only the password file's logins, each with its own client id and a last will it may
  publish, and applies `tether broker acl`'s rules to every subscription, publish and delivery, including retained
  and queued messages sent at connect.
- It read a packet of any size into memory before looking at it: a CONNECT, and with `auth` a device's every packet,
  are now refused at their fixed header past a limit (`amqtt_packet_limit`).
- It kept every retained publish for good: with `auth`, a device's are kept only on its announce and presence topics.
"""

import asyncio
import functools
import logging
import math
from importlib import metadata
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.errors import AMQTTError
from amqtt.mqtt.connack import ConnackPacket
from amqtt.mqtt.constants import QOS_1, QOS_2
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import OutgoingApplicationMessage, Session
from amqtt.utils import gen_client_id

from controller.amqtt_packet_limit import MAX_CONNECT_BYTES, MAX_DEVICE_PACKET_BYTES, BoundedReader
from controller.broker_auth import Access, BrokerAuth
from controller.errors import BrokerError

AMQTT_VERSION = "0.12.1"
"""The amqtt release the overrides below were written against; they touch its private methods."""
CONNECT_TIMEOUT_S = 10.0
"""How long a new connection (after its TLS handshake) may take to send its CONNECT before it is closed."""
MAX_INFLIGHT = 100
"""Unacknowledged QoS 1/2 deliveries per connection, for both brokers (Mosquitto's default is 20)."""
_CURRENT_CONNECTION = "tether.connection"

log = logging.getLogger(__name__)


class _Connection(BrokerProtocolHandler):  # type: ignore[misc]
    """amqtt's handler for one client connection, with a window on unacknowledged deliveries and keep-alive enforced."""

    def __init__(self, plugins_manager: Any, max_inflight: int, packet_limit: int | None) -> None:
        super().__init__(plugins_manager, loop=asyncio.get_running_loop())
        self._window = asyncio.Semaphore(max_inflight)
        self._packet_limit = packet_limit
        self._stopped = False
        self._closing: asyncio.Future[None] | None = None

    def attach(self, session: Session, reader: ReaderAdapter, writer: WriterAdapter) -> None:
        # amqtt reads every packet whole before it looks at it (mqtt/publish.py:60-72), whatever size it declares.
        bounded = reader if self._packet_limit is None else BoundedReader(reader, self._packet_limit)
        super().attach(session, bounded, writer)

    async def mqtt_publish(
        self, topic: str, data: bytes | bytearray, qos: int | None, retain: bool, ack_timeout: int | None = None
    ) -> Any:
        # amqtt starts a delivery task per message and subscriber (broker.py:1053-1061), each takes a packet id and
        # an in-flight slot before its PUBLISH is even written (handler.py:218, 305-307), and the PUBACK timer only
        # starts once the write is done (handler.py:320), which for a client that stops reading is never. Past
        # 65,535 every new delivery scanned all ids and failed (session.py:226-233), logged with a traceback
        # (broker.py:972-973): 100% CPU, about 100 messages a second for the whole broker.
        if qos not in (QOS_1, QOS_2):
            return await super().mqtt_publish(topic, data, qos, retain, ack_timeout)
        async with self._window:
            if self._stopped:
                # The connection ended while this waited; amqtt would send it into the closed socket and drop it
                # after its 5 s PUBACK timeout, so drop it now. Retained commands are sent again on resubscribe.
                return OutgoingApplicationMessage(None, topic, qos, data, retain)
            return await super().mqtt_publish(topic, data, qos, retain, ack_timeout)

    def handle_read_timeout(self) -> None:
        # amqtt 0.12.1 ignores this (broker_handler.py:86-87): a device that vanished without closing its socket
        # stayed connected and its last will, Tether's offline presence, never fired. Close it as a lost connection.
        if self._closing is None:
            self._closing = asyncio.ensure_future(self.handle_connection_closed())

    async def stop(self) -> None:
        self._stopped = True
        stream = getattr(self.writer, "_writer", None)  # amqtt's StreamWriterAdapter keeps the asyncio writer here
        if isinstance(stream, asyncio.StreamWriter) and stream.transport.get_write_buffer_size() > 0:
            # The peer stopped reading: amqtt's close would wait in drain() forever, and the deliveries queued behind
            # it would hold the window and the socket. The connection is over, so drop what is still buffered.
            stream.transport.abort()
        await super().stop()


@functools.lru_cache(maxsize=65536)
def _literal_prefix(topic_filter: str) -> str:
    """The part of a topic filter before its first wildcard: every topic it matches starts with this."""
    return topic_filter.partition("+")[0].partition("#")[0]


class _SubscriptionTable(dict[str, list[tuple[Any, int]]]):
    """amqtt's table of topic filter to (session, QoS) subscribers, with a repr that does not list them.

    amqtt logs repr(table) after every SUBSCRIBE (broker.py:637), formatted even with debug logging off: a cost in
    proportion to the fleet for every SUBSCRIBE, so in proportion to its square when the whole fleet reconnects.
    """

    def __repr__(self) -> str:
        return f"<{len(self)} topic filters>"


class FixedAmqtt(Broker):  # type: ignore[misc]
    """amqtt's broker with the fixes the module docstring lists."""

    def __init__(self, config: dict[str, Any], max_inflight: int, auth: BrokerAuth | None = None) -> None:
        super().__init__(config)
        self._auth = auth
        self._subscriptions = _SubscriptionTable()
        self._max_inflight = max_inflight
        self._replays: set[asyncio.Task[Any]] = set()
        self._streams: set[asyncio.StreamWriter] = set()

    async def _initialize_client_session(self, reader: Any, writer: Any, address: str, port: int) -> tuple[Any, Any]:
        # Replaces amqtt's (broker.py:479-539), which read the CONNECT with no time limit, then deleted the session
        # its client id named (clean session) or overwrote that session's will and login (persistent) before the
        # password was checked (:559): a wrong password could log anyone out. Here nothing is touched before the
        # CONNECT is accepted. An error raised here ends the connection (broker.py:466-469, stream_connected).
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                bounded = BoundedReader(reader, MAX_CONNECT_BYTES)
                _, incoming = await BrokerProtocolHandler.init_from_connect(bounded, writer, self.plugins_manager)
        except TimeoutError as err:
            raise AMQTTError(f"no CONNECT from {address}:{port} within {CONNECT_TIMEOUT_S:.0f} s") from err
        refusal = self._auth and self._auth.refusal(
            incoming.username,
            incoming.password,
            incoming.client_id,
            incoming.will_topic if incoming.will_flag else None,
        )
        if refusal:
            await ConnackPacket.build(0, refusal).to_stream(writer)
            raise AMQTTError(f"CONNECT from {address}:{port} as {incoming.username!r} refused: {refusal.name}")
        session = await self._resume_or_start(incoming)
        if session.keep_alive > 0:
            session.keep_alive = math.ceil(session.keep_alive * 1.5)
        # amqtt built a bare handler for the CONNECT; use ours instead (same constructor, nothing attached).
        connection = _Connection(self.plugins_manager, self._max_inflight, self._packet_limit(session.username))
        session.attributes[_CURRENT_CONNECTION] = connection
        return connection, session

    def _packet_limit(self, user: str | None) -> int | None:
        """Devices may send no packet larger than the wire contract allows; the controller's own login is trusted
        (its commands are bounded where they are made), and without `auth` anyone may do anything anyway."""
        if self._auth is None or user == self._auth.controller_user:
            return None
        return MAX_DEVICE_PACKET_BYTES

    async def _resume_or_start(self, incoming: Session) -> Session:
        """The session an accepted CONNECT continues: amqtt's rules (broker.py:508-532), except that a persistent
        session is never handed to another login, whose messages and subscriptions it would get, and that a clean
        session amqtt has not yet swept away (broker.py:365-366) is not resumed as if it were persistent."""
        existing = self._sessions.get(incoming.client_id, (None, None))[0]
        if existing is not None and (
            incoming.clean_session or existing.clean_session or existing.username != incoming.username
        ):
            await self._delete_session(incoming.client_id)
            existing = None
        if incoming.clean_session and not incoming.client_id:
            incoming.client_id = gen_client_id()
        if existing is None:
            incoming.parent = 0
            return incoming
        for attribute in ("will_flag", "will_message", "will_topic", "will_qos", "will_retain", "keep_alive"):
            setattr(existing, attribute, getattr(incoming, attribute))
        existing.password = incoming.password
        existing.parent = 1
        return existing

    async def _handle_disconnect(self, session: Any, handler: Any, disconnect_waiter: Any) -> None:
        # When a client reconnects before amqtt noticed its old connection end (a half-open socket, a quick
        # reconnect), amqtt takes the persistent session over (broker.py:565-574), but the old connection's
        # disconnect then still published the will ("offline" for a device that is back) and marked the shared
        # session disconnected, so deliveries were queued for the next reconnect instead of sent. Mosquitto does
        # neither; the newer connection owns the session now.
        if session.attributes.get(_CURRENT_CONNECTION, handler) is not handler:
            await self._stop_handler(handler)
            return
        await super()._handle_disconnect(session, handler, disconnect_waiter)

    async def _authenticate(self, session: Any, listener: Any) -> bool:
        # A refused CONNECT never gets here (_initialize_client_session). No auth plugin is configured: amqtt's
        # AnonymousAuthPlugin would set session.is_anonymous, after which amqtt drops the persistent session on
        # disconnect (broker.py:365-366) and queues nothing for it while offline (broker.py:1034-1037).
        return True

    async def _topic_filtering(self, session: Any, topic: str, action: Any) -> bool:
        # amqtt's topic plugins have no per-user patterns; the ACL `tether broker acl` writes for Mosquitto is
        # applied here instead, to subscriptions (broker.py:876), publishes (:778) and deliveries (:1025).
        return self._auth is None or self._auth.permits(session.username, Access(str(action)), topic)

    async def retain_message(
        self, source_session: Any, topic_name: str | None, data: bytes | bytearray | None, qos: int | None = None
    ) -> None:
        # amqtt keeps every retained publish a client may make (broker.py:789-790, 834-844), in memory, for good; a
        # device could name any number of status topics. Mosquitto's ACL cannot say this; here it is said.
        auth, user = self._auth, None if source_session is None else source_session.username
        if auth is not None and source_session is not None and not auth.may_retain(user, topic_name or ""):
            return
        await super().retain_message(source_session, topic_name, data, qos)

    async def _publish_retained_messages_for_subscription(self, subscription: tuple[str, int], session: Any) -> None:
        # On every connect amqtt calls this for each filter *any* client subscribed (broker.py:601-602), which sent
        # device B's retained commands to device A. Serve only the client's own filters, at their granted QoS.
        topic_filter = subscription[0]
        granted = None
        for owner, qos in self._subscriptions.get(topic_filter, ()):
            if owner.client_id == session.client_id:
                granted = qos
                break
        if granted is None:
            return  # kept cheap: amqtt makes this call once per filter in the whole broker on every connect
        handler = self._get_handler(session)
        if handler is None:
            return
        for topic, message in list(self._retained_messages.items()):
            if self._matches(topic, topic_filter) and await self._topic_filtering(session, topic, Access.RECEIVE):
                qos = granted if message.qos is None else min(granted, message.qos)
                # Not awaited: amqtt iterates its subscription table around this call (broker.py:601), and a yield
                # here lets another client's SUBSCRIBE change it mid-iteration; stock amqtt then dropped the
                # connecting client with "dictionary changed size during iteration" in a 300-device reconnect.
                replay = asyncio.ensure_future(handler.mqtt_publish(topic, message.data, qos, retain=True))
                self._replays.add(replay)
                replay.add_done_callback(self._replay_done)

    async def _publish_session_retained_messages(self, session: Any) -> None:
        # amqtt sends the messages queued for a persistent session without the check its live deliveries make
        # (broker.py:1116-1132, against :1025); a session only ever belongs to one login, but check them anyway.
        queued = session.retained_messages
        kept = [
            message for message in _drain(queued) if await self._topic_filtering(session, message.topic, Access.RECEIVE)
        ]
        for message in kept:
            queued.put_nowait(message)
        await super()._publish_session_retained_messages(session)

    def _matches(self, topic: str, a_filter: str) -> bool:
        # amqtt calls this for every subscription on every published message (broker.py:1015-1018) and splits both
        # strings each time; a topic outside the filter's literal prefix cannot match, which settles most calls.
        return topic.startswith(_literal_prefix(a_filter)) and bool(super()._matches(topic, a_filter))

    def _replay_done(self, replay: asyncio.Task[Any]) -> None:
        self._replays.discard(replay)
        if not replay.cancelled() and replay.exception() is not None:
            log.debug("retained message not acknowledged: %s", replay.exception())

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        self._streams.add(writer)
        try:
            await super().stream_connected(reader, writer, listener_name)
        finally:
            self._streams.discard(writer)
            # amqtt closes the socket only of a connection that got as far as a session (handler.stop); one that
            # ended before its CONNECT, or was refused, kept its file descriptor for the life of the process.
            if writer.transport.get_write_buffer_size() > 0:
                writer.transport.abort()  # the peer stopped reading: what is left would never go
            else:
                writer.transport.close()

    async def shutdown(self) -> None:
        # Every session is about to go; amqtt would rescan the whole table to unsubscribe each one (broker.py:926-933).
        self._subscriptions.clear()
        await super().shutdown()
        # amqtt closes only the connections of the sessions it still lists; a connection it had already let go of
        # (a replaced clean session, one still sending CONNECT) stayed open past the end of the event loop.
        for stream in self._streams:
            stream.transport.abort()
        for replay in list(self._replays):
            replay.cancel()
        await asyncio.gather(*self._replays, return_exceptions=True)

    def close_listeners(self) -> None:
        for server in self._servers.values():
            server.instance.close()


def _drain(queue: "asyncio.Queue[Any]") -> list[Any]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


def require_amqtt_version() -> None:
    installed = metadata.version("amqtt")
    if installed != AMQTT_VERSION:
        raise BrokerError(
            f"the embedded amqtt broker is patched for amqtt {AMQTT_VERSION} but {installed} is installed;"
            f" install amqtt=={AMQTT_VERSION} or use --embedded-broker mosquitto"
        )
