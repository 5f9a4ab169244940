"""Nothing hangs: timeouts, cancellation and rollout control on real processes over a private Mosquitto."""

import itertools
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Agent, Controller, retained, wait_for

pytestmark = pytest.mark.e2e

Fleet = Callable[..., list[Agent]]


@pytest.fixture
def controller(tmp_path: Path, mosquitto_url: str) -> Iterator[Controller]:
    started = Controller(tmp_path, broker_url=mosquitto_url)
    yield started
    started.stop()


@pytest.fixture
def fleet(tmp_path: Path, mosquitto_url: str, controller: Controller) -> Iterator[Fleet]:
    agents: list[Agent] = []

    def start(*device_ids: str) -> list[Agent]:
        agents.extend(Agent(tmp_path, mosquitto_url, device_id, "--tag", "lab") for device_id in device_ids)
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
    assert alpha.tools.calls("loginctl") == []


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
    assert alpha.tools.calls("loginctl") == []
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
