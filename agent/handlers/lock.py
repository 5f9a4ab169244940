"""LOCK: lock every graphical and console session on the device."""

from typing import Any, ClassVar, Protocol, cast, runtime_checkable

from agent.handlers.base import Handler, HandlerContext
from shared.operations import OperationType


@runtime_checkable
class SessionLocker(Protocol):
    """What LOCK needs of a platform."""

    async def lock_sessions(self) -> None: ...


class LockHandler(Handler):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.LOCK})
    needs: ClassVar[type[Any]] = SessionLocker

    async def run(self, arguments: Any, context: HandlerContext) -> dict[str, Any]:
        platform = cast(SessionLocker, context.platform)
        await platform.lock_sessions()
        return {"locked": True}
