"""The controller's one MQTT connection: reconnects forever, resubscribes, and pipelines publishes.

It runs on controller/fastmqtt rather than aiomqtt: a fleet's worth of commands, statuses and clears goes through
here, and paho's per-message cost made this connection the controller's bottleneck.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence

from controller.fastmqtt.client import DEFAULT_MAX_INFLIGHT, ConnectionLost, FastClient
from controller.fastmqtt.codec import Publish
from shared.failover import Failover
from shared.transport import BrokerUrl, TlsFiles

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 30.0
BACKOFF_MAX_S = 10.0
KEEPALIVE_S = 30


class MqttLink:
    """Owns the client; `on_message` is called on the event loop for every message received.

    Messages are acknowledged by hand: `on_message` returns True when it has dealt with a message for good (stored
    it, or refused it), and False when it will call `ack` itself once the message is stored. A QoS 1 status the
    controller dies holding is therefore never acknowledged, and the broker delivers it again to the persistent
    session after the restart. Every publish that fails raises ConnectionLost; callers retry what is not done.
    """

    def __init__(
        self,
        url: BrokerUrl,
        *,
        identifier: str,
        subscriptions: Sequence[str],
        on_message: Callable[[Publish], bool],
        on_subscribed: Callable[[], None] | None = None,
        tls: TlsFiles | None = None,
        failover: Sequence[BrokerUrl] = (),
    ) -> None:
        """`on_subscribed` is called after each connect, once the subscriptions are in place. `failover`: the other
        nodes of `url`'s cluster, tried in turn whenever a connection fails or is lost."""
        self._failover = Failover([url, *failover], BACKOFF_MAX_S)
        self._url = url
        self._tls = tls or TlsFiles()
        self._identifier = identifier
        self._subscriptions = list(subscriptions)
        self._on_message = on_message
        self._on_subscribed = on_subscribed
        self._client: FastClient | None = None
        self._connected = asyncio.Event()
        self.sessions_started = 0
        """Connections on which the broker had no session for the controller: it had lost its state (an embedded amqtt
        that restarted with the controller, a broker without persistence) or never had it; see Dispatcher.run."""
        self._held: dict[int, FastClient] = {}
        """id() of each message held back by `on_message` -> the connection it arrived on."""
        self._reading_paused = False
        self.connections = 0
        """How many times the link has connected and subscribed so far."""

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def run(self) -> None:
        while True:
            self._url = self._failover.current
            # The client is current before it connects: a persistent session's messages may arrive with the CONNACK,
            # and each must be acknowledged on the connection it came on.
            client = self._client = FastClient(self._handle, auto_ack=False, max_inflight=DEFAULT_MAX_INFLIGHT)
            try:
                await client.open(
                    self._url.host,
                    self._url.port,
                    self._identifier,
                    clean_session=False,
                    keepalive=KEEPALIVE_S,
                    username=self._url.username,
                    password=self._url.password,
                    tls=self._tls.context() if self._url.tls else None,  # read again on each connect: renewed certs
                )
                if not client.session_present:
                    self.sessions_started += 1
                await client.subscribe(self._subscriptions, qos=1)
                if self._reading_paused:  # only now: the subscription's acknowledgement had to be read
                    client.pause_reading()
                self.connections += 1
                self._connected.set()
                log.info("connected to %s", self._url)
                if self._on_subscribed is not None:
                    self._on_subscribed()
                self._failover.connected()
                raise await client.closed
            except ConnectionLost as err:
                # The same persistent session on the next node, which the cluster keeps with what was queued in it.
                wait = self._failover.failed()
                following = self._failover.current
                log.warning(
                    "MQTT connection to %s lost or refused (%s); trying %s in %.1f s", self._url, err, following, wait
                )
            finally:
                self._connected.clear()
                self._client = None
                self._held.clear()
                client.abort()
            await asyncio.sleep(wait)

    def _handle(self, message: Publish) -> None:
        try:
            done = self._on_message(message)
        except Exception:  # a bad message must never end the connection
            log.exception("failed to handle a message on %s", message.topic)
            done = True
        if done:
            self._send_ack(self._client, message)
        elif self._client is not None:
            self._held[id(message)] = self._client

    def ack_all(self, messages: Sequence[Publish]) -> None:
        """Acknowledge messages `on_message` held back, those that came on the connection that is still current.

        After a reconnect the broker redelivers the others anyway, and their packet ids may already name others.
        """
        held, current = self._held, self._client
        packet_ids = [message.packet_id for message in messages if held.pop(id(message), None) is current]
        if current is not None:
            current.ack_many(packet_ids)

    @staticmethod
    def _send_ack(client: FastClient | None, message: Publish) -> None:
        if client is not None and message.qos > 0:
            client.ack(message.packet_id)

    def pause_reading(self) -> None:
        """Take no more messages until `resume_reading`: the broker keeps them (see FastClient.pause_reading)."""
        self._reading_paused = True
        if self._client is not None:
            self._client.pause_reading()

    def resume_reading(self) -> None:
        self._reading_paused = False
        if self._client is not None:
            self._client.resume_reading()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def publish(self, messages: Sequence[tuple[str, bytes]], *, retain: bool) -> None:
        """Publish QoS 1 messages pipelined and return once the broker acknowledged all of them."""
        await self.acknowledged(await self.publish_batch(messages, retain=retain), len(messages))

    async def publish_batch(self, messages: Sequence[tuple[str, bytes]], *, retain: bool) -> "asyncio.Future[None]":
        """Queue QoS 1 messages; the future resolves once the broker acknowledged them all (see `acknowledged`)."""
        client = self._client
        if client is None:
            raise ConnectionLost("not connected")
        return await client.publish_batch(messages, retain=retain)

    @staticmethod
    async def acknowledged(batch: "asyncio.Future[None]", size: int) -> None:
        """Wait for a batch's acknowledgement; ConnectionLost if the connection goes or the broker takes too long."""
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S + size / 1000):
                await batch
        except TimeoutError as err:
            raise ConnectionLost(f"the broker did not acknowledge {size} publish(es) in time") from err
