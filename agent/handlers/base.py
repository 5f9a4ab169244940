"""What every operation handler is: the operation types it runs, the platform protocol it needs, and an async `run`."""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from agent.errors import HandlerError
from shared.arguments.management import DeviceConfigArguments
from shared.messages import Command
from shared.operations import OperationType, Platform


class PlatformTools(Protocol):
    """What a handler may ask of the device; `agent.platforms` implements it per platform."""

    kind: Platform

    async def boot_id(self) -> str: ...


InventoryUpdate = Callable[[Mapping[str, Any]], Awaitable[None]]
"""Merges keys into the device's inventory and announces it again (REFRESH_APPLIST, CONVERGE)."""


async def keep_inventory(_: Mapping[str, Any]) -> None:
    return None


ProfileUpdate = Callable[[DeviceConfigArguments], Awaitable[dict[str, Any]]]
"""Applies an UPDATE_DEVICE_CONFIG change, keeps it, announces again and returns the profile now in force."""


async def no_profile(_: DeviceConfigArguments) -> dict[str, Any]:
    raise HandlerError("this agent keeps no device profile")


@dataclass(frozen=True, slots=True)
class HandlerContext:
    command: Command
    platform: PlatformTools
    work_dir: Path
    """A private directory for this command's files, created by the runner."""
    update_inventory: InventoryUpdate = keep_inventory
    update_profile: ProfileUpdate = no_profile


@dataclass(frozen=True, slots=True)
class RestartOutcome:
    """How a command found in flight after an agent restart ends: SUCCESSFUL with `result`, or FAILED with `reason`."""

    result: dict[str, Any] | None = None
    reason: str | None = None


class Handler:
    """One operation family. Subclasses set the class attributes and implement `run`.

    `needs` is the runtime-checkable protocol a platform must implement for the handler to run there, so a platform's
    capabilities follow from the methods it has. `run` is only called with such a platform and with arguments
    already validated by `shared.arguments`; it returns the `result` of a SUCCESSFUL status, or raises a HandlerError
    whose message is the failure reason.
    """

    operation_types: ClassVar[frozenset[OperationType]]
    needs: ClassVar[type[Any]]
    destructive: ClassVar[bool] = False
    """Destructive handlers run only for the types the agent's config lists in `allow_destructive`."""
    cancellable: ClassVar[bool] = False
    """Whether a cancellation may stop `run` midway: true only where stopping leaves the device as it was or in a
    harmless state (a script, a download, an artifact); never for a package manager, a reboot or a network change."""

    def supports(self, platform: PlatformTools) -> bool:
        return isinstance(platform, self.needs)

    async def run(self, arguments: Any, context: HandlerContext) -> dict[str, Any]:
        raise NotImplementedError

    def outcome_after_restart(self, started_boot_id: str, current_boot_id: str) -> RestartOutcome:
        """Decide a command that was executing when the agent stopped; by default it failed."""
        return RestartOutcome(reason="agent restarted during execution")
