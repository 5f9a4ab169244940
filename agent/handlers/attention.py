"""NOTIFY_DEVICE and BEEP_DEVICE: get the attention of whoever is at the device."""

from typing import Any, ClassVar, cast

from agent.handlers.base import Handler, HandlerContext
from agent.platforms.contract import Beeper, Notifier
from shared.arguments.system import BeepArguments, NotifyArguments
from shared.operations import OperationType


class NotifyHandler(Handler):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.NOTIFY_DEVICE})
    needs: ClassVar[type[Any]] = Notifier

    async def run(self, arguments: NotifyArguments, context: HandlerContext) -> dict[str, Any]:
        await cast(Notifier, context.platform).notify(arguments.title, arguments.message)
        return {"title": arguments.title, "message": arguments.message}


class BeepHandler(Handler):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.BEEP_DEVICE})
    cancellable: ClassVar[bool] = True
    needs: ClassVar[type[Any]] = Beeper

    async def run(self, arguments: BeepArguments, context: HandlerContext) -> dict[str, Any]:
        await cast(Beeper, context.platform).beep(arguments.duration_s)
        return {"duration_s": arguments.duration_s}
