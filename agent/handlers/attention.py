"""NOTIFY_DEVICE and BEEP_DEVICE: get the attention of whoever is at the device."""

from typing import Any, ClassVar

from agent.handlers.base import Handler, HandlerContext
from agent.platforms.contract import Beeper, Notifier
from shared.arguments.system import BeepArguments, NotifyArguments
from shared.operations import OperationType


class NotifyHandler(Handler[NotifyArguments, Notifier]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.NOTIFY_DEVICE})

    async def run(self, arguments: NotifyArguments, context: HandlerContext[Notifier]) -> dict[str, Any]:
        reached = await context.platform.notify(arguments.title, arguments.message)
        return {"title": arguments.title, "message": arguments.message, **(reached or {})}


class BeepHandler(Handler[BeepArguments, Beeper]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.BEEP_DEVICE})
    cancellable: ClassVar[bool] = True

    async def run(self, arguments: BeepArguments, context: HandlerContext[Beeper]) -> dict[str, Any]:
        await context.platform.beep(arguments.duration_s)
        return {"duration_s": arguments.duration_s}
