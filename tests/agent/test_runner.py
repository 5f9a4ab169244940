"""The runner with a real journal and platform: order, at-most-once, restarts and undelivered final statuses."""

import asyncio
import signal
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent import process_groups
from agent.handlers import build_registry
from agent.journal import JOURNAL_LOST, Journal, Stage
from agent.platforms.linux import LinuxPlatform
from agent.runner import PROCESSES_STOPPED, RESTARTED, Runner
from shared.messages import CancelRequest, Command, StatusReport, utc_now
from shared.operations import DeviceStatus, OperationType
from shared.schedule import Window
from tests.fakes import FakeSession, FakeTools, logind


class Bench:
    """A runner whose statuses land in a list; `online` decides whether publishing succeeds."""

    def __init__(self, tmp_path: Path, tools: FakeTools) -> None:
        self.tmp_path = tmp_path
        self.tools = tools
        self.boot_id = tmp_path / "boot_id"
        self.boot_id.write_text("boot-1\n")
        self.published: list[StatusReport] = []
        self.online = True
        self.journal = Journal(tmp_path / "state" / "journal.db")
        self.runner = self.new_runner()

    def new_runner(self, allow_destructive: frozenset[OperationType] = frozenset()) -> Runner:
        self.time_zone: str | None = None
        """The zone the device announces now."""
        return Runner(
            time_zone=lambda: self.time_zone,
            allow_destructive=allow_destructive,
            device_id="d1",
            platform=LinuxPlatform(boot_id_path=self.boot_id, tool_timeout=5),
            registry=build_registry(reboot_grace_s=0.2),
            journal=self.journal,
            publish=self._publish,
            work_root=self.tmp_path / "work",
        )

    async def _publish(self, report: StatusReport) -> bool:
        if self.online:
            self.published.append(report)
        return self.online

    def statuses(self, command_id: str) -> list[str]:
        return [r.status for r in self.published if r.command_id == command_id]

    def final(self, command_id: str) -> StatusReport:
        return [r for r in self.published if r.command_id == command_id][-1]

    def locks(self) -> list[list[str]]:
        """The times LOCK ran its tool (the session look-ups around it left out)."""
        return [argv for argv in self.tools.calls("loginctl") if argv[1:] == ["lock-sessions"]]

    def drive(self, *commands: Command, settle: float = 0.0) -> None:
        """Accept the commands and run the queue until it is empty (plus `settle` seconds)."""

        async def go() -> None:
            worker = asyncio.create_task(self.runner.run())
            for command in commands:
                await self.runner.accept(command)
            await until(lambda: self.runner._queue.empty() and not self._busy())
            await asyncio.sleep(settle)
            worker.cancel()

        asyncio.run(go())

    def _busy(self) -> bool:
        return bool(self.journal.in_stage(Stage.EXECUTING))


async def until(condition: Callable[[], bool], limit_s: float = 10.0) -> None:
    """Poll `condition` every 10 ms; fail the test if it stays false for `limit_s` seconds."""
    for _ in range(int(limit_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


def command(command_id: str, operation_type: OperationType, **arguments: Any) -> Command:
    return Command(
        command_id=command_id,
        operation_id="op",
        device_id="d1",
        operation_type=operation_type,
        arguments=arguments,
        issued_at=utc_now(),
    )


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bench]:
    tools = FakeTools.on_path(tmp_path / "bin", monkeypatch)
    tools.add("loginctl", script=logind(FakeSession("2")))  # LOCK, the commands here, needs a session to lock
    bench = Bench(tmp_path, tools)
    yield bench
    bench.journal.close()


def test_statuses_in_order_and_fifo(bench: Bench) -> None:
    first = command("c1", OperationType.RUN_SHELL_SCRIPT, script="sleep 0.2; echo one >> order")
    second = command("c2", OperationType.RUN_SHELL_SCRIPT, script="echo two >> ../c1/order")
    bench.drive(first, second)
    assert bench.statuses("c1") == ["PENDING", "EXECUTING", "SUCCESSFUL"]
    assert bench.statuses("c2") == ["PENDING", "EXECUTING", "SUCCESSFUL"]
    assert (bench.tmp_path / "work" / "c1" / "order").read_text() == "one\ntwo\n"


def test_a_command_id_runs_once_and_a_finished_one_resends_its_status(bench: Bench) -> None:
    lock = command("c1", OperationType.LOCK)
    bench.drive(lock, lock)
    assert bench.locks() == [["loginctl", "lock-sessions"]]
    bench.drive(lock)
    assert bench.locks() == [["loginctl", "lock-sessions"]]
    assert bench.statuses("c1") == ["PENDING", "EXECUTING", "SUCCESSFUL", "SUCCESSFUL"]


def test_unsupported_and_invalid_fail_at_once_without_executing(bench: Bench) -> None:
    bench.drive(
        command("c1", OperationType.APPLE_APP_UNINSTALL),
        command("c2", OperationType.SET_WIFI_STATE, wifi_state="sideways"),
        command("c3", OperationType.RUN_SHELL_SCRIPT),
    )
    assert bench.statuses("c1") == ["PENDING", "FAILED"]
    assert bench.final("c1").failure_reason == "APPLE_APP_UNINSTALL is not supported on linux"
    assert bench.statuses("c2") == ["PENDING", "FAILED"]
    assert "wifi_state" in (bench.final("c2").failure_reason or "")
    assert "script" in (bench.final("c3").failure_reason or "")
    assert bench.tools.calls("nmcli") == []


def test_a_schedule_this_agent_cannot_read_is_refused(bench: Bench) -> None:
    scheduled = command("c1", OperationType.LOCK).model_copy(update={"schedule": {"window": "02:00-03:00"}})
    bench.drive(scheduled)
    assert bench.statuses("c1") == ["PENDING", "FAILED"]
    assert (bench.final("c1").failure_reason or "").startswith("invalid schedule: ")
    assert bench.locks() == []


def window(start: datetime, end: datetime, zone: str | None = None) -> dict[str, Any]:
    described = Window.from_request(start=start, end=end, time_type=None, days=None, now=start).describe()
    return {**described, "device_time_zone": zone}


def test_a_command_waits_for_its_window_without_holding_up_the_others(bench: Bench) -> None:
    opens = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    scheduled = command("c1", OperationType.LOCK).model_copy(
        update={"schedule": window(opens, opens + timedelta(hours=1))}
    )
    bench.drive(scheduled, command("c2", OperationType.RUN_SHELL_SCRIPT, script="true"))
    assert bench.statuses("c1") == ["PENDING"]
    assert bench.statuses("c2") == ["PENDING", "EXECUTING", "SUCCESSFUL"]

    async def restarted() -> None:
        bench.runner = bench.new_runner()
        await bench.runner.recover()  # the journal still holds the parked command as queued
        worker = asyncio.create_task(bench.runner.run())
        await until(lambda: bench.statuses("c1")[-1:] == ["SUCCESSFUL"])
        worker.cancel()

    asyncio.run(restarted())
    started = [r.timestamp for r in bench.published if r.command_id == "c1" and r.status == "EXECUTING"]
    assert started[0] >= opens
    assert bench.locks() == [["loginctl", "lock-sessions"]]


def test_a_command_whose_window_has_ended_fails_without_running(bench: Bench) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    ended = command("c1", OperationType.LOCK).model_copy(update={"schedule": window(start, start + timedelta(hours=1))})
    bench.drive(ended)
    assert bench.statuses("c1") == ["PENDING", "FAILED"]
    assert bench.final("c1").failure_reason == "schedule window ended"
    assert bench.locks() == []


def test_an_open_window_in_the_devices_own_zone_runs_at_once(bench: Bench) -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    now_in_tokyo = datetime.now(tokyo).replace(microsecond=0, tzinfo=None)
    # Written as UTC wall-clock values, read in Tokyo: the window is open now there, and would not be in UTC.
    start = (now_in_tokyo - timedelta(minutes=5)).replace(tzinfo=UTC)
    schedule = window(start, start + timedelta(minutes=30), "Asia/Tokyo") | {"time_type": "device"}
    bench.drive(command("c1", OperationType.LOCK).model_copy(update={"schedule": schedule}))
    assert bench.statuses("c1") == ["PENDING", "EXECUTING", "SUCCESSFUL"]


@pytest.mark.parametrize(
    ("resolved_in", "now_in", "runs"),
    [
        # Captured in Honolulu, where the window is 19 hours away; the device has moved to Tokyo since: it runs.
        ("Pacific/Honolulu", "Asia/Tokyo", True),
        # Captured in Tokyo, where it is open; the device is in Honolulu now: it waits there.
        ("Asia/Tokyo", "Pacific/Honolulu", False),
        # The device announces no zone: the one the controller knew is all there is.
        ("Asia/Tokyo", None, True),
    ],
)
def test_device_time_is_read_in_the_zone_the_device_has_now(
    bench: Bench, resolved_in: str, now_in: str | None, runs: bool
) -> None:
    now_in_tokyo = datetime.now(ZoneInfo("Asia/Tokyo")).replace(microsecond=0, tzinfo=None)
    start = (now_in_tokyo - timedelta(minutes=5)).replace(tzinfo=UTC)
    schedule = window(start, start + timedelta(minutes=30), resolved_in) | {"time_type": "device"}
    bench.time_zone = now_in
    bench.drive(command("c1", OperationType.LOCK).model_copy(update={"schedule": schedule}))
    assert bench.statuses("c1") == (["PENDING", "EXECUTING", "SUCCESSFUL"] if runs else ["PENDING"])
    assert len(bench.locks()) == runs


def test_a_parked_command_is_read_again_when_the_device_changes_zone(bench: Bench) -> None:
    """Parked for the 19 hours until the window opens in Honolulu; the device moves to Tokyo, where it is open."""
    now_in_tokyo = datetime.now(ZoneInfo("Asia/Tokyo")).replace(microsecond=0, tzinfo=None)
    start = (now_in_tokyo - timedelta(minutes=5)).replace(tzinfo=UTC)
    schedule = window(start, start + timedelta(minutes=30), "Pacific/Honolulu") | {"time_type": "device"}
    bench.time_zone = "Pacific/Honolulu"
    parked, cancelled = command("c1", OperationType.LOCK), command("c2", OperationType.LOCK)

    async def go() -> None:
        worker = asyncio.create_task(bench.runner.run())
        for each in (parked, cancelled):
            await bench.runner.accept(each.model_copy(update={"schedule": schedule}))
        await until(lambda: bench.runner._queue.empty() and len(bench.runner._parked) == 2)
        await bench.runner.cancel(cancel_request("c2"))
        bench.time_zone = "Asia/Tokyo"
        bench.runner.zone_changed()
        await until(lambda: bench.statuses("c1")[-1:] == ["SUCCESSFUL"])
        worker.cancel()

    asyncio.run(go())
    assert bench.statuses("c1") == ["PENDING", "EXECUTING", "SUCCESSFUL"]
    assert bench.statuses("c2") == ["PENDING", "FAILED"]
    assert bench.runner._parked == {}
    assert bench.locks() == [["loginctl", "lock-sessions"]]


def test_failed_script_keeps_its_output(bench: Bench) -> None:
    bench.drive(command("c1", OperationType.RUN_SHELL_SCRIPT, script="echo out; echo bad >&2; exit 3"))
    final = bench.final("c1")
    assert final.status == "FAILED"
    assert final.failure_reason == "script exited 3: bad"
    assert final.result is not None
    assert (final.result["exit_code"], final.result["stdout"]) == (3, "out\n")


def _journal_as_executing(bench: Bench, entry: Command, boot_id: str) -> None:
    assert bench.journal.record_received(entry)
    bench.journal.record_started(entry.command_id, boot_id)


def test_restart_during_execution_fails_and_never_reruns(bench: Bench) -> None:
    lock = command("c1", OperationType.LOCK)
    _journal_as_executing(bench, lock, "boot-1")
    asyncio.run(bench.new_runner().recover())
    assert bench.statuses("c1") == ["FAILED"]
    assert bench.final("c1").failure_reason == "agent restarted during execution"
    bench.drive(lock)
    assert bench.locks() == []


@pytest.mark.parametrize(
    ("boot_after", "status", "reason"),
    [("boot-2", "SUCCESSFUL", None), ("boot-1", "FAILED", "boot id unchanged: the device did not reboot")],
)
def test_reboot_is_decided_by_the_boot_id(bench: Bench, boot_after: str, status: str, reason: str | None) -> None:
    _journal_as_executing(bench, command("c1", OperationType.REBOOT), "boot-1")
    bench.boot_id.write_text(boot_after + "\n")
    asyncio.run(bench.new_runner().recover())
    final = bench.final("c1")
    assert (final.status, final.failure_reason) == (status, reason)


def test_reboot_that_never_happens_fails_after_the_grace(bench: Bench) -> None:
    bench.drive(command("c1", OperationType.REBOOT))
    assert bench.tools.calls("systemctl") == [["systemctl", "reboot"]]
    assert bench.statuses("c1") == ["PENDING", "EXECUTING", "FAILED"]
    assert "did not reboot" in (bench.final("c1").failure_reason or "")


def test_queued_commands_survive_a_restart(bench: Bench) -> None:
    assert bench.journal.record_received(command("c1", OperationType.LOCK))
    bench.runner = bench.new_runner()

    async def go() -> None:
        await bench.runner.recover()
        worker = asyncio.create_task(bench.runner.run())
        await until(lambda: not bench.journal.in_stage(Stage.QUEUED) and not bench.journal.in_stage(Stage.EXECUTING))
        worker.cancel()

    asyncio.run(go())
    assert bench.locks() == [["loginctl", "lock-sessions"]]
    assert bench.statuses("c1") == ["EXECUTING", "SUCCESSFUL"]


def test_final_status_is_kept_until_delivered(bench: Bench) -> None:
    bench.online = False
    bench.drive(command("c1", OperationType.LOCK))
    assert bench.published == []
    assert [r.command_id for r in bench.journal.undelivered()] == ["c1"]
    bench.online = True
    asyncio.run(bench.runner.resend_undelivered())
    assert bench.statuses("c1") == ["SUCCESSFUL"]
    assert bench.journal.undelivered() == []
    entry = bench.journal.get("c1")
    assert entry is not None
    assert entry.stage is Stage.FINISHED
    assert entry.final_report is not None
    assert entry.final_report.status is DeviceStatus.SUCCESSFUL


def test_destructive_types_need_the_config_to_allow_them(bench: Bench) -> None:
    bench.drive(command("c1", OperationType.SHUT_DOWN))
    assert bench.statuses("c1") == ["PENDING", "FAILED"]
    assert bench.final("c1").failure_reason == (
        "SHUT_DOWN is destructive and disabled on this device; "
        'enable it with allow_destructive = ["SHUT_DOWN"] in the agent config file'
    )
    assert bench.tools.calls("systemctl") == []
    bench.runner = bench.new_runner(allow_destructive=frozenset({OperationType.SHUT_DOWN}))
    bench.drive(command("c2", OperationType.SHUT_DOWN))
    assert bench.tools.calls("systemctl") == [["systemctl", "poweroff"]]


# --- cancellation ---------------------------------------------------------------------------------------------------


def cancel_request(command_id: str, reason: str = "cancelled by ops") -> CancelRequest:
    return CancelRequest(command_id=command_id, device_id="d1", reason=reason, requested_at=utc_now())


def test_cancelling_a_queued_command_fails_it_and_it_never_runs(bench: Bench) -> None:
    async def go() -> None:
        blocker = command("c1", OperationType.RUN_SHELL_SCRIPT, script="sleep 0.5")
        queued = command("c2", OperationType.LOCK)
        worker = asyncio.create_task(bench.runner.run())
        await bench.runner.accept(blocker)
        await bench.runner.accept(queued)
        await bench.runner.cancel(cancel_request("c2"))
        await until(lambda: bench.statuses("c1")[-1:] == ["SUCCESSFUL"])
        await asyncio.sleep(0.1)
        worker.cancel()

    asyncio.run(go())
    assert bench.statuses("c2") == ["PENDING", "FAILED"]
    assert bench.final("c2").failure_reason == "cancelled by ops"
    assert bench.locks() == []


def test_cancelling_a_running_script_kills_its_process_group_and_the_runner_goes_on(bench: Bench) -> None:
    marker = bench.tmp_path / "survived"

    async def go() -> None:
        script = command("c1", OperationType.RUN_SHELL_SCRIPT, script=f"(sleep 2; touch {marker}) & sleep 30")
        after = command("c2", OperationType.LOCK)
        worker = asyncio.create_task(bench.runner.run())
        await bench.runner.accept(script)
        await bench.runner.accept(after)
        await until(lambda: "EXECUTING" in bench.statuses("c1"))
        await bench.runner.cancel(cancel_request("c1", "timed out: not finished within 30 s"))
        await until(lambda: bench.statuses("c2")[-1:] == ["SUCCESSFUL"])
        worker.cancel()

    asyncio.run(asyncio.wait_for(go(), 20))
    assert bench.statuses("c1") == ["PENDING", "EXECUTING", "FAILED"]
    assert bench.final("c1").failure_reason == "timed out: not finished within 30 s"
    assert bench.journal.undelivered() == []
    asyncio.run(asyncio.sleep(2.5))
    assert not marker.exists(), "the script's background child outlived the cancellation"


def test_a_running_command_that_cannot_be_stopped_safely_runs_to_its_end(bench: Bench) -> None:
    bench.tools.add("nmcli", script="sleep 0.3")

    async def go() -> None:
        wifi = command("c1", OperationType.SET_WIFI_STATE, wifi_state=False)
        worker = asyncio.create_task(bench.runner.run())
        await bench.runner.accept(wifi)
        await until(lambda: "EXECUTING" in bench.statuses("c1"))
        await bench.runner.cancel(cancel_request("c1"))
        await until(lambda: bench.statuses("c1")[-1:] == ["SUCCESSFUL"])
        worker.cancel()

    asyncio.run(go())
    assert bench.statuses("c1") == ["PENDING", "EXECUTING", "SUCCESSFUL"]


def test_cancelling_a_finished_command_sends_its_final_status_again_and_an_unknown_one_changes_nothing(
    bench: Bench,
) -> None:
    bench.drive(command("c1", OperationType.LOCK))

    async def go() -> None:
        await bench.runner.cancel(cancel_request("c1"))
        await bench.runner.cancel(cancel_request("c1"))  # a copy of the cancellation is as harmless
        await bench.runner.cancel(cancel_request("never-sent"))

    asyncio.run(go())
    assert bench.statuses("c1") == ["PENDING", "EXECUTING", "SUCCESSFUL", "SUCCESSFUL", "SUCCESSFUL"]
    assert len({r.timestamp for r in bench.published if r.status == "SUCCESSFUL"}) == 1  # the same status again
    assert bench.statuses("never-sent") == []
    assert len(bench.locks()) == 1


def test_stopping_the_runner_mid_command_is_not_mistaken_for_a_cancellation(bench: Bench) -> None:
    async def go() -> None:
        worker = asyncio.create_task(bench.runner.run())
        await bench.runner.accept(command("c1", OperationType.RUN_SHELL_SCRIPT, script="sleep 30"))
        await until(lambda: "EXECUTING" in bench.statuses("c1"))
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker

    asyncio.run(asyncio.wait_for(go(), 20))
    assert bench.statuses("c1") == ["PENDING", "EXECUTING"]
    assert [entry.command.command_id for entry in bench.journal.in_stage(Stage.EXECUTING)] == ["c1"]


def test_a_command_past_its_start_before_is_never_started(bench: Bench) -> None:
    late = command("c1", OperationType.LOCK).model_copy(update={"start_before": utc_now() - timedelta(seconds=1)})
    bench.drive(late)
    assert bench.statuses("c1") == ["PENDING", "FAILED"]
    assert (bench.final("c1").failure_reason or "").startswith("expired: not started before ")
    assert bench.locks() == []


def test_a_command_within_its_start_before_runs(bench: Bench) -> None:
    bench.drive(command("c1", OperationType.LOCK).model_copy(update={"start_before": utc_now() + timedelta(hours=1)}))
    assert bench.statuses("c1") == ["PENDING", "EXECUTING", "SUCCESSFUL"]


def test_a_cancellation_arriving_as_the_command_starts_still_stops_it(bench: Bench) -> None:
    """The window between journalling a command as started and running its handler: the handler never runs."""

    async def publish_then_cancel(report: StatusReport) -> bool:
        bench.published.append(report)
        if report.status == "EXECUTING":
            await bench.runner.cancel(cancel_request("c1"))
        return True

    bench.runner._publish = publish_then_cancel
    bench.drive(command("c1", OperationType.LOCK))
    assert bench.statuses("c1") == ["PENDING", "EXECUTING", "FAILED"]
    assert bench.final("c1").failure_reason == "cancelled by ops"
    assert bench.locks() == []


def test_a_parked_command_runs_when_its_window_opens(bench: Bench) -> None:
    opens = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    scheduled = command("c1", OperationType.LOCK).model_copy(
        update={"schedule": window(opens, opens + timedelta(hours=1))}
    )

    async def go() -> None:
        worker = asyncio.create_task(bench.runner.run())
        await bench.runner.accept(scheduled)
        await until(lambda: bench.statuses("c1")[-1:] == ["SUCCESSFUL"], limit_s=5)
        worker.cancel()

    asyncio.run(go())
    started = [r.timestamp for r in bench.published if r.command_id == "c1" and r.status == "EXECUTING"]
    assert opens <= started[0] < opens + timedelta(seconds=1)


def test_after_a_journal_loss_a_command_it_may_have_run_fails_as_journal_lost_and_never_runs(bench: Bench) -> None:
    path = bench.tmp_path / "state" / "journal.db"
    old_lock = command("c1", OperationType.LOCK)  # issued before the loss
    bench.journal.close()
    path.write_bytes(b"not a journal" * 1000)
    bench.journal = Journal(path)
    bench.runner = bench.new_runner()

    new_lock = command("c2", OperationType.LOCK)  # issued after the loss, but arriving before it settled
    bench.drive(old_lock, new_lock)
    assert [bench.final(c).failure_reason for c in ("c1", "c2")] == [JOURNAL_LOST, JOURNAL_LOST]

    bench.runner.settle_journal_loss()
    newer_lock = command("c3", OperationType.LOCK)
    bench.drive(old_lock, command("c4", OperationType.LOCK).model_copy(update={"issued_at": old_lock.issued_at}))
    bench.drive(newer_lock)
    assert bench.statuses("c1") == ["FAILED", "FAILED"]  # the final status again, for a duplicate
    assert bench.final("c4").failure_reason == JOURNAL_LOST  # issued before the loss: in doubt for good
    assert bench.statuses("c3") == ["PENDING", "EXECUTING", "SUCCESSFUL"]
    assert bench.locks() == [["loginctl", "lock-sessions"]]


def test_a_restart_ends_the_processes_a_command_left_running_and_says_so(bench: Bench) -> None:
    script = command("c1", OperationType.RUN_SHELL_SCRIPT, script="sleep 60")
    _journal_as_executing(bench, script, "boot-1")
    orphan = subprocess.Popen(["sleep", "60"], start_new_session=True)
    group = process_groups.identify(orphan.pid)
    assert group is not None
    bench.journal.group_ledger("c1").started(group)  # and the agent was killed before it could say it ended

    asyncio.run(bench.new_runner().recover())

    assert orphan.wait(5) == -signal.SIGTERM
    assert bench.final("c1").failure_reason == f"{RESTARTED}; {PROCESSES_STOPPED}"
    assert bench.journal.process_groups() == []
