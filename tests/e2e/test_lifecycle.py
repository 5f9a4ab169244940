"""Nothing hangs: timeouts, cancellation, rollout control and windows on real processes, on both brokers."""

import itertools
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.harness import Agent, Controller, retained, wait_for

pytestmark = pytest.mark.e2e

Fleet = Callable[..., list[Agent]]


@pytest.fixture(params=["mosquitto", "amqtt"])
def controller(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Controller]:
    """A controller on a private Mosquitto, or on its embedded amqtt broker."""
    external = request.getfixturevalue("mosquitto_url") if request.param == "mosquitto" else None
    started = Controller(tmp_path, broker_url=external)
    yield started
    started.stop()


@pytest.fixture
def fleet(tmp_path: Path, controller: Controller) -> Iterator[Fleet]:
    agents: list[Agent] = []

    def start(*device_ids: str) -> list[Agent]:
        agents.extend(Agent(tmp_path, controller.broker_url, device_id, "--tag", "lab") for device_id in device_ids)
        controller.wait_online(*device_ids)
        return agents

    try:
        yield start
    except BaseException:
        for agent in agents:
            print(f"--- {agent.device_id} ---\n{agent.process.output()[-3000:]}")
        print(f"--- controller ---\n{controller.process.output()[-3000:]}")
        raise
    finally:
        for agent in agents:
            agent.stop()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def script(marker: Path, seconds: int) -> dict[str, Any]:
    return {"script": f"echo started >> {marker}; sleep {seconds}; echo finished >> {marker}", "timeout_s": 300}


def cancel(controller: Controller, operation_id: str) -> dict[str, Any]:
    response = controller.http.post(f"/v0/operations/{operation_id}/cancel/")
    assert response.status_code == 200, response.text
    content: dict[str, Any] = response.json()["content"]
    return content


def test_a_hanging_script_times_out_is_stopped_and_its_late_status_changes_nothing(
    controller: Controller, fleet: Fleet, tmp_path: Path
) -> None:
    (alpha,) = fleet("alpha")
    marker = tmp_path / "hang.txt"
    created = controller.create(
        {
            "operation_type": "RUN_SHELL_SCRIPT",
            "operation_device_query": {"device_id": "alpha"},
            "arguments": script(marker, 60),
            "timeout_s": 2,
        }
    )

    operation = controller.wait_finished(created["id"], timeout=20)

    device = controller.device_results(created["id"])["alpha"]
    assert (device["status"], device["failure_reason"]) == (
        "FAILED",
        "timed out: no final status within 2 s of starting",
    )
    assert operation["state"] == "COMPLETED"
    assert operation["operation_stats"]["device_operation_statuses_count"]["failed_device_count"] == 1
    wait_for("the agent to stop the script", lambda: "stopping it (timed out" in alpha.process.output())
    time.sleep(1)
    assert lines(marker) == ["started"]
    assert retained(controller.broker_url, "tether/v1/devices/+/commands/+") == {}


def test_an_offline_device_fails_after_the_delivery_timeout_and_never_runs_the_command_later(
    controller: Controller, fleet: Fleet
) -> None:
    (alpha,) = fleet("alpha")
    alpha.stop()
    wait_for("alpha offline", lambda: not controller.get("/v0/devices/alpha/")["online"])
    created = controller.create(
        {"operation_type": "LOCK", "operation_device_query": {"device_id": "alpha"}, "delivery_timeout_s": 2}
    )

    operation = controller.wait_finished(created["id"], timeout=20)

    device = controller.device_results(created["id"])["alpha"]
    assert device["failure_reason"] == "timed out: not started within 2 s of dispatch (device offline?)"
    assert operation["operation_stats"]["device_operation_statuses_count"]["failed_device_count"] == 1
    wait_for("the command cleared", lambda: retained(controller.broker_url, "tether/v1/devices/+/commands/+") == {})
    alpha.process = alpha.start()
    controller.wait_online("alpha")
    time.sleep(1)
    assert alpha.locks() == []


def test_cancel_stops_the_running_script_fails_the_queued_lock_and_names_who_cancelled(
    controller: Controller, fleet: Fleet, tmp_path: Path
) -> None:
    (alpha,) = fleet("alpha")
    marker = tmp_path / "long.txt"
    running = controller.create(
        {
            "operation_type": "RUN_SHELL_SCRIPT",
            "operation_device_query": {"device_id": "alpha"},
            "arguments": script(marker, 60),
        }
    )
    wait_for("the script to start", lambda: lines(marker) == ["started"])
    queued = controller.create({"operation_type": "LOCK", "operation_device_query": {"device_id": "alpha"}})
    wait_for("the lock to be queued", lambda: controller.device_results(queued["id"])["alpha"]["received_at"])

    cancel(controller, queued["id"])
    cancelled_lock = controller.wait_finished(queued["id"], timeout=20)
    cancel(controller, running["id"])
    cancelled_script = controller.wait_finished(running["id"], timeout=20)

    for operation in (cancelled_lock, cancelled_script):
        assert (operation["state"], operation["reason"]) == ("FAILED", "cancelled by ops")
        assert operation["updated_by"] == "tether"
        assert operation["operation_activity"][-1]["message"].startswith("cancelled by ops; 0 succeeded, 1 failed")
    for operation_id in (queued["id"], running["id"]):
        assert controller.device_results(operation_id)["alpha"]["failure_reason"] == "cancelled by ops"
    time.sleep(1)
    assert lines(marker) == ["started"]  # the script was killed, not left to finish
    assert alpha.locks() == []
    assert retained(controller.broker_url, "tether/v1/devices/+/commands/+") == {}
    again = controller.http.post(f"/v0/operations/{running['id']}/cancel/")
    assert again.status_code == 409


def test_a_rate_limited_rollout_dispatches_one_device_per_slot(controller: Controller, fleet: Fleet) -> None:
    fleet("a1", "a2", "a3")
    created = controller.create(
        {"operation_type": "LOCK", "operation_device_query": {"tags": "lab"}, "rollout": {"rate_per_minute": 60}}
    )

    operation = controller.wait_finished(created["id"], timeout=20)

    assert operation["state"] == "COMPLETED"
    dispatched = sorted(
        datetime.fromisoformat(d["dispatched_at"]) for d in controller.device_results(created["id"]).values()
    )
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(dispatched)]
    assert all(0.8 <= gap <= 3 for gap in gaps), gaps


def test_a_failing_rollout_is_aborted_and_the_rest_never_receive_it(controller: Controller, fleet: Fleet) -> None:
    agents = fleet("b1", "b2", "b3", "b4")
    created = controller.create(
        {
            "operation_type": "RUN_SHELL_SCRIPT",
            "operation_device_query": {"tags": "lab"},
            "arguments": {"script": "echo ran >> ../../../ran.txt; exit 3"},
            "rollout": {"rate_per_minute": 20, "abort_failure_share": 0.5, "abort_min_finished": 1},
        }
    )

    operation = controller.wait_finished(created["id"], timeout=30)

    reason = "aborted: 1 of 1 finished devices failed, more than the abort_failure_share 0.5"
    assert (operation["state"], operation["reason"]) == ("FAILED", reason)
    results = controller.device_results(created["id"])
    ran = [d for d, r in results.items() if r["dispatch_state"] == "dispatched"]
    assert len(ran) == 1
    assert results[ran[0]]["failure_reason"] == "script exited 3"
    skipped = [r for d, r in results.items() if d not in ran]
    assert {(r["status"], r["dispatch_state"], r["failure_reason"]) for r in skipped} == {("FAILED", "failed", reason)}
    assert operation["operation_stats"]["device_operation_statuses_count"]["dispatch_failed_count"] == 3
    assert sum(len(lines(agent.work / "ran.txt")) for agent in agents) == 1


def window_args(opens_in_s: int, lasts_s: int, **extra: Any) -> dict[str, Any]:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=opens_in_s)
    end = start + timedelta(seconds=lasts_s)
    return {"start_datetime": start.isoformat(), "end_datetime": end.isoformat(), **extra}


def test_a_window_operation_waits_then_dispatches_when_the_window_opens(controller: Controller, fleet: Fleet) -> None:
    (alpha,) = fleet("alpha")
    args = window_args(3, 60)
    created = controller.create(
        {
            "operation_type": "LOCK",
            "operation_device_query": {"device_id": "alpha"},
            "schedule_type": "WINDOW",
            "schedule_args": args,
        }
    )
    assert created["state"] == "RESOLVED"
    assert created["next_dispatch_at"] is not None
    assert datetime.fromisoformat(created["next_dispatch_at"]) == datetime.fromisoformat(args["start_datetime"])
    time.sleep(1)
    assert alpha.locks() == []

    operation = controller.wait_finished(created["id"], timeout=20)

    assert operation["state"] == "COMPLETED"
    device = controller.device_results(created["id"])["alpha"]
    assert datetime.fromisoformat(device["started_at"]) >= datetime.fromisoformat(args["start_datetime"])
    assert alpha.locks() == [["loginctl", "lock-sessions"]]


def test_a_device_offline_for_its_whole_window_fails_when_the_window_ends(controller: Controller, fleet: Fleet) -> None:
    (alpha,) = fleet("alpha")
    alpha.stop()
    wait_for("alpha offline", lambda: not controller.get("/v0/devices/alpha/")["online"])
    created = controller.create(
        {
            "operation_type": "LOCK",
            "operation_device_query": {"device_id": "alpha"},
            "schedule_type": "WINDOW",
            "schedule_args": window_args(1, 3),
        }
    )

    operation = controller.wait_finished(created["id"], timeout=20)

    assert controller.device_results(created["id"])["alpha"]["failure_reason"] == "schedule window ended"
    assert operation["state"] == "COMPLETED"
    alpha.process = alpha.start()
    controller.wait_online("alpha")
    time.sleep(1)
    assert alpha.locks() == []


def test_device_time_runs_where_the_local_window_is_open_and_waits_elsewhere(
    controller: Controller, tmp_path: Path
) -> None:
    tokyo = Agent(tmp_path, controller.broker_url, "tokyo", "--time-zone", "Asia/Tokyo")
    honolulu = Agent(tmp_path, controller.broker_url, "honolulu", "--time-zone", "Pacific/Honolulu")
    try:
        controller.wait_online("tokyo", "honolulu")
        # The window is the next 30 minutes of Tokyo's wall clock, written as UTC: open in Tokyo now, and 19 hours
        # away in Honolulu (UTC-10), whose clock reaches that wall-clock time later.
        local_now = datetime.now(ZoneInfo("Asia/Tokyo")).replace(microsecond=0, tzinfo=None) - timedelta(minutes=1)
        start = local_now.replace(tzinfo=UTC)
        created = controller.create(
            {
                "operation_type": "LOCK",
                "operation_device_query": {"all": True},
                "schedule_type": "WINDOW",
                "schedule_args": {
                    "start_datetime": start.isoformat(),
                    "end_datetime": (start + timedelta(minutes=30)).isoformat(),
                    "time_type": "device",
                },
            }
        )
        wait_for("tokyo to run it", lambda: controller.device_results(created["id"])["tokyo"]["status"] == "SUCCESSFUL")
        waiting = controller.device_results(created["id"])["honolulu"]
        assert (waiting["status"], waiting["dispatch_state"]) == ("PENDING", "waiting")
        opens = datetime.fromisoformat(waiting["not_before"]) - datetime.now(UTC)
        assert timedelta(hours=18) < opens < timedelta(hours=20)
        operation = controller.get(f"/v0/operations/{created['id']}/")
        assert operation["next_dispatch_at"] == waiting["not_before"]
        assert honolulu.locks() == []
        cancel(controller, created["id"])
        ended = controller.wait_finished(created["id"], timeout=20)
        assert controller.device_results(created["id"])["honolulu"]["failure_reason"] == "cancelled by ops"
        assert ended["operation_stats"]["device_operation_statuses_count"]["success_device_count"] == 1
    finally:
        tokyo.stop()
        honolulu.stop()
