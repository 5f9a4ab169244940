"""The only place the agent starts processes: an argument list, a timeout, bounded output, process-group kill."""

import asyncio
import contextlib
import os
import shutil
import signal
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL, PIPE
from typing import IO, Any

from agent import process_groups
from agent.errors import ToolFailed, ToolNotFound, ToolTimeout

KILL_GRACE_S = 3.0
"""How long a process group has to exit after SIGTERM before whatever is left of it gets SIGKILL."""

DRAIN_S = 1.0
"""How long output is still read after the process exits: background children may hold the pipes open forever."""

_POLL_S = 0.05
_MAX_LINE = 512


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """How a process ended, with the last `output_limit` bytes of each output stream."""

    argv: tuple[str, ...]
    returncode: int
    stdout_tail: str
    stderr_tail: str
    duration_s: float
    stdout_truncated: bool
    stderr_truncated: bool

    @property
    def exit_description(self) -> str:
        """`exited 3`, or `was killed by SIGKILL` when a signal ended the process."""
        if self.returncode >= 0:
            return f"exited {self.returncode}"
        try:
            name = signal.Signals(-self.returncode).name
        except ValueError:
            name = f"signal {-self.returncode}"
        return f"was killed by {name}"

    def summary(self) -> dict[str, Any]:
        """The JSON-ready result a status report carries."""
        return {
            "exit_code": self.returncode,
            "stdout": self.stdout_tail,
            "stderr": self.stderr_tail,
            "stdout_truncated": self.stdout_truncated,
            "stderr_truncated": self.stderr_truncated,
            "duration_s": round(self.duration_s, 3),
        }


def last_line(text: str) -> str:
    """The last non-blank line of `text`, shortened to fit in a failure reason."""
    for line in reversed(text.splitlines()):
        if line.strip():
            line = line.strip()
            return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 3] + "..."
    return ""


async def run(
    argv: Sequence[str],
    *,
    # A deadline of its own rather than the caller's asyncio.timeout(): expiry must kill the group and report
    # the partial output as ToolTimeout, which a cancellation cannot carry.
    timeout: float,  # noqa: ASYNC109
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    output_limit: int = 4096,
    stdin: bytes | None = None,
    stdout_path: Path | None = None,
    as_user: tuple[int, int] | None = None,
) -> ProcessResult:
    """Run `argv` to completion in a new session; raise ToolNotFound, or ToolTimeout after killing its group.

    With `as_user` (uid, gid) the child runs as that user and group, with no supplementary groups.

    With `stdout_path`, standard output goes straight into that file (created or truncated), whatever its size, and
    the result's stdout tail is empty: for binary output such as a screenshot. A non-zero exit is not an error here;
    `check` makes it one.
    """
    if not argv:
        raise ValueError("argv must name a program")
    tool = argv[0]
    executable = _resolve(tool, env)
    loop = asyncio.get_running_loop()
    collector = _Collector(output_limit)
    started = time.monotonic()
    # The child gets its own descriptor of the output file; ours is closed as soon as the child has started.
    with contextlib.ExitStack() as files:
        stdout_target = PIPE if stdout_path is None else files.enter_context(_output_file(tool, stdout_path))
        spawning = asyncio.ensure_future(
            loop.subprocess_exec(
                lambda: collector,
                executable,
                *argv[1:],
                stdin=DEVNULL if stdin is None else PIPE,
                stdout=stdout_target,
                stderr=PIPE,
                env=env,
                cwd=cwd,
                start_new_session=True,
                user=None if as_user is None else as_user[0],
                group=None if as_user is None else as_user[1],
                extra_groups=None if as_user is None else [],
            )
        )
        try:
            # Shielded: cancelled while starting, asyncio would kill only the direct child and leave its group
            # running; instead the start completes and the whole group is killed below.
            transport, _ = await asyncio.shield(spawning)
        except asyncio.CancelledError:
            transport, _ = await spawning
            await _kill_group(transport.get_pid(), collector)
            transport.close()
            raise
        except OSError as err:
            raise ToolFailed(f"{tool} could not be started: {err.strerror or err}") from err
    # start_new_session makes the child the leader of a new process group whose id is its pid.
    pgid = transport.get_pid()
    # Written down at once, so that an agent killed before the group ends stops it when it starts again.
    with process_groups.recorded(pgid):
        try:
            if stdin is not None:
                pipe = transport.get_pipe_transport(0)
                if isinstance(pipe, asyncio.WriteTransport):
                    pipe.write(stdin)
                    pipe.close()
            timed_out = not await _wait_for(collector.exited, timeout)
            if timed_out:
                await _kill_group(pgid, collector)
            duration_s = time.monotonic() - started
            await _wait_for(collector.finished, DRAIN_S)
        except asyncio.CancelledError:
            await _kill_group(pgid, collector)
            raise
        finally:
            transport.close()
    returncode = transport.get_returncode()
    stdout, stderr = collector.tails[1], collector.tails[2]
    result = ProcessResult(
        argv=tuple(argv),
        # None only if the process survived SIGKILL (stuck in the kernel); close() has killed it again.
        returncode=-signal.SIGKILL if returncode is None else returncode,
        stdout_tail=stdout.text(),
        stderr_tail=stderr.text(),
        duration_s=duration_s,
        stdout_truncated=stdout.truncated,
        stderr_truncated=stderr.truncated,
    )
    if timed_out:
        raise ToolTimeout(f"{tool} timed out after {timeout:g}s", result=result.summary())
    return result


async def check(
    argv: Sequence[str],
    *,
    timeout: float,  # noqa: ASYNC109
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    output_limit: int = 4096,
    stdin: bytes | None = None,
    stdout_path: Path | None = None,
    ok_returncodes: Collection[int] = (0,),
) -> ProcessResult:
    """`run`, and raise ToolFailed naming the tool, its exit code and its last line of output on an exit code not in
    `ok_returncodes` (0 alone: `dnf check-update` exits 100 when updates are waiting)."""
    result = await run(
        argv, timeout=timeout, env=env, cwd=cwd, output_limit=output_limit, stdin=stdin, stdout_path=stdout_path
    )
    if result.returncode not in ok_returncodes:
        line = last_line(result.stderr_tail) or last_line(result.stdout_tail)
        reason = f"{argv[0]} {result.exit_description}" + (f": {line}" if line else "")
        raise ToolFailed(reason, result=result.summary())
    return result


def _output_file(tool: str, path: Path) -> IO[bytes]:
    try:
        return path.open("wb")
    except OSError as err:
        raise ToolFailed(f"cannot write the output of {tool} to {path}: {err.strerror or err}") from err


def _resolve(tool: str, env: Mapping[str, str] | None) -> str:
    search_path = (os.environ if env is None else env).get("PATH", os.defpath)
    found = shutil.which(tool, path=search_path)
    if found is None:
        where = "or not executable" if os.sep in tool else "on PATH"
        raise ToolNotFound(f"{tool} not found {where}")
    return found


class _Tail:
    """The last `limit` bytes of a stream, and whether anything before them was dropped."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._data = bytearray()
        self.truncated = False

    def add(self, chunk: bytes) -> None:
        self._data += chunk
        excess = len(self._data) - self._limit
        if excess > 0:
            del self._data[:excess]
            self.truncated = True

    def text(self) -> str:
        data = bytes(self._data)
        if self.truncated:
            # The cut may have split a UTF-8 sequence: drop its orphaned continuation bytes.
            start = 0
            while start < min(3, len(data)) and data[start] & 0xC0 == 0x80:
                start += 1
            data = data[start:]
        return data.decode("utf-8", errors="replace")


class _Collector(asyncio.SubprocessProtocol):
    """Keeps output tails as data arrives, so memory stays bounded however much a process writes."""

    def __init__(self, output_limit: int) -> None:
        self.tails = {1: _Tail(output_limit), 2: _Tail(output_limit)}
        self.exited = asyncio.Event()
        self.finished = asyncio.Event()
        """Set once the process has exited and every pipe is closed."""

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        tail = self.tails.get(fd)
        if tail is not None:
            tail.add(data)

    def process_exited(self) -> None:
        self.exited.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.finished.set()


async def _wait_for(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds` for `event`; say whether it is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


async def _kill_group(pgid: int, collector: _Collector) -> None:
    """SIGTERM the whole process group, and SIGKILL whatever is left of it after KILL_GRACE_S."""
    _signal_group(pgid, signal.SIGTERM)
    try:
        async with asyncio.timeout(KILL_GRACE_S):
            await collector.exited.wait()
            # Children may outlive the leader, and nothing notifies us when a group empties: poll with signal 0.
            while _signal_group(pgid, 0):  # noqa: ASYNC110
                await asyncio.sleep(_POLL_S)
    except TimeoutError:
        pass
    finally:
        _signal_group(pgid, signal.SIGKILL)
    await _wait_for(collector.exited, KILL_GRACE_S)


def _signal_group(pgid: int, signum: int) -> bool:
    """Send `signum` to the group; say whether it still had a member we may signal."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True
