"""LOCK: lock every graphical and console session on the device."""

from typing import Any, ClassVar, Protocol, runtime_checkable

from agent.errors import UnsupportedOperation
from agent.handlers.base import Handler, HandlerContext
from shared.operations import OperationType, Platform


@runtime_checkable
class SessionLocker(Protocol):
    """What LOCK needs of a platform."""

    async def lock_sessions(self) -> None: ...


class LockHandler(Handler):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.LOCK})
    platforms: ClassVar[frozenset[Platform]] = frozenset({Platform.LINUX})

    async def run(self, arguments: Any, context: HandlerContext) -> dict[str, Any]:
        platform = context.platform
        if not isinstance(platform, SessionLocker):
            raise UnsupportedOperation(f"{OperationType.LOCK} is not supported on {platform.kind}")
        await platform.lock_sessions()
        return {"locked": True}
