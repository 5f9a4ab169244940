"""SET_WALLPAPER and SET_DEVICE_LOCKDOWN_STATE: what the device's screen shows, and who may log in to it."""

from typing import Any, ClassVar

from agent.download import DOWNLOAD_TIMEOUT_S, fetch, file_name
from agent.handlers.base import Handler, HandlerContext
from agent.platforms.contract import Lockdown, Wallpaper
from shared.arguments.system import LockdownArguments, WallpaperArguments
from shared.operations import OperationType

MAX_WALLPAPER_BYTES = 64 * 1024**2
"""Far above any screen's image; the file is read whole into memory to be stored."""


class WallpaperHandler(Handler[WallpaperArguments, Wallpaper]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_WALLPAPER})

    async def run(self, arguments: WallpaperArguments, context: HandlerContext[Wallpaper]) -> dict[str, Any]:
        fetched = await fetch(
            arguments,
            context.work_dir / file_name(arguments),
            max_bytes=MAX_WALLPAPER_BYTES,
            timeout_s=DOWNLOAD_TIMEOUT_S,
        )
        try:
            applied = await context.platform.set_wallpaper(fetched.path)
        finally:
            fetched.path.unlink(missing_ok=True)
        return {**applied, "size_bytes": fetched.size_bytes, "sha256": fetched.sha256}


class LockdownHandler(Handler[LockdownArguments, Lockdown]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_DEVICE_LOCKDOWN_STATE})

    async def run(self, arguments: LockdownArguments, context: HandlerContext[Lockdown]) -> dict[str, Any]:
        return await context.platform.set_lockdown(arguments.enabled, arguments.message)
