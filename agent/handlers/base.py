"""What every operation handler is: the operation types it runs, the platform protocol it needs, and an async `run`."""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar, get_args, get_origin

from pydantic import BaseModel

from agent.errors import HandlerError
from agent.platforms.contract import DeviceSurvey
from agent.profile import LostMode
from agent.reachability import ReachabilityCheck, no_broker
from shared.arguments.management import DeviceConfigArguments
from shared.messages import Announcement, Command
from shared.operations import OperationType, Platform


class PlatformTools(Protocol):
    """What a handler may ask of the device; `agent.platforms` implements it per platform."""

    kind: Platform

    async def boot_id(self) -> str: ...


InventoryUpdate = Callable[[Mapping[str, Any]], Awaitable[bool]]
"""Merges keys into the device's inventory and announces it again (REFRESH_APPLIST, CONVERGE); True if the
announcement reached the broker now, False if it goes out on the next connect."""


async def keep_inventory(_: Mapping[str, Any]) -> bool:
    return False


Announce = Callable[[DeviceSurvey], Awaitable[Announcement | None]]
"""Announces the device again with a fresh survey (NUDGE_DEVICE), and its online presence: the announcement published,
or None when it could not be published now (it goes out on the next connect)."""


async def cannot_announce(_: DeviceSurvey) -> Announcement | None:
    raise HandlerError("this agent cannot announce the device")


ProfileUpdate = Callable[[DeviceConfigArguments], Awaitable[dict[str, Any]]]
"""Applies an UPDATE_DEVICE_CONFIG change, keeps it, announces again and returns the profile now in force."""


async def no_profile(_: DeviceConfigArguments) -> dict[str, Any]:
    raise HandlerError("this agent keeps no device profile")


StepRunner = Callable[[OperationType, BaseModel, Path], Awaitable[dict[str, Any]]]
"""Runs one operation inside another (UPDATE_BLUEPRINT's steps) with the checks of a command of its own: the agent's
allowed types, its destructive switch and the platform's support; the Path is the step's work directory."""


async def no_steps(operation_type: OperationType, _: BaseModel, __: Path) -> dict[str, Any]:
    raise HandlerError(f"{operation_type} cannot run as a step here")


LostModeUpdate = Callable[[str | None], Awaitable[LostMode]]
"""Keeps lost mode enabled with a message (or disabled for None), announces it and returns the lost mode now kept."""


async def no_lost_mode(_: str | None) -> LostMode:
    raise HandlerError("this agent keeps no lost mode")


ArgumentsT = TypeVar("ArgumentsT", bound=BaseModel)
PlatformT = TypeVar("PlatformT")


@dataclass(frozen=True, slots=True)
class HandlerContext(Generic[PlatformT]):
    command: Command
    platform: PlatformT
    work_dir: Path
    """A private directory for this command's files, created by the runner."""
    update_inventory: InventoryUpdate = keep_inventory
    update_profile: ProfileUpdate = no_profile
    run_step: StepRunner = no_steps
    update_lost_mode: LostModeUpdate = no_lost_mode
    reach_broker: ReachabilityCheck = no_broker
    """Whether the broker can still be reached: a network change is kept only if it can."""
    announce: Announce = cannot_announce

    @property
    def state_dir(self) -> Path:
        """The device's own state directory (`profile.json`, `journal.db`), of which `work/<command id>` is part."""
        return self.work_dir.parent.parent


@dataclass(frozen=True, slots=True)
class RestartOutcome:
    """How a command found in flight after an agent restart ends: SUCCESSFUL with `result`, or FAILED with `reason`."""

    result: dict[str, Any] | None = None
    reason: str | None = None


class Handler(Generic[ArgumentsT, PlatformT]):
    """One operation family: `class X(Handler[ArgumentsModel, PlatformProtocol])`, with `operation_types` and `run`.

    The protocol is runtime-checkable: a platform must implement it for the handler to run there, so a platform's
    capabilities follow from the methods it has, and `needs` is read from the class's parameters so that mypy checks
    what `run` asks of `context.platform` against the very protocol the registry checks. `run` is only called with
    such a platform and with arguments already validated by `shared.arguments` into the model; it returns the
    `result` of a SUCCESSFUL status, or raises a HandlerError whose message is the failure reason.
    """

    operation_types: ClassVar[frozenset[OperationType]]
    needs: ClassVar[type[Any]]
    arguments_model: ClassVar[Any]
    destructive: ClassVar[bool] = False
    """Destructive handlers run only for the types the agent's config lists in `allow_destructive`."""
    cancellable: ClassVar[bool] = False
    """Whether a cancellation may stop `run` midway: true only where stopping leaves the device as it was or in a
    harmless state (a script, a download, an artifact); never for a package manager, a reboot or a network change."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            origin = get_origin(base)
            parameters = get_args(base)
            if isinstance(origin, type) and issubclass(origin, Handler) and not isinstance(parameters[1], TypeVar):
                cls.arguments_model, cls.needs = parameters

    def supports(self, platform: PlatformTools) -> bool:
        return isinstance(platform, self.needs)

    async def run(self, arguments: ArgumentsT, context: HandlerContext[PlatformT]) -> dict[str, Any]:
        raise NotImplementedError

    def outcome_after_restart(self, started_boot_id: str, current_boot_id: str) -> RestartOutcome:
        """Decide a command that was executing when the agent stopped; by default it failed."""
        return RestartOutcome(reason="agent restarted during execution")


AnyHandler = Handler[Any, Any]
"""A handler of any arguments and platform: what the registry holds and the runner calls."""
