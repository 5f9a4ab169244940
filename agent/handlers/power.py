"""REBOOT and SHUT_DOWN: ask the platform, and decide the outcome from the boot id once the agent is back."""

import asyncio
from typing import Any, ClassVar

from agent.errors import HandlerError
from agent.handlers.base import Handler, HandlerContext, RestartOutcome
from agent.platforms.contract import PowerOff, Rebooter
from shared.arguments import NoArguments
from shared.operations import OperationType


class RebootHandler(Handler[NoArguments, Rebooter]):
    """Reboots the device. Success is only ever reported after the restart, when the boot id has changed."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.REBOOT})

    def __init__(self, *, reboot_grace_s: float = 300.0) -> None:
        self.reboot_grace_s = reboot_grace_s

    async def run(self, arguments: NoArguments, context: HandlerContext[Rebooter]) -> dict[str, Any]:
        platform = context.platform
        await platform.reboot()
        # The reboot kills this process on its way down, so still being here after the grace means it did not happen.
        await asyncio.sleep(self.reboot_grace_s)
        raise HandlerError(f"the device did not reboot within {self.reboot_grace_s:g} s of being asked to")

    def outcome_after_restart(self, started_boot_id: str, current_boot_id: str) -> RestartOutcome:
        if current_boot_id == started_boot_id:
            return RestartOutcome(reason="boot id unchanged: the device did not reboot")
        return RestartOutcome(result={"previous_boot_id": started_boot_id, "boot_id": current_boot_id})


class ShutDownHandler(Handler[NoArguments, PowerOff]):
    """Powers the device off. Success is only ever reported once it has been powered on again, with a new boot id."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SHUT_DOWN})
    destructive: ClassVar[bool] = True

    def __init__(self, *, shutdown_grace_s: float = 300.0) -> None:
        self.shutdown_grace_s = shutdown_grace_s

    async def run(self, arguments: NoArguments, context: HandlerContext[PowerOff]) -> dict[str, Any]:
        platform = context.platform
        await platform.shut_down()
        # Powering off kills this process on its way down, so still being here after the grace means it did not.
        await asyncio.sleep(self.shutdown_grace_s)
        raise HandlerError(f"the device did not shut down within {self.shutdown_grace_s:g} s of being asked to")

    def outcome_after_restart(self, started_boot_id: str, current_boot_id: str) -> RestartOutcome:
        if current_boot_id == started_boot_id:
            return RestartOutcome(reason="boot id unchanged: the device did not shut down")
        # Powered off, then on again by someone: a new boot.
        return RestartOutcome(result={"previous_boot_id": started_boot_id, "boot_id": current_boot_id})
