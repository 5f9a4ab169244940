"""The leader's work in this process: while it leads (controller/leadership.py), one term of it runs (the broker
link, ingest, dispatch, supervision, the resolving of large queries); the REST API's wakes and events reach the
leader wherever it runs."""

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from controller.dispatcher import Dispatcher
from controller.ingest import Ingest
from controller.leadership import Leadership
from controller.mqtt_link import MqttLink
from controller.scheduler import Resolver
from controller.supervisor import Supervisor

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Term:
    """One stretch of leading; made afresh each time this process takes the lead, so nothing of an earlier term's
    in-memory state (a half-sent batch, a deadline read before another replica led) carries over."""

    link: MqttLink
    dispatcher: Dispatcher
    ingest: Ingest
    supervisor: Supervisor
    resolver: Resolver

    def dispatch(self) -> None:
        """New operations: those stored unresolved to resolve, the others' commands to publish."""
        self.resolver.wake()
        self.dispatcher.wake()

    def supervise(self) -> None:
        self.supervisor.wake()

    def jobs(self) -> tuple[Coroutine[Any, Any, None], ...]:
        return (self.link.run(), self.dispatcher.run(), self.ingest.run(), self.supervisor.run(), self.resolver.run())


class _LostLead(Exception):
    pass


class Lead:
    """Runs a Term while this process leads; between terms, it stands by (the REST API still serves)."""

    def __init__(self, leadership: Leadership, new_term: Callable[[], Term]) -> None:
        self._leadership = leadership
        self._new_term = new_term
        self.term: Term | None = None
        self._wakes: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        while True:
            await self._leadership.acquire()
            term = self.term = self._new_term()
            try:
                async with asyncio.TaskGroup() as group:
                    for job in term.jobs():
                        group.create_task(job)
                    await self._leadership.lost(term)
                    raise _LostLead
            except* _LostLead:
                pass
            finally:
                self.term = None

    def wake_dispatcher(self) -> None:
        """New work to dispatch: this process's dispatcher if it leads, the leader's through the database if not."""
        if self.term is not None:
            self.term.dispatch()
        else:
            self._ask_leader("dispatch")

    def wake_supervisor(self) -> None:
        if self.term is not None:
            self.term.supervise()
        else:
            self._ask_leader("supervise")

    def broker_connected(self) -> bool:
        """Whether the leader's work can reach the broker from here: a standby, which has no link, is ready."""
        return self.term is None or self.term.link.connected

    async def publish(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Operation events go to the broker from the leader only: every replica sees the same changes."""
        if self.term is not None:
            await self.term.link.publish(messages, retain=False)

    def _ask_leader(self, what: str) -> None:
        task = asyncio.get_running_loop().create_task(self._leadership.wake(what))
        self._wakes.add(task)
        task.add_done_callback(self._wakes.discard)
