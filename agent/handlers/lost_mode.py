"""Lost mode: ENABLE_LOST_MODE, DISABLE_LOST_MODE, LOST_MODE_DEVICE_LOCATION and PLAY_LOST_MODE_SOUND.

Enabling does three things, each tried whatever became of the others, and the result lists each with its outcome:
it keeps lost mode in the agent (announced as the inventory's `lost_mode`, kept across restarts), shows the message
through the device's notifier, and locks the device. A step that failed fails the command, with the steps as its
result: a lost device that is not locked, or whose finder sees no message, must not be reported as handled.
"""

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from agent.errors import HandlerError
from agent.handlers.base import Handler, HandlerContext
from agent.platforms.contract import Beeper, Locator, LostModeDevice, Notifier
from shared.arguments import NoArguments
from shared.arguments.system import LostModeArguments, LostModeSoundArguments
from shared.operations import OperationType

LOST_TITLE = "This device has been reported lost"
FOUND_TITLE = "Lost mode has ended"
FOUND_MESSAGE = "This device is no longer reported lost."


Step = tuple[str, Callable[[], Awaitable[dict[str, Any] | None]]]
"""A named step of lost mode; what it returns joins the command's result."""


async def run_steps(steps: list[Step]) -> dict[str, Any]:
    """Run every step; return their results with `steps` = [{step, ok, error?}], or raise HandlerError naming the
    failed steps, with that result."""
    result: dict[str, Any] = {}
    outcomes: list[dict[str, Any]] = []
    for name, step in steps:
        try:
            found = await step()
        except HandlerError as err:
            outcomes.append({"step": name, "ok": False, "error": str(err)})
        else:
            outcomes.append({"step": name, "ok": True})
            result.update(found or {})
    result["steps"] = outcomes
    failed = [f"{outcome['step']}: {outcome['error']}" for outcome in outcomes if not outcome["ok"]]
    if failed:
        done = [outcome["step"] for outcome in outcomes if outcome["ok"]]
        raise HandlerError(f"{'; '.join(failed)} (done: {', '.join(done) or 'nothing'})", result=result)
    return result


class EnableLostModeHandler(Handler[LostModeArguments, LostModeDevice]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.ENABLE_LOST_MODE})

    async def run(self, arguments: LostModeArguments, context: HandlerContext[LostModeDevice]) -> dict[str, Any]:
        platform = context.platform

        async def record() -> dict[str, Any]:
            return {"lost_mode": (await context.update_lost_mode(arguments.message)).announced()}

        async def show_message() -> None:
            await platform.notify(LOST_TITLE, arguments.shown_message())

        async def lock() -> dict[str, Any]:
            return {"lock": await platform.lock_sessions()}  # what LOCK's result would say

        return await run_steps([("record", record), ("message", show_message), ("lock", lock)])


class DisableLostModeHandler(Handler[NoArguments, Notifier]):
    """Keeps lost mode disabled and replaces the lost message: on Android the new notification takes the old one's
    tag, and the shell has no command to withdraw a notification; on Linux terminals keep what `wall` wrote."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.DISABLE_LOST_MODE})

    async def run(self, arguments: NoArguments, context: HandlerContext[Notifier]) -> dict[str, Any]:
        platform = context.platform

        async def record() -> dict[str, Any]:
            return {"lost_mode": (await context.update_lost_mode(None)).announced()}

        async def show_message() -> None:
            await platform.notify(FOUND_TITLE, FOUND_MESSAGE)

        return await run_steps([("record", record), ("message", show_message)])


class LostModeLocationHandler(Handler[NoArguments, Locator]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.LOST_MODE_DEVICE_LOCATION})

    async def run(self, arguments: NoArguments, context: HandlerContext[Locator]) -> dict[str, Any]:
        return (await context.platform.last_location()).as_result()


class LostModeSoundHandler(Handler[LostModeSoundArguments, Beeper]):
    """The device's beeper for `duration_s`: the one sound the agent can make without a session's sound server."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.PLAY_LOST_MODE_SOUND})
    cancellable: ClassVar[bool] = True

    async def run(self, arguments: LostModeSoundArguments, context: HandlerContext[Beeper]) -> dict[str, Any]:
        await context.platform.beep(arguments.duration_s)
        return {"duration_s": arguments.duration_s}
