"""Faults of the agent's own making: a journal it cannot read, and being killed while a script runs.

A real `tetherd` on a private Mosquitto with a real controller: the journal is damaged on disk between two runs, or
the agent is SIGKILLed outside systemd (no KillMode=control-group to clean up after it).
"""

import contextlib
import os
import re
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from agent.session import SETTLE_S
from tests.e2e.harness import (
    Agent,
    Controller,
    PersistentMosquitto,
    line_count,
    restart_controller,
    run_cli,
    wait_for,
)
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e


def script_operation(script: str) -> dict[str, Any]:
    return {
        "operation_type": "RUN_SHELL_SCRIPT",
        "operation_device_query": {"device_id": "alpha"},
        "arguments": {"script": script},
    }


def device_result(controller: Controller, operation_id: str) -> dict[str, Any]:
    return controller.device_results(operation_id)["alpha"]


def run_lock(controller: Controller, agent: Agent) -> None:
    before = len(agent.locks())
    created = controller.create({"operation_type": "LOCK", "operation_device_query": {"device_id": "alpha"}})
    assert controller.wait_finished(created["id"])["state"] == "COMPLETED"
    assert device_result(controller, created["id"])["status"] == "SUCCESSFUL"
    assert len(agent.locks()) == before + 1


def stable(result: dict[str, Any]) -> dict[str, Any]:
    """A device result without `updated_at`, which a harmless repeated final status may touch."""
    return {key: value for key, value in result.items() if key != "updated_at"}


def connected_times(agent: Agent) -> int:
    return agent.process.output().count("connected to")


def end_group(pid_file: Path) -> None:
    """Clean up after a test whose script may outlive it: it leads its own process group, whose id it wrote down."""
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        os.killpg(int(pid_file.read_text().strip()), signal.SIGKILL)


# --- a journal the agent cannot read ------------------------------------------------------------------------------


def garbage(path: Path) -> None:
    path.write_bytes(os.urandom(16384))


def truncated(path: Path) -> None:
    data = path.read_bytes()
    assert len(data) > 4096, "the journal should hold more than its first page"
    path.write_bytes(data[: len(data) // 2])


def empty(path: Path) -> None:
    path.write_bytes(b"")


def directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "garbage": garbage,
    "truncated": truncated,
    "empty": empty,
    "directory": directory,
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_a_corrupt_journal_is_set_aside_and_a_command_the_agent_may_have_run_fails_as_journal_lost_never_twice(
    tmp_path: Path, alpha: tuple[Controller, Agent], corruption: str
) -> None:
    controller, agent = alpha
    runs, pid_file, gate = tmp_path / "runs.txt", tmp_path / "script.pid", tmp_path / "gate"
    state = agent.work / "state"
    try:
        run_lock(controller, agent)
        agent.restart()  # a clean stop folds the journal's write-ahead log into the file that is damaged below
        wait_for("the agent reconnected", lambda: connected_times(agent) >= 2)
        script = (
            f"echo run >> {runs}\necho $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}\n"
            f"while [ ! -e {gate} ]; do sleep 0.05; done\n"
        )
        operation_id = controller.create(script_operation(script))["id"]
        wait_for("the script running", pid_file.exists)
        wait_for("alpha EXECUTING", lambda: device_result(controller, operation_id)["status"] == "EXECUTING")

        agent.process.kill()
        for companion in ("journal.db-wal", "journal.db-shm"):
            (state / companion).unlink(missing_ok=True)
        journal = state / "journal.db"
        CORRUPTIONS[corruption](journal)
        damaged = journal.read_bytes() if journal.is_file() else None
        agent.process = agent.start()

        operation = controller.wait_finished(operation_id, timeout=30)
        result = device_result(controller, operation_id)
        assert result["status"] == "FAILED", result
        assert result["failure_reason"].startswith("journal lost"), result
        assert operation["operation_stats"]["device_operation_statuses_count"]["failed_device_count"] == 1
        assert line_count(runs) == 1
        assert agent.process.popen.poll() is None, agent.process.output()
        # Kept for forensics under a timestamped name, and said in one line of the log.
        kept = [p for p in state.iterdir() if re.fullmatch(r"journal\.db\.lost-\d{8}T\d{6}Z", p.name)]
        assert len(kept) == 1, sorted(p.name for p in state.iterdir())
        if damaged is not None:
            assert kept[0].read_bytes() == damaged
        else:
            assert kept[0].is_dir()
        assert agent.process.output().count(f"moved it to {kept[0]}") == 1, agent.process.output()

        # Once every command the broker still held for the device has been seen, new commands run as usual.
        wait_for("the journal loss settled", lambda: "journal loss settled" in agent.process.output())
        run_lock(controller, agent)
        agent.restart()  # the fresh journal is a sound one: no second loss, and the old command is still not run
        wait_for("the agent reconnected", lambda: connected_times(agent) >= 4)
        time.sleep(0.5)
        assert line_count(runs) == 1
        assert agent.process.output().count("moved it to") == 1
        assert stable(device_result(controller, operation_id)) == stable(result)
    finally:
        gate.touch()
        end_group(pid_file)


def test_a_journal_loss_settles_only_on_a_connection_that_stayed_up_through_its_quiet_time(
    tmp_path: Path, mosquitto_url: str
) -> None:
    """A connection cut before it settles may have cut the burst of retained commands short: it settles nothing."""
    state = tmp_path / "alpha" / "state"
    state.mkdir(parents=True)
    garbage(state / "journal.db")
    with TcpProxy.to_url(mosquitto_url) as proxy:
        agent = Agent(tmp_path, proxy.url, "alpha")
        try:
            wait_for("the agent connected", lambda: connected_times(agent) >= 1)
            proxy.cut()
            time.sleep(SETTLE_S + 2)
            assert "journal loss settled" not in agent.process.output()
            proxy.restore()
            wait_for("the agent reconnected", lambda: connected_times(agent) >= 2, timeout=60)
            reconnected = time.monotonic()
            wait_for("the journal loss settled", lambda: "journal loss settled" in agent.process.output())
            assert time.monotonic() - reconnected >= SETTLE_S - 1
            assert agent.process.popen.poll() is None
        finally:
            agent.stop()


def test_a_journal_held_by_another_agent_is_never_set_aside_and_the_agent_says_why_in_one_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    journal = state / "journal.db"
    holder = sqlite3.connect(journal, isolation_level=None)
    holder.executescript("PRAGMA journal_mode=DELETE; CREATE TABLE commands (command_id TEXT);")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        done = run_cli(
            "tetherd", "run", "--broker", "mqtt://127.0.0.1:1", "--device-id", "d1", "--state-dir", str(state)
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert done.returncode == 1, done.stderr
    assert (
        done.stderr.strip().splitlines()[-1] == f"tetherd: error: cannot open the journal {journal}: database is locked"
    )
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in state.iterdir()) == ["journal.db"]


# --- an agent killed in the middle of a script --------------------------------------------------------------------


def group_members(pgid: int) -> list[psutil.Process]:
    """The live (not zombie) processes of process group `pgid`."""
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
    return members


def size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def stops_growing(path: Path, quiet_s: float = 1.0) -> bool:
    before = size(path)
    time.sleep(quiet_s)
    return size(path) == before


def test_a_script_orphaned_by_a_killed_agent_is_stopped_when_it_restarts_and_fails_once_never_to_run_again(
    tmp_path: Path, alpha: tuple[Controller, Agent]
) -> None:
    controller, agent = alpha
    runs, pid_file, marker = tmp_path / "runs.txt", tmp_path / "script.pid", tmp_path / "marker.txt"
    try:
        script = (
            f"echo run >> {runs}\necho $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}\n"
            # A background child in the same group that ignores SIGTERM: the whole group must go, by SIGKILL if need be.
            f"(trap '' TERM; while true; do echo child >> {marker}; sleep 0.2; done) &\n"
            f"i=0; while [ $i -lt 1500 ]; do echo tick >> {marker}; sleep 0.2; i=$((i+1)); done\n"
        )
        operation_id = controller.create(script_operation(script))["id"]
        wait_for("the script running", pid_file.exists)
        wait_for("alpha EXECUTING", lambda: device_result(controller, operation_id)["status"] == "EXECUTING")
        pgid = int(pid_file.read_text())
        wait_for("the script and its child running", lambda: len(group_members(pgid)) >= 2)
        pids = [process.pid for process in group_members(pgid)]

        agent.process.kill()
        assert not stops_growing(marker, 0.6), "the script should outlive the agent it was orphaned by"
        agent.process = agent.start()

        wait_for("the orphaned script's group gone", lambda: not group_members(pgid), timeout=15)
        assert all(not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE for pid in pids)
        assert stops_growing(marker)
        operation = controller.wait_finished(operation_id, timeout=20)
        result = device_result(controller, operation_id)
        assert result["status"] == "FAILED", result
        assert result["failure_reason"] == (
            "agent restarted during execution; the processes it had started were stopped"
        ), result
        assert operation["operation_stats"]["device_operation_statuses_count"]["failed_device_count"] == 1
        assert agent.process.output().count(f"command {result['command_id']} FAILED") == 1

        agent.restart()  # never again: the retained command comes back and is answered with its final status
        wait_for("the agent reconnected", lambda: connected_times(agent) >= 3)
        time.sleep(0.5)
        assert line_count(runs) == 1
        assert stable(device_result(controller, operation_id)) == stable(result)
    finally:
        end_group(pid_file)


def test_a_command_the_broker_lost_and_the_controller_sends_again_after_a_journal_loss_settled_never_runs_twice(
    tmp_path: Path,
) -> None:
    # The agent ran the script, was killed and lost its journal; the broker lost the retained command too. The agent
    # settles its loss on a quiet connection, then the controller, finding no session, publishes the command again:
    # the copy must read as issued before the loss, or the agent takes it for new and runs it a second time.
    runs, gate, pid_file = tmp_path / "runs.txt", tmp_path / "gate", tmp_path / "script.pid"
    broker = PersistentMosquitto(tmp_path / "mosquitto").start()
    controller = Controller(tmp_path, broker.url)
    agent = Agent(tmp_path, broker.url, "alpha")
    state = agent.work / "state"
    try:
        controller.wait_online("alpha")
        script = f"echo run >> {runs}\necho $$ > {pid_file}\nwhile [ ! -e {gate} ]; do sleep 0.05; done\n"
        operation_id = controller.create(script_operation(script))["id"]
        wait_for("alpha EXECUTING", lambda: device_result(controller, operation_id)["status"] == "EXECUTING")

        agent.process.kill()
        end_group(pid_file)
        controller.process.stop()
        assert broker.process is not None
        broker.process.kill()  # unsaved: the restarted broker holds no retained command and no session
        broker.process = None
        for companion in ("journal.db-wal", "journal.db-shm"):
            (state / companion).unlink(missing_ok=True)
        garbage(state / "journal.db")
        broker.start()
        agent.process = agent.start()
        wait_for("the loss settled", lambda: "journal loss settled" in agent.process.output(), timeout=SETTLE_S + 20)

        restart_controller(controller)
        operation = controller.wait_finished(operation_id, timeout=30)
        result = device_result(controller, operation_id)
        assert result["status"] == "FAILED", result
        assert result["failure_reason"].startswith("journal lost"), result
        assert operation["state"] == "COMPLETED"
        assert line_count(runs) == 1
    finally:
        gate.touch()
        end_group(pid_file)
        agent.stop()
        controller.stop()
        broker.stop()
