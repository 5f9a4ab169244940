"""`tether simulate` against a real controller: devices that speak the contract well enough to run operations."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.simulator import FleetSpec
from tests.e2e.harness import Controller, Simulator, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def controller(tmp_path: Path, mosquitto_url: str) -> Iterator[Controller]:
    started = Controller(tmp_path, broker_url=mosquitto_url)
    yield started
    started.stop()


def online(controller: Controller, count: int) -> bool:
    return bool(controller.get("/v0/devices/", online="true", limit=1)["count"] == count)


def test_a_simulated_fleet_runs_an_operation_with_its_share_of_failures(tmp_path: Path, controller: Controller) -> None:
    spec = FleetSpec(devices=300, failure_share=0.1, seed=7)
    fleet = Simulator(tmp_path, controller.broker_url, 300, "--failure-share", "0.1", "--seed", "7", "--tag", "s")
    wait_for("300 simulated devices online", lambda: online(controller, 300))
    device = controller.get("/v0/devices/sim-000042/")
    assert (device["platform"], device["tags"], device["agent_version"]) == ("linux", ["s"], "simulated")

    operation = controller.create(
        {"operation_type": "RUN_SHELL_SCRIPT", "operation_device_query": {"tags": "s"}, "arguments": {"script": "id"}}
    )
    ended = controller.wait_finished(operation["id"])
    counts = fleet.stop()

    results = controller.device_results(operation["id"])
    failing = {d for d, r in results.items() if r["status"] == "FAILED"}
    assert failing == {d for d, r in results.items() if spec.fails(r["command_id"])}
    assert 10 < len(failing) < 60  # about a tenth, and always the same ones for the seed
    assert all(
        r["failure_reason"] == "simulated failure of RUN_SHELL_SCRIPT" for d, r in results.items() if d in failing
    )
    assert {r["result"]["exit_code"] for d, r in results.items() if d not in failing} == {0}
    assert ended["devices"] == {
        "waiting": 0,
        "pending": 0,
        "executing": 0,
        "successful": 300 - len(failing),
        "failed": len(failing),
    }
    assert (counts["commands"], counts["statuses"], counts["duplicates"], counts["malformed"]) == (300, 900, 0, 0)
    assert sorted(counts["runs_per_device"].values()) == [1] * 300
    wait_for("the fleet offline after a clean stop", lambda: online(controller, 0))


def test_a_cancelled_operation_stops_the_simulated_executions(tmp_path: Path, controller: Controller) -> None:
    fleet = Simulator(tmp_path, controller.broker_url, 20, "--latency-ms", "60000")
    wait_for("20 devices online", lambda: online(controller, 20))
    operation = controller.create({"operation_type": "LOCK", "operation_device_query": {"all": True}})
    wait_for(
        "all executing", lambda: controller.get(f"/v0/operations/{operation['id']}/")["devices"]["executing"] == 20
    )

    assert controller.http.post(f"/v0/operations/{operation['id']}/cancel/").status_code == 200
    ended = controller.wait_finished(operation["id"])
    counts = fleet.stop()

    assert (ended["state"], ended["reason"]) == ("FAILED", "cancelled by ops")
    assert {r["failure_reason"] for r in controller.device_results(operation["id"]).values()} == {"cancelled by ops"}
    assert counts["cancelled"] == 20


def test_a_connection_per_device_leaves_each_device_its_last_will(tmp_path: Path, controller: Controller) -> None:
    fleet = Simulator(tmp_path, controller.broker_url, 40, "--connection-per-device", "--id-prefix", "own-")
    wait_for("40 devices online", lambda: online(controller, 40))

    fleet.process.kill()  # SIGKILL, no clean stop: only the broker's wills say the devices are gone

    wait_for("every device offline by its will", lambda: online(controller, 0))
    assert controller.get("/v0/devices/", limit=1)["count"] == 40


def test_which_commands_fail_depends_only_on_the_seed() -> None:
    spec = FleetSpec(devices=1, failure_share=0.25, seed=3)
    ids = [f"command-{n}" for n in range(4000)]
    share = sum(spec.fails(c) for c in ids) / len(ids)
    assert 0.22 < share < 0.28
    assert [spec.fails(c) for c in ids] == [FleetSpec(devices=9, failure_share=0.25, seed=3).fails(c) for c in ids]
    assert [spec.fails(c) for c in ids] != [FleetSpec(devices=1, failure_share=0.25, seed=4).fails(c) for c in ids]
    assert not any(FleetSpec(devices=1).fails(c) for c in ids)
