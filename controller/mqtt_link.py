"""The controller's one MQTT connection: reconnects forever, resubscribes, and pipelines publishes."""

import asyncio
import logging
from collections.abc import Callable, Sequence

import aiomqtt

from shared.transport import BrokerUrl, make_client

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 30.0
BACKOFF_MAX_S = 10.0


class MqttLink:
    """Owns the client; `on_message` is called on the event loop for every message received.

    Messages are acknowledged by hand: `on_message` returns True when it has dealt with a message for good (stored
    it, or refused it), and False when it will call `ack` itself once the message is stored. A QoS 1 status the
    controller dies holding is therefore never acknowledged, and the broker delivers it again to the persistent
    session after the restart.
    """

    def __init__(
        self,
        url: BrokerUrl,
        *,
        identifier: str,
        subscriptions: Sequence[str],
        on_message: Callable[[aiomqtt.Message], bool],
    ) -> None:
        self._url = url
        self._identifier = identifier
        self._subscriptions = list(subscriptions)
        self._on_message = on_message
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._connection = 0
        """Counts connections, so a held message is never acknowledged on a later one."""
        self._held: dict[int, int] = {}
        """id() of each message held back by `on_message` -> the connection it arrived on."""

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def run(self) -> None:
        backoff = 0.5
        while True:
            client = make_client(self._url, identifier=self._identifier, clean_session=False)
            # aiomqtt 2.5 has no switch for manual acknowledgement; its paho client has (paho-mqtt >= 2.0).
            client._client.manual_ack_set(True)
            try:
                async with client:
                    for topic in self._subscriptions:
                        await client.subscribe(topic, qos=1)
                    self._client = client
                    self._connection += 1
                    self._held.clear()
                    self._connected.set()
                    log.info("connected to %s", self._url)
                    backoff = 0.5
                    async for message in client.messages:
                        self._handle(message)
            except aiomqtt.MqttError as err:
                log.warning("MQTT connection to %s lost (%s); retrying in %.1f s", self._url, err, backoff)
            finally:
                self._connected.clear()
                self._client = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _handle(self, message: aiomqtt.Message) -> None:
        try:
            done = self._on_message(message)
        except Exception:  # a bad message must never end the connection
            log.exception("failed to handle a message on %s", message.topic)
            done = True
        if done:
            self._send_ack(message)
        else:
            self._held[id(message)] = self._connection

    def ack(self, message: aiomqtt.Message) -> None:
        """Acknowledge a message `on_message` held back, if the connection it came on is still the current one.

        After a reconnect the broker redelivers it anyway, and its packet id may already name another message.
        """
        if self._held.pop(id(message), None) == self._connection:
            self._send_ack(message)

    def _send_ack(self, message: aiomqtt.Message) -> None:
        client = self._client
        if client is not None and message.qos > 0:
            client._client.ack(message.mid, message.qos)

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def publish(self, messages: Sequence[tuple[str, bytes]], *, retain: bool) -> None:
        """Publish QoS 1 messages concurrently and return once the broker acknowledged all of them.

        Raises aiomqtt.MqttError if the connection drops; the caller retries what it has not marked done.
        """
        client = self._client
        if client is None:
            raise aiomqtt.MqttError("not connected")
        async with asyncio.timeout(PUBLISH_TIMEOUT_S + len(messages) / 1000):
            await asyncio.gather(*(client.publish(topic, payload, qos=1, retain=retain) for topic, payload in messages))
