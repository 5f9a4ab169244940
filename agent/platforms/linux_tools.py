"""The base every Linux capability mix-in shares: a tool timeout and one way to run a tool."""

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from agent import process
from agent.errors import HandlerError
from agent.policy import ScriptPolicy
from agent.process import ProcessResult
from shared.operations import Platform

RUNNING = ("active", "activating", "reloading")
"""The states of a systemd unit that is running (`systemctl try-restart` restarts it, `stop` has something to stop)."""


class LinuxTools:
    """Settings of the Linux platform; mix-ins (linux_*.py) add capabilities on top of it."""

    kind = Platform.LINUX

    def __init__(
        self,
        boot_id_path: Path = Path("/proc/sys/kernel/random/boot_id"),
        tool_timeout: float = 60.0,
        agent_unit: str = "tetherd.service",
        script_policy: ScriptPolicy | None = None,
        etc_dir: Path = Path("/etc"),
        enrolment_paths: Sequence[Path] = (),
    ) -> None:
        self.boot_id_path = boot_id_path
        self.tool_timeout = tool_timeout
        self.agent_unit = agent_unit
        self.script_policy = script_policy or ScriptPolicy()
        self.etc_dir = etc_dir
        """Where the configuration files a handler writes live (polkit rules, modprobe and apt settings); tests
        point it into a temporary directory."""
        self.enrolment_paths = tuple(enrolment_paths)
        """The agent's credentials and state (AgentSettings.enrolment_paths), which REMOVE_DEVICE deletes."""

    async def tool(
        self,
        *argv: str,
        limit_s: float | None = None,
        stdin: bytes | None = None,
        output_limit: int = 4096,
        env: Mapping[str, str] | None = None,
    ) -> ProcessResult:
        """Run a system tool found on PATH (tetherd's environment, or `env`); a non-zero exit raises ToolFailed
        naming the tool and its last line."""
        return await process.check(
            argv, timeout=limit_s or self.tool_timeout, stdin=stdin, output_limit=output_limit, env=env
        )

    async def run_command(
        self,
        argv: Sequence[str],
        *,
        timeout: float,  # noqa: ASYNC109  (the action's own limit, passed down to agent.process)
        work_dir: Path,
        output_limit: int,
    ) -> ProcessResult:
        """An operator-defined command from the agent's config, run from `work_dir` under the script policy."""
        return await self.run_confined(argv, timeout=timeout, work_dir=work_dir, output_limit=output_limit)

    async def run_confined(
        self,
        argv: Sequence[str],
        *,
        timeout: float,  # noqa: ASYNC109  (the caller's own limit, passed down to agent.process)
        work_dir: Path,
        output_limit: int,
        owned: Sequence[Path] = (),
    ) -> ProcessResult:
        """Run what an operator sent (a script, a custom action) as the policy says: its user, a scrubbed
        environment, within its limits; `owned` paths (and `work_dir`) are handed to that user first."""
        policy = self.script_policy
        refusal = policy.limit_refusal(timeout, output_limit)
        if refusal is not None:
            raise HandlerError(refusal)
        account = policy.account
        if account is not None:
            try:
                for path in (work_dir, *owned):
                    os.chown(path, account.uid, account.gid)
            except OSError as err:
                raise HandlerError(f"cannot hand {work_dir} to user {account.name}: {err.strerror or err}") from err
        return await process.run(
            argv,
            timeout=timeout,
            cwd=work_dir,
            output_limit=output_limit,
            env=policy.environment(os.environ),
            as_user=None if account is None else (account.uid, account.gid),
        )

    async def probe(self, argv: Sequence[str]) -> ProcessResult:
        """Run a read-only tool and return its result whatever the exit code."""
        return await process.run(argv, timeout=self.tool_timeout)

    async def unit_state(self, unit: str) -> str:
        """`systemctl is-active UNIT`, which prints the state (`inactive` for a unit it does not know) and exits
        non-zero for any but active."""
        result = await self.probe(["systemctl", "is-active", unit])
        return result.stdout_tail.strip() or "unknown"


def remove_file(path: Path) -> bool:
    """Remove `path`; whether it was there."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as err:
        raise HandlerError(f"cannot remove {path}: {err.strerror or err}") from err
    return True
