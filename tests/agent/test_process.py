"""agent.process against real processes: argv, PATH lookup, exit codes, bounded output, timeouts and cancellation."""

import asyncio
import os
import time
import tracemalloc
from pathlib import Path

import pytest

from agent import process
from agent.errors import ToolFailed, ToolNotFound, ToolTimeout
from tests.fakes import FakeTools, is_running

CHILD_SCRIPT = 'sleep 60 & echo $! > "$PIDFILE"; echo partial; wait'


@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    return FakeTools.on_path(tmp_path / "fake-bin", monkeypatch)


@pytest.fixture(autouse=True)
def short_graces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "KILL_GRACE_S", 0.5)
    monkeypatch.setattr(process, "DRAIN_S", 0.3)


def read_pid(path: Path, within: float = 10.0) -> int:
    deadline = time.monotonic() + within
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} was never written"
        time.sleep(0.01)
    return int(path.read_text())


def wait_gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while is_running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_run_reports_exit_code_and_both_outputs() -> None:
    result = asyncio.run(process.run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10))

    assert result.argv == ("sh", "-c", "echo out; echo err >&2; exit 3")
    assert result.returncode == 3
    assert (result.stdout_tail, result.stderr_tail) == ("out\n", "err\n")
    assert not result.stdout_truncated
    assert not result.stderr_truncated
    assert 0 <= result.duration_s < 5
    assert result.exit_description == "exited 3"
    assert result.summary() == {
        "exit_code": 3,
        "stdout": "out\n",
        "stderr": "err\n",
        "stdout_truncated": False,
        "stderr_truncated": False,
        "duration_s": round(result.duration_s, 3),
    }


def test_run_passes_argv_exactly_without_a_shell(fake_tools: FakeTools) -> None:
    fake_tools.add("tool")
    argv = ["tool", "a b", '--x="$HOME"', "", "; reboot"]

    asyncio.run(process.check(argv, timeout=10))

    assert fake_tools.calls() == [argv]


def test_missing_tool_is_named() -> None:
    with pytest.raises(ToolNotFound, match=r"^no-such-tool-xyz not found on PATH$"):
        asyncio.run(process.run(["no-such-tool-xyz"], timeout=10))


def test_tool_outside_path_is_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(ToolNotFound, match=r"^sh not found on PATH$"):
        asyncio.run(process.run(["sh", "-c", "true"], timeout=10))


def test_missing_absolute_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope"

    with pytest.raises(ToolNotFound, match=rf"^{missing} not found or not executable$"):
        asyncio.run(process.run([str(missing)], timeout=10))


def test_path_comes_from_env_when_given(tmp_path: Path) -> None:
    tools = FakeTools(tmp_path / "elsewhere")
    tools.add("only-here", stdout="found\n")

    result = asyncio.run(process.run(["only-here", "x"], timeout=10, env={"PATH": str(tools.directory)}))

    assert result.stdout_tail == "found\n"
    assert tools.calls() == [["only-here", "x"]]


def test_env_and_cwd_are_applied(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "GREETING": "hello"}

    result = asyncio.run(process.run(["sh", "-c", 'pwd; echo "$GREETING"'], timeout=10, env=env, cwd=tmp_path))

    assert result.stdout_tail == f"{tmp_path}\nhello\n"


def test_stdin_is_fed_and_closed() -> None:
    result = asyncio.run(process.run(["cat"], timeout=10, stdin=b"hello\n"))

    assert result.stdout_tail == "hello\n"


def test_missing_cwd_fails_to_start(tmp_path: Path) -> None:
    with pytest.raises(ToolFailed, match=r"^sh could not be started: "):
        asyncio.run(process.run(["sh", "-c", "true"], timeout=10, cwd=tmp_path / "missing"))


def test_check_names_tool_code_and_last_stderr_line(fake_tools: FakeTools) -> None:
    fake_tools.add("nmcli", exit_code=10, stdout="ignored\n", stderr="warning\nError: No Wi-Fi device found.\n\n")

    with pytest.raises(ToolFailed) as caught:
        asyncio.run(process.check(["nmcli", "radio", "wifi", "on"], timeout=10))

    assert str(caught.value) == "nmcli exited 10: Error: No Wi-Fi device found."
    assert caught.value.result is not None
    assert caught.value.result["exit_code"] == 10
    assert caught.value.result["stdout"] == "ignored\n"


def test_check_falls_back_to_stdout_then_to_the_code(fake_tools: FakeTools) -> None:
    fake_tools.add("chatty", exit_code=4, stdout="it broke\n")
    fake_tools.add("silent", exit_code=2)

    with pytest.raises(ToolFailed, match=r"^chatty exited 4: it broke$"):
        asyncio.run(process.check(["chatty"], timeout=10))
    with pytest.raises(ToolFailed, match=r"^silent exited 2$"):
        asyncio.run(process.check(["silent"], timeout=10))


def test_check_names_the_killing_signal() -> None:
    with pytest.raises(ToolFailed, match=r"^sh was killed by SIGKILL$"):
        asyncio.run(process.check(["sh", "-c", "kill -KILL $$"], timeout=10))


def test_check_returns_the_result_on_success() -> None:
    result = asyncio.run(process.check(["sh", "-c", "echo fine"], timeout=10))

    assert result.returncode == 0
    assert result.stdout_tail == "fine\n"


def test_timeout_kills_the_whole_group_and_keeps_partial_output(
    fake_tools: FakeTools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pidfile = tmp_path / "child.pid"
    monkeypatch.setenv("PIDFILE", str(pidfile))
    fake_tools.add("slowtool", script=CHILD_SCRIPT)

    started = time.monotonic()
    with pytest.raises(ToolTimeout) as caught:
        asyncio.run(process.run(["slowtool"], timeout=0.5))

    assert str(caught.value) == "slowtool timed out after 0.5s"
    assert time.monotonic() - started < 5
    assert caught.value.result is not None
    assert caught.value.result["stdout"] == "partial\n"
    assert caught.value.result["exit_code"] < 0
    assert wait_gone(int(pidfile.read_text()))


def test_timeout_escalates_to_sigkill_for_children_ignoring_sigterm(
    fake_tools: FakeTools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pidfile = tmp_path / "child.pid"
    monkeypatch.setenv("PIDFILE", str(pidfile))
    fake_tools.add("stubborn", script="""(trap '' TERM; exec sleep 60) & echo $! > "$PIDFILE"; wait""")

    with pytest.raises(ToolTimeout):
        asyncio.run(process.run(["stubborn"], timeout=0.5))

    assert wait_gone(int(pidfile.read_text()))


def test_cancellation_kills_the_group_and_propagates(
    fake_tools: FakeTools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pidfile = tmp_path / "child.pid"
    monkeypatch.setenv("PIDFILE", str(pidfile))
    fake_tools.add("slowtool", script=CHILD_SCRIPT)

    async def cancel_midway() -> int:
        task = asyncio.create_task(process.run(["slowtool"], timeout=60))
        pid = await asyncio.to_thread(read_pid, pidfile)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pid

    started = time.monotonic()
    child = asyncio.run(cancel_midway())

    assert time.monotonic() - started < 5
    assert wait_gone(child)


def test_huge_output_keeps_only_bounded_tails(fake_tools: FakeTools) -> None:
    ten_mb = "head -c 10000000 /dev/zero | tr '\\0' x"
    fake_tools.add("flood", script=f"{ten_mb}; echo END; {ten_mb} >&2; echo ERR-END >&2")

    tracemalloc.start()
    try:
        result = asyncio.run(process.run(["flood"], timeout=60, output_limit=1000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert len(result.stdout_tail) == 1000
    assert result.stdout_tail.endswith("xxxEND\n")
    assert len(result.stderr_tail) == 1000
    assert result.stderr_tail.endswith("xxxERR-END\n")
    assert result.stdout_truncated
    assert result.stderr_truncated
    assert peak < 4_000_000


def test_zero_output_limit_keeps_nothing_but_says_so() -> None:
    result = asyncio.run(process.run(["sh", "-c", "echo something"], timeout=10, output_limit=0))

    assert result.stdout_tail == ""
    assert result.stdout_truncated
    assert not result.stderr_truncated


def test_tail_cut_inside_a_utf8_character_is_clean() -> None:
    # 3000 two-byte characters; keeping 1001 bytes starts the tail on a continuation byte.
    result = asyncio.run(process.run(["sh", "-c", "printf 'é%.0s' $(seq 3000)"], timeout=10, output_limit=1001))

    assert result.stdout_tail == "é" * 500


def test_invalid_utf8_is_replaced() -> None:
    result = asyncio.run(process.run(["sh", "-c", r"printf 'a\377b'"], timeout=10))

    assert result.stdout_tail == "a\ufffdb"


def test_background_child_holding_the_pipes_does_not_block(tmp_path: Path) -> None:
    started = time.monotonic()
    result = asyncio.run(process.run(["sh", "-c", "sleep 30 & echo $!; echo done"], timeout=20))

    child = int(result.stdout_tail.split()[0])
    try:
        assert result.returncode == 0
        assert result.stdout_tail.endswith("done\n")
        assert time.monotonic() - started < 10
    finally:
        os.kill(child, 9)


def test_empty_argv_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="argv"):
        asyncio.run(process.run([], timeout=1))


@pytest.mark.parametrize(
    ("text", "line"),
    [("", ""), ("one\ntwo\n\n  \n", "two"), ("  padded  ", "padded"), ("x" * 600, "x" * 509 + "...")],
)
def test_last_line(text: str, line: str) -> None:
    assert process.last_line(text) == line


def test_stdout_can_go_to_a_file_whatever_its_size(tmp_path: Path) -> None:
    destination = tmp_path / "out.bin"
    script = "head -c 300000 /dev/zero; echo done >&2"
    result = asyncio.run(process.run(["sh", "-c", script], timeout=5, output_limit=10, stdout_path=destination))
    assert destination.read_bytes() == bytes(300000)
    assert (result.stdout_tail, result.stdout_truncated, result.stderr_tail) == ("", False, "done\n")


def test_an_unwritable_stdout_file_fails_before_starting(tmp_path: Path) -> None:
    with pytest.raises(ToolFailed, match="cannot write the output of sh"):
        asyncio.run(process.run(["sh", "-c", "touch started"], timeout=5, cwd=tmp_path, stdout_path=tmp_path / "no/x"))
    assert not (tmp_path / "started").exists()
