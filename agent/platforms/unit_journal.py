"""The systemd journal as text: the whole system's for COLLECT_LOGS, the agent unit's for REQUEST_DPCLOG."""

import asyncio
from pathlib import Path

from agent import process

BYTES_PER_LOG_LINE = 512
"""Bounds what is kept of journalctl's output: `max_lines` lines of this average length."""


def journal_argv(*, since_minutes: int, max_lines: int, unit: str | None = None) -> list[str]:
    """`journalctl --no-pager -o short-iso [-u UNIT] --since -Nmin -n MAX`."""
    only_unit = ["-u", unit] if unit else []
    return [
        "journalctl",
        "--no-pager",
        "-o",
        "short-iso",
        *only_unit,
        "--since",
        f"-{since_minutes}min",
        "-n",
        str(max_lines),
    ]


async def write_journal(
    destination: Path,
    *,
    since_minutes: int,
    max_lines: int,
    timeout: float,  # noqa: ASYNC109  (the platform's tool limit, passed down to agent.process)
    unit: str | None = None,
) -> None:
    """Write the journal of the last `since_minutes` (of `unit` alone if given) to `destination`; ToolFailed if
    journalctl fails, ToolNotFound if it is missing."""
    result = await process.check(
        journal_argv(since_minutes=since_minutes, max_lines=max_lines, unit=unit),
        timeout=timeout,
        output_limit=max_lines * BYTES_PER_LOG_LINE,
    )
    await asyncio.to_thread(destination.write_text, result.stdout_tail)


class AgentJournal:
    """REQUEST_DPCLOG where the agent runs under systemd on this host: the journal of its unit (`agent_unit`).

    For an Android device that is the bridge's whole log: its text lines do not name the device they are about.
    """

    tool_timeout: float
    agent_unit: str

    async def collect_agent_log(self, destination: Path, *, since_minutes: int, max_lines: int) -> None:
        await write_journal(
            destination,
            since_minutes=since_minutes,
            max_lines=max_lines,
            timeout=self.tool_timeout,
            unit=self.agent_unit,
        )
