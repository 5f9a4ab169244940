"""LOCK: lock every graphical and console session on the device."""

from typing import Any, ClassVar, cast

from agent.handlers.base import Handler, HandlerContext
from agent.platforms.contract import SessionLocker
from shared.operations import OperationType


class LockHandler(Handler):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.LOCK})
    needs: ClassVar[type[Any]] = SessionLocker

    async def run(self, arguments: Any, context: HandlerContext) -> dict[str, Any]:
        platform = cast(SessionLocker, context.platform)
        await platform.lock_sessions()
        return {"locked": True}
