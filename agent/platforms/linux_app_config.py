"""Managed app configuration on Linux: a JSON file per app under /etc/tether/app-config, and its service restarted."""

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from agent.errors import HandlerError
from agent.files import write_atomically
from agent.platforms.linux_tools import RUNNING, LinuxTools


class LinuxAppConfig(LinuxTools):
    def app_config_path(self, app: str) -> Path:
        return self.etc_dir / "tether" / "app-config" / f"{app}.json"

    async def apply_app_config(self, app: str, document: bytes, restart_unit: str | None) -> dict[str, Any]:
        """Replace the app's file atomically (0644); with `restart_unit`, `systemctl try-restart` it if it runs and
        read `systemctl is-active` before and after."""
        path = self.app_config_path(app)
        previous = await asyncio.to_thread(write_atomically, path, document)
        result: dict[str, Any] = {
            "app": app,
            "path": str(path),
            "sha256": hashlib.sha256(document).hexdigest(),
            "size_bytes": len(document),
            "changed": previous != document,
        }
        if restart_unit is None:
            return result
        result |= {"restart_unit": restart_unit, "restarted": False}
        before = await self.unit_state(restart_unit)
        try:
            await self.tool("systemctl", "try-restart", restart_unit)
        except HandlerError as err:
            raise HandlerError(f"wrote {path}, but could not restart {restart_unit}: {err}", result=result) from err
        result |= {"restarted": before in RUNNING, "unit_state": await self.unit_state(restart_unit)}
        if result["restarted"] and result["unit_state"] != "active":
            raise HandlerError(
                f"wrote {path} and restarted {restart_unit}, but it is {result['unit_state']} now: "
                f"see journalctl -u {restart_unit}",
                result=result,
            )
        return result
