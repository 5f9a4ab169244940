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
    """Owns the client; `on_message` is called on the event loop for every message received."""

    def __init__(
        self,
        url: BrokerUrl,
        *,
        identifier: str,
        subscriptions: Sequence[str],
        on_message: Callable[[aiomqtt.Message], None],
    ) -> None:
        self._url = url
        self._identifier = identifier
        self._subscriptions = list(subscriptions)
        self._on_message = on_message
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def run(self) -> None:
        backoff = 0.5
        while True:
            client = make_client(self._url, identifier=self._identifier, clean_session=False)
            try:
                async with client:
                    for topic in self._subscriptions:
                        await client.subscribe(topic, qos=1)
                    self._client = client
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
            self._on_message(message)
        except Exception:  # a bad message must never end the connection
            log.exception("failed to handle a message on %s", message.topic)

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
