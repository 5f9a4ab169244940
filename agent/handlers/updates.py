"""When the OS updates itself and what is waiting: PAUSE_OS_UPDATES, SET_OS_UPDATE_POLICY and NOTIFY_OTA."""

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from agent.errors import InvalidArguments
from agent.handlers.base import Handler, HandlerContext
from agent.handlers.packages import LISTED_PACKAGES
from agent.platforms.contract import OsUpdateCheck, OsUpdates
from shared.arguments import NoArguments
from shared.arguments.updates import MAX_PAUSE_DAYS, OsUpdatePolicyArguments, PauseOsUpdatesArguments
from shared.operations import OperationType


class OsUpdatePolicyHandler(Handler[OsUpdatePolicyArguments, OsUpdates]):
    """SET_OS_UPDATE_POLICY: automatic, in a daily window, or manual only."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_OS_UPDATE_POLICY})

    async def run(self, arguments: OsUpdatePolicyArguments, context: HandlerContext[OsUpdates]) -> dict[str, Any]:
        return await context.platform.set_os_update_policy(arguments)


class PauseOsUpdatesHandler(Handler[PauseOsUpdatesArguments, OsUpdates]):
    """PAUSE_OS_UPDATES: pause automatic updates for good, until a time or for some days; or resume them."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.PAUSE_OS_UPDATES})

    async def run(self, arguments: PauseOsUpdatesArguments, context: HandlerContext[OsUpdates]) -> dict[str, Any]:
        if not arguments.paused:
            return await context.platform.resume_os_updates()
        return await context.platform.pause_os_updates(pause_end(arguments, datetime.now(UTC)))


def pause_end(arguments: PauseOsUpdatesArguments, now: datetime) -> datetime | None:
    """When the pause ends, by the device's clock: `until` must lie ahead of it, and not beyond MAX_PAUSE_DAYS."""
    if arguments.days is not None:
        return now + timedelta(days=arguments.days)
    until = arguments.until
    if until is not None and until <= now:
        raise InvalidArguments(
            f"invalid arguments: until: {until.isoformat()} has passed (the device's clock reads {now.isoformat()})"
        )
    if until is not None and until > now + timedelta(days=MAX_PAUSE_DAYS):
        raise InvalidArguments(f"invalid arguments: until: a pause ends at most {MAX_PAUSE_DAYS} days ahead")
    return until


class PendingUpdatesHandler(Handler[NoArguments, OsUpdateCheck]):
    """NOTIFY_OTA: which OS updates are waiting, reported and put into the inventory as `os_updates`, so that
    devices can be queried by them (`inventory.os_updates.count`). Nothing is installed."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.NOTIFY_OTA})

    async def run(self, arguments: NoArguments, context: HandlerContext[OsUpdateCheck]) -> dict[str, Any]:
        pending = await context.platform.pending_updates()
        listed = pending.packages[:LISTED_PACKAGES]
        result: dict[str, Any] = {
            "manager": pending.manager,
            "count": len(pending.packages),
            "packages": listed,
            "truncated": len(listed) < len(pending.packages),
        }
        if pending.security is not None:
            result["security"] = pending.security
        await context.update_inventory(
            {"os_updates": {**result, "checked_at": datetime.now(UTC).isoformat(timespec="seconds")}}
        )
        return result
