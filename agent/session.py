"""The agent's MQTT session: connect with a last will, announce, subscribe to its own commands, reconnect forever.

Given several broker URLs (the nodes of one cluster), it connects to the first and, whenever a connection fails or is
lost, to the next in turn: always with the same client id and a persistent session, which a clustered broker keeps
for the whole cluster, so the commands queued for the device while it moved are delivered on the node it reaches.
"""

import asyncio
import json
import logging
from collections.abc import Sequence

import aiomqtt

from agent.mqtt_client import make_client
from agent.runner import Runner
from shared.errors import TetherProtocolError
from shared.failover import Failover
from shared.messages import Announcement, CancelRequest, Command, Presence, StatusReport, decode, encode, utc_now
from shared.operations import PresenceState
from shared.sd_notify import notify
from shared.signing import SignatureError, Verifier
from shared.topics import TopicKind, Topics, agent_client_id
from shared.transport import BrokerUrl, TlsFiles

log = logging.getLogger(__name__)

BACKOFF_MAX_S = 30.0
SETTLE_S = 10.0
"""After a journal loss: how long a connection must stay quiet after subscribing before the broker is taken to have
sent every command it still held for the device (it sends them in one burst after the subscription)."""


class Session:
    def __init__(
        self,
        *,
        urls: Sequence[BrokerUrl],
        device_id: str,
        topics: Topics,
        announcement: Announcement,
        runner: Runner,
        verifier: Verifier | None = None,
        tls: TlsFiles | None = None,
        health_interval_s: float = 60.0,
    ) -> None:
        self._failover = Failover(urls, BACKOFF_MAX_S)
        self._url = self._failover.current
        self._health_interval_s = health_interval_s
        self._tls = tls
        self._verifier = verifier
        self._device_id = device_id
        self._topics = topics
        self._announcement = announcement
        self._runner = runner
        self._client: aiomqtt.Client | None = None
        self._handling = False
        self._activity = asyncio.Event()
        """Set as each message starts and ends being handled."""

    @property
    def announcement(self) -> Announcement:
        return self._announcement

    async def reannounce(self, announcement: Announcement, *, with_presence: bool = False) -> bool:
        """Announce `announcement` (retained) now if connected, and on every later connect; True if it reached the
        broker now. `with_presence` also refreshes the retained online presence, with the agent's health."""
        self._announcement = announcement.model_copy(update={"announced_at": utc_now()})
        client = self._client
        if client is None:
            return False
        try:
            await client.publish(
                self._topics.announce(self._device_id), encode(self._announcement), qos=1, retain=True, timeout=30
            )
            if with_presence:
                presence = self._presence(PresenceState.ONLINE)
                await client.publish(self._topics.presence(self._device_id), presence, qos=1, retain=True, timeout=30)
        except aiomqtt.MqttError as err:
            log.warning("could not announce the change now (%s); it goes out on the next connect", err)
            return False
        return True

    def _presence(self, state: PresenceState) -> bytes:
        health = self._runner.health() if state is PresenceState.ONLINE else None
        return encode(Presence(device_id=self._device_id, state=state, health=health))

    async def _report_health(self, client: aiomqtt.Client) -> None:
        """Refresh the retained online presence, with the agent's health, while connected."""
        topic = self._topics.presence(self._device_id)
        while True:
            await asyncio.sleep(self._health_interval_s)
            try:
                await client.publish(topic, self._presence(PresenceState.ONLINE), qos=1, retain=True, timeout=30)
            except aiomqtt.MqttError as err:
                log.warning("could not refresh the presence: %s", err)  # the session reconnects on its own
                return

    async def publish_status(self, report: StatusReport) -> bool:
        """QoS 1 to the command's status topic; False if there is no connection right now."""
        client = self._client
        if client is None:
            return False
        try:
            await client.publish(
                self._topics.status(self._device_id, report.command_id), encode(report), qos=1, timeout=30
            )
        except aiomqtt.MqttError as err:
            log.warning("could not publish the %s status of %s: %s", report.status, report.command_id, err)
            return False
        return True

    async def run(self) -> None:
        presence_topic = self._topics.presence(self._device_id)
        will = aiomqtt.Will(presence_topic, self._presence(PresenceState.OFFLINE), qos=1, retain=True)
        while True:
            self._url = self._failover.current
            client = make_client(self._url, identifier=agent_client_id(self._device_id), will=will, tls=self._tls)
            try:
                async with client:
                    # Online is published first thing in _on_connect, so a cancellation from then on says offline.
                    try:
                        await self._on_connect(client)
                        self._failover.connected()
                        tasks = [asyncio.create_task(self._report_health(client))]
                        if self._runner.journal_loss_unsettled:
                            tasks.append(asyncio.create_task(self._settle_journal_loss()))
                        try:
                            async for message in client.messages:
                                self._handling = True
                                self._activity.set()
                                try:
                                    await self._on_message(message)
                                finally:
                                    self._handling = False
                                    self._activity.set()
                        finally:
                            for task in tasks:
                                task.cancel()
                    except asyncio.CancelledError:
                        await self._say_goodbye(client)
                        raise
            except aiomqtt.MqttError as err:
                # The same client id on the next node finds the same session, and the commands queued in it.
                wait = self._failover.failed()
                following = self._failover.current
                log.warning("MQTT connection to %s lost (%s); trying %s in %.1f s", self._url, err, following, wait)
                notify(f"STATUS=reconnecting to {following}: {err}")
            finally:
                self._client = None
            await asyncio.sleep(wait)

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        await client.publish(self._topics.presence(self._device_id), self._presence(PresenceState.ONLINE), 1, True)
        await client.publish(self._topics.announce(self._device_id), encode(self._announcement), qos=1, retain=True)
        await client.subscribe([(topic, 1) for topic in self._topics.device_filters(self._device_id)])
        self._client = client
        log.info("connected to %s as %s", self._url, self._device_id)
        # Connected, announced and subscribed: what a Type=notify unit waits for (repeats are ignored).
        notify("READY=1", f"STATUS=connected to {self._url} as {self._device_id}")
        await self._runner.resend_undelivered()

    async def _settle_journal_loss(self) -> None:
        """Settle a journal loss once this connection has been quiet for SETTLE_S since it subscribed.

        Run only while connected: a connection lost sooner may have cut the burst of retained commands short.
        """
        while True:
            self._activity.clear()
            try:
                async with asyncio.timeout(SETTLE_S):
                    await self._activity.wait()
            except TimeoutError:
                if not self._handling:
                    break
        self._runner.settle_journal_loss()

    async def _say_goodbye(self, client: aiomqtt.Client) -> None:
        # A clean stop says offline itself: the broker sends the last will only when the connection breaks.
        try:
            async with asyncio.timeout(2):
                await client.publish(
                    self._topics.presence(self._device_id), self._presence(PresenceState.OFFLINE), 1, True
                )
        except (aiomqtt.MqttError, TimeoutError):
            log.warning("could not publish offline presence on shutdown")

    async def _on_message(self, message: aiomqtt.Message) -> None:
        """Accept only well-formed commands and cancellations addressed to this device; log and skip the rest."""
        topic = str(message.topic)
        payload = message.payload if isinstance(message.payload, bytes) else b""
        if not payload:
            return  # the controller cleared a finished command's retained message
        try:
            parsed = self._topics.parse(topic)
            if parsed.device_id != self._device_id or parsed.kind not in (TopicKind.COMMAND, TopicKind.CANCEL):
                raise TetherProtocolError(f"not a command or cancellation for {self._device_id}")
            decoded: Command | CancelRequest = (
                decode(Command, payload) if parsed.kind is TopicKind.COMMAND else decode(CancelRequest, payload)
            )
            if decoded.device_id != self._device_id or decoded.command_id != parsed.command_id:
                raise TetherProtocolError(
                    f"payload names device {decoded.device_id!r} and command {decoded.command_id!r}, "
                    "which the topic does not"
                )
        except TetherProtocolError as err:
            log.warning("dropped a message on %s: %s", topic, err)
            return
        try:
            self._verify(payload, decoded)
        except SignatureError as err:
            if isinstance(decoded, Command):
                await self._runner.refuse(decoded, str(err))
            else:
                log.warning("ignored a cancellation of command %s: %s", decoded.command_id, err)
            return
        if isinstance(decoded, Command):
            await self._runner.accept(decoded)
        else:
            await self._runner.cancel(decoded)

    def _verify(self, payload: bytes, decoded: Command | CancelRequest) -> None:
        """SignatureError for a message the trusted keys did not sign, or a command past its expiry."""
        if self._verifier is None:
            return
        body = json.loads(payload)  # it decoded as a model: it is a JSON object
        if isinstance(decoded, Command):
            self._verifier.verify_command(body, utc_now(), decoded.start_before)
        else:
            self._verifier.verify(body)
