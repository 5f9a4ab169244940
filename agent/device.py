"""One Tether device run until cancelled: journal, runner and MQTT session. The host and each Android device are one.

Each device keeps its files under its own root: `journal.db`, `profile.json` (UPDATE_DEVICE_CONFIG's changes and
the lost mode) and `work/` (one directory per command).
"""

import asyncio
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.config import AgentSettings
from agent.handlers.base import AnyHandler, PlatformTools
from agent.journal import Journal
from agent.profile import LostMode, Profile, ProfileStore
from agent.reachability import BrokerReachability
from agent.runner import Runner
from agent.session import Session
from shared.arguments.management import DeviceConfigArguments
from shared.messages import Announcement, StatusReport
from shared.operations import OperationType
from shared.topics import Topics
from shared.transport import BrokerUrl

STOP_GRACE_S = 5.0
"""How long a device's session and runner have to stop (publish offline, disconnect) before they are cancelled again.

Once is not always enough on Python 3.11: asyncio.wait_for, which aiomqtt awaits every publish with, drops a
cancellation that arrives just as the publish completes, and the Session then waits for messages forever. A TaskGroup
cancels its tasks only once, so a device's two tasks are run by `run_until_cancelled` instead.
"""


async def run_until_cancelled(*coroutines: Coroutine[Any, Any, None]) -> None:
    """Run the coroutines as tasks until one ends (raising its error) or this is cancelled; then stop them all.

    Each is cancelled again every STOP_GRACE_S until it has ended.
    """
    tasks = [asyncio.create_task(coroutine) for coroutine in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
        raise RuntimeError("a device task ended without an error")  # Session.run and Runner.run never return
    finally:
        pending = {task for task in tasks if not task.done()}
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=STOP_GRACE_S)


async def run_device(
    *,
    settings: AgentSettings,
    broker_urls: Sequence[BrokerUrl],
    platform: PlatformTools,
    announcement: Announcement,
    root: Path,
    registry: Mapping[OperationType, AnyHandler],
) -> None:
    """Run the device `announcement` names until cancelled, connected with the login in `broker_urls`.

    `announcement` carries the agent config's tags, groups and time zone; the changes kept in the device's profile
    are announced over them, and `reset` returns to them.
    """
    device_id = announcement.device_id
    journal = Journal(root / "journal.db")
    profile = Profile(ProfileStore(root / "profile.json"), announcement)
    session: Session

    async def publish(report: StatusReport) -> bool:
        return await session.publish_status(report)

    async def update_profile(change: DeviceConfigArguments) -> dict[str, Any]:
        before = session.announcement.time_zone
        now, result = profile.change(change, session.announcement)
        await session.reannounce(now)
        if now.time_zone != before:
            runner.zone_changed()  # device-time windows move with the device's clock
        return result

    async def update_lost_mode(message: str | None) -> LostMode:
        now, lost_mode = profile.set_lost_mode(message, session.announcement)
        await session.reannounce(now)
        return lost_mode

    try:
        runner = Runner(
            device_id=device_id,
            platform=platform,
            registry=registry,
            journal=journal,
            publish=publish,
            work_root=root / "work",
            allow_destructive=frozenset(settings.allow_destructive),
            type_policy=settings.type_policy,
            update_inventory=lambda patch: session.update_inventory(patch),
            update_profile=update_profile,
            update_lost_mode=update_lost_mode,
            time_zone=lambda: session.announcement.time_zone,
            reach_broker=BrokerReachability.of(broker_urls),
        )
        session = Session(
            urls=broker_urls,
            device_id=device_id,
            topics=Topics(settings.topic_prefix),
            announcement=profile.announced(announcement),
            runner=runner,
            verifier=settings.verifier,
            tls=settings.tls_files,
            health_interval_s=settings.health_interval_s,
        )
        await runner.recover()
        await run_until_cancelled(session.run(), runner.run())
    finally:
        journal.close()
