"""Takes in what devices publish: statuses (batched into the store), announcements and presence."""

import asyncio
import logging
from collections.abc import Callable

from controller.completion import finish_if_done
from controller.dispatcher import Dispatcher
from controller.fastmqtt.client import ConnectionLost
from controller.fastmqtt.codec import Publish
from controller.store import Store
from shared.errors import TetherProtocolError
from shared.messages import Announcement, Presence, StatusReport, decode
from shared.operations import ActivityState
from shared.topics import TopicKind, Topics

log = logging.getLogger(__name__)

MAX_BATCH = 2000


class Ingest:
    def __init__(self, store: Store, topics: Topics, dispatcher: Dispatcher, ack: Callable[[Publish], None]) -> None:
        self._store = store
        self._topics = topics
        self._dispatcher = dispatcher
        self._ack = ack
        self._statuses: asyncio.Queue[tuple[str, StatusReport, Publish]] = asyncio.Queue()

    def on_message(self, message: Publish) -> bool:
        """Parse one message; anything malformed or foreign is logged and skipped, never raised.

        Returns False for a status, which is acknowledged only once it is stored; True for everything else.
        """
        topic, payload = message.topic, message.payload
        if not payload:
            return True  # a cleared retained message
        try:
            parsed = self._topics.parse(topic)
            if parsed.kind is TopicKind.STATUS:
                report = decode(StatusReport, payload)
                if report.command_id != parsed.command_id:
                    raise TetherProtocolError(f"payload command_id {report.command_id!r} differs from the topic's")
                self._statuses.put_nowait((parsed.device_id, report, message))
                return False
            elif parsed.kind is TopicKind.ANNOUNCE:
                announcement = decode(Announcement, payload)
                _same_device(announcement.device_id, parsed.device_id)
                self._store.record_announcement(announcement)
            elif parsed.kind is TopicKind.PRESENCE:
                presence = decode(Presence, payload)
                _same_device(presence.device_id, parsed.device_id)
                self._store.record_presence(presence.device_id, presence.state)
        except TetherProtocolError as err:
            log.warning("skipped a message on %s: %s", topic, err)
        return True

    async def run(self) -> None:
        while True:
            batch = [await self._statuses.get()]
            while len(batch) < MAX_BATCH and not self._statuses.empty():
                batch.append(self._statuses.get_nowait())
            await self._apply(batch)

    async def _apply(self, batch: list[tuple[str, StatusReport, Publish]]) -> None:
        outcome = self._store.commands.apply_statuses([(device_id, report) for device_id, report, _ in batch])
        for _, _, message in batch:
            self._ack(message)  # stored (or refused for good): the broker may forget it
        for command_id, reason in outcome.rejected:
            log.info("ignored a status for command %s: %s", command_id, reason)
        for operation_id in outcome.operations:
            if not self._store.has_activity(operation_id, ActivityState.PROCESSING):
                self._store.add_activity(operation_id, ActivityState.PROCESSING, "devices are reporting")
            if finish_if_done(self._store, operation_id):
                log.info("operation %s completed", operation_id)
        if outcome.to_clear:
            try:
                await self._dispatcher.clear(outcome.to_clear)
            except ConnectionLost as err:
                # The dispatcher's sweep clears whatever is left once the connection is back.
                log.warning("could not clear %d retained command(s) yet: %s", len(outcome.to_clear), err)


def _same_device(payload_device: str, topic_device: str) -> None:
    if payload_device != topic_device:
        raise TetherProtocolError(f"payload names device {payload_device!r} but the topic names {topic_device!r}")
