"""REMOTE_CONNECTION on Linux: a reverse SSH tunnel to the configured bastion, run by systemd as a transient unit
that stops by itself when its time is up."""

import asyncio
from typing import Any

from agent.config import RemoteConnectionSettings
from agent.errors import HandlerError
from agent.platforms.linux_tools import RUNNING, LinuxTools

REMOTE_UNIT = "tether-remote.service"
SETTLE_S = 2.0
"""How long ssh gets to fail (a refused key or host key, a taken port) before the unit is read back."""


def ssh_argv(bastion: RemoteConnectionSettings, remote_port: int) -> list[str]:
    """ssh forwarding the bastion's `remote_port` to this device's SSH, and nothing else: no shell, no prompt, only
    the known host key, and an exit when the forward cannot be set up."""
    return [
        "ssh",
        "-N",
        "-o",
        "BatchMode=yes",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "ServerAliveInterval=30",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={bastion.known_hosts_file}",
        "-i",
        str(bastion.identity_file),
        "-p",
        str(bastion.port),
        "-R",
        f"{remote_port}:127.0.0.1:{bastion.local_port}",
        f"{bastion.user}@{bastion.host}",
    ]


class LinuxRemoteConnection(LinuxTools):
    def __init__(self, *args: Any, tunnel_settle_s: float = SETTLE_S, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tunnel_settle_s = tunnel_settle_s

    async def open_remote_connection(
        self, bastion: RemoteConnectionSettings, remote_port: int, duration_s: int
    ) -> dict[str, Any]:
        """Start ssh as the transient unit (replacing one already running), then read back that it still runs."""
        replaced = await self.unit_state(REMOTE_UNIT) in RUNNING
        if replaced:
            await self.tool("systemctl", "stop", REMOTE_UNIT)
        await self.tool(
            "systemd-run",
            f"--unit={REMOTE_UNIT.removesuffix('.service')}",
            "--collect",
            f"--property=RuntimeMaxSec={duration_s}",
            *ssh_argv(bastion, remote_port),
        )
        await asyncio.sleep(self.tunnel_settle_s)
        state = await self.unit_state(REMOTE_UNIT)
        if state != "active":
            raise HandlerError(
                f"ssh to {bastion.host} stopped within {self.tunnel_settle_s:g}s ({state}): "
                f"see journalctl -u {REMOTE_UNIT}"
            )
        return {
            "unit": REMOTE_UNIT,
            "bastion": f"{bastion.user}@{bastion.host}:{bastion.port}",
            "remote_port": remote_port,
            "duration_s": duration_s,
            "replaced": replaced,
            "unit_state": state,
        }

    async def close_remote_connection(self) -> dict[str, Any]:
        """Stop the unit if it runs; read back that it does not."""
        was_open = await self.unit_state(REMOTE_UNIT) in RUNNING
        if was_open:
            await self.tool("systemctl", "stop", REMOTE_UNIT)
        state = await self.unit_state(REMOTE_UNIT)
        if state in RUNNING:
            raise HandlerError(f"{REMOTE_UNIT} is still {state} after it was stopped")
        return {"unit": REMOTE_UNIT, "closed": was_open, "unit_state": state}
