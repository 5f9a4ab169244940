"""The base every Linux capability mix-in shares: a tool timeout and one way to run a tool."""

from collections.abc import Sequence
from pathlib import Path

from agent import process
from agent.process import ProcessResult
from shared.operations import Platform


class LinuxTools:
    """Settings of the Linux platform; mix-ins (linux_*.py) add capabilities on top of it."""

    kind = Platform.LINUX

    def __init__(
        self,
        boot_id_path: Path = Path("/proc/sys/kernel/random/boot_id"),
        tool_timeout: float = 60.0,
        agent_unit: str = "tetherd.service",
    ) -> None:
        self.boot_id_path = boot_id_path
        self.tool_timeout = tool_timeout
        self.agent_unit = agent_unit

    async def tool(self, *argv: str, limit_s: float | None = None, stdin: bytes | None = None) -> ProcessResult:
        """Run a system tool found on PATH; a non-zero exit raises ToolFailed naming the tool and its last line."""
        return await process.check(argv, timeout=limit_s or self.tool_timeout, stdin=stdin)

    async def run_command(
        self,
        argv: Sequence[str],
        *,
        timeout: float,  # noqa: ASYNC109  (the action's own limit, passed down to agent.process)
        work_dir: Path,
        output_limit: int,
    ) -> ProcessResult:
        """An operator-defined command from the agent's config, run from `work_dir`."""
        return await process.run(argv, timeout=timeout, cwd=work_dir, output_limit=output_limit)

    async def probe(self, argv: Sequence[str]) -> ProcessResult:
        """Run a read-only tool and return its result whatever the exit code."""
        return await process.run(argv, timeout=self.tool_timeout)
