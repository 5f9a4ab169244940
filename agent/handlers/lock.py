"""LOCK: lock every graphical and console session on the device; the platform says what it did."""

from typing import Any, ClassVar

from agent.handlers.base import Handler, HandlerContext
from agent.platforms.contract import SessionLocker
from shared.arguments import NoArguments
from shared.operations import OperationType


class LockHandler(Handler[NoArguments, SessionLocker]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.LOCK})

    async def run(self, arguments: NoArguments, context: HandlerContext[SessionLocker]) -> dict[str, Any]:
        return {"locked": True, **await context.platform.lock_sessions()}
