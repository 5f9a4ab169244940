"""CLEAR_PASSCODE and RESET_LOCKSCREEN_PASSWORD: the lock screen's credential, changed only with the current one.

Results and failure reasons never carry a credential (the platform keeps them out of its errors too).
"""

from typing import Any, ClassVar

from agent.handlers.base import Handler, HandlerContext
from agent.platforms.contract import LockScreenCredential
from shared.arguments.lockscreen import ClearPasscodeArguments, LockscreenPasswordArguments
from shared.operations import OperationType


class ClearPasscodeHandler(Handler[ClearPasscodeArguments, LockScreenCredential]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.CLEAR_PASSCODE})

    async def run(
        self, arguments: ClearPasscodeArguments, context: HandlerContext[LockScreenCredential]
    ) -> dict[str, Any]:
        had_one = await context.platform.clear_lock_credential(arguments.current)
        return {"credential": "none", "changed": had_one}


class ResetLockscreenPasswordHandler(Handler[LockscreenPasswordArguments, LockScreenCredential]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.RESET_LOCKSCREEN_PASSWORD})

    async def run(
        self, arguments: LockscreenPasswordArguments, context: HandlerContext[LockScreenCredential]
    ) -> dict[str, Any]:
        await context.platform.set_lock_credential(arguments.kind, arguments.new, arguments.current)
        return {"credential": str(arguments.kind)}
