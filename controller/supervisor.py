"""Ends what would otherwise hang: passed deadlines, cancellations and failing rollouts, once a second.

Deadlines pass only while the controller is connected to its broker: when it is not, a device's status may be
waiting on the broker, or on its way, and no device is timed out for a silence the controller could not hear.

A cancellation its device has not confirmed is published again (controller/store/cancellations.py): the broker may
have lost it with the device's session.

Order matters for a device that is online: a command's retained message is cleared before its cancellation is
published, and an agent subscribes to both in one SUBSCRIBE, so an agent that got the command also gets the cancel.
"""

import asyncio
import logging
from datetime import UTC, datetime

from controller.completion import finish_if_done
from controller.dispatcher import Dispatcher
from controller.errors import StorageUnavailable
from controller.fastmqtt.client import ConnectionLost
from controller.hearing import postponement
from controller.mqtt_link import MqttLink
from controller.rollout import Rollout
from controller.store import Store
from shared.messages import CancelRequest, encode_signed, utc_now
from shared.signing import Signer
from shared.topics import Topics

log = logging.getLogger(__name__)

TICK_S = 1.0
BATCH_SIZE = 1000


class Supervisor:
    def __init__(self, store: Store, link: MqttLink, topics: Topics, dispatcher: Dispatcher, signer: Signer) -> None:
        self._store = store
        self._signer = signer
        self._link = link
        self._topics = topics
        self._dispatcher = dispatcher
        self._wake = asyncio.Event()
        self._connections_seen = 0
        """The link's connection count at the last tick that expired deadlines."""

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(TICK_S):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.tick()
            except ConnectionLost as err:
                log.warning("could not publish cancellations yet (%s); retrying", err)
            except StorageUnavailable:
                pass  # logged once, as the disk filled (controller/store/space.py); the next tick tries again

    async def tick(self) -> None:
        """Expire, abort, then tell devices and end the operations that are done."""
        connected = self._link.connected
        expired = self._expire() if connected else set()
        touched = expired | self._abort_failing_rollouts() | set(self._store.control.stopping())
        if connected:
            while finished := self._store.commands.uncleared_terminal(BATCH_SIZE):
                await self._dispatcher.clear(finished)
            if again := self._store.cancellations.requeue_due(datetime.now(UTC)):
                log.info("%d unconfirmed cancellation(s) to publish again", again)
            while orders := self._store.control.pending_cancellations(BATCH_SIZE):
                requested_at = utc_now()
                messages = [
                    (
                        self._topics.cancel(order.device_id, order.command_id),
                        encode_signed(
                            CancelRequest(
                                command_id=order.command_id,
                                device_id=order.device_id,
                                reason=order.reason,
                                requested_at=requested_at,
                            ),
                            self._signer,
                        ),
                    )
                    for order in orders
                ]
                await self._link.publish(messages, retain=False)
                self._store.control.mark_cancellations_sent(orders)
                touched |= {order.operation_id for order in orders}
        for operation_id in touched:
            if finish_if_done(self._store, operation_id):
                log.info("operation %s ended", operation_id)

    def _expire(self) -> set[str]:
        """Move deadlines on by any time the controller could not hear devices, then end those that have passed."""
        now, connections = datetime.now(UTC), self._link.connections
        control = self._store.control
        delay = postponement(control.last_heard(), now, reconnected=connections != self._connections_seen)
        self._connections_seen = connections
        if moved := control.heard(now, delay):
            log.info("%d deadline(s) moved %.1f s later: the controller could not hear devices meanwhile", moved, delay)
        touched: set[str] = set()
        while expired := self._store.control.expire(BATCH_SIZE):
            touched |= expired
        if touched:
            log.info("deadlines passed in %d operation(s)", len(touched))
        return touched

    def _abort_failing_rollouts(self) -> set[str]:
        aborted = set()
        for operation_id, stored in self._store.control.watched_rollouts():
            reason = Rollout.from_stored(stored).abort_reason(self._store.operations.stats(operation_id))
            if reason is not None:
                self._store.control.abort(operation_id, reason)
                log.warning("operation %s %s", operation_id, reason)
                aborted.add(operation_id)
        return aborted
