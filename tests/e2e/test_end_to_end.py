"""The v0 promise on real processes: `tether serve` + two `tetherd` + a real broker, embedded amqtt and Mosquitto."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Agent, Controller, retained, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["amqtt", "mosquitto"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Controller, Agent, Agent]]:
    """A controller and two agents, on the embedded amqtt broker or on a private Mosquitto."""
    external = request.getfixturevalue("mosquitto_url") if request.param == "mosquitto" else None
    controller = Controller(tmp_path, broker_url=external)
    agents = [Agent(tmp_path, controller.broker_url, d, "--tag", "lab") for d in ("alpha", "beta")]
    try:
        controller.wait_online("alpha", "beta")
        yield controller, agents[0], agents[1]
    except BaseException:
        for part in (controller.process, *(a.process for a in agents)):
            print(f"--- {part.argv[:2]} ---\n{part.output()[-4000:]}")
        raise
    finally:
        for agent in agents:
            agent.stop()
        controller.stop()


def test_shell_script_reaches_completed_with_output(fleet: tuple[Controller, Agent, Agent]) -> None:
    controller, _, _ = fleet
    created = controller.create(
        {
            "operation_type": "RUN_SHELL_SCRIPT",
            "operation_device_query": {"device_id": "alpha"},
            "arguments": {"script": "echo hello from $(hostname >/dev/null && echo tether)\necho oops >&2"},
        }
    )
    operation = controller.wait_finished(created["id"])
    assert operation["state"] == "COMPLETED", operation
    assert operation["operation_stats"]["device_operation_statuses_count"] == {
        "resolved_device_count": 1,
        "dispatched_device_count": 1,
        "dispatch_failed_count": 0,
        "failed_device_count": 0,
        "success_device_count": 1,
    }
    states = [a["operation_state"] for a in operation["operation_activity"]]
    assert states[:5] == ["CREATED", "QUERY INITIATED", "QUERY RESOLVED", "DISPATCHING", "DISPATCHED"]
    assert states[-1] == "SUCCESS"
    device = controller.device_results(created["id"])["alpha"]
    assert device["status"] == "SUCCESSFUL"
    assert device["result"]["exit_code"] == 0
    assert device["result"]["stdout"] == "hello from tether\n"
    assert device["result"]["stderr"] == "oops\n"
    assert device["received_at"] <= device["started_at"] <= device["finished_at"]
    assert "beta" not in controller.device_results(created["id"])
    assert retained(controller.broker_url, "tether/v1/devices/+/commands/+") == {}


def test_failures_carry_reasons_and_the_operation_still_completes(fleet: tuple[Controller, Agent, Agent]) -> None:
    controller, alpha, beta = fleet
    alpha.tools.add("nmcli", exit_code=10, stderr="Error: NetworkManager is not running.\n")
    created = controller.create(
        {
            "operation_type": "SET_WIFI_STATE",
            "operation_device_query": {"tags": "lab"},
            "arguments": {"wifi_state": False},
        }
    )
    operation = controller.wait_finished(created["id"])
    assert operation["state"] == "COMPLETED"
    counts = operation["operation_stats"]["device_operation_statuses_count"]
    assert (counts["success_device_count"], counts["failed_device_count"]) == (1, 1)
    assert operation["operation_activity"][-1]["operation_state"] == "FAILURE"
    results = controller.device_results(created["id"])
    assert results["alpha"]["status"] == "FAILED"
    assert results["alpha"]["failure_reason"] == "nmcli exited 10: Error: NetworkManager is not running."
    assert results["beta"]["status"] == "SUCCESSFUL"
    assert results["beta"]["result"] == {"wifi_state": "off"}
    assert alpha.tools.calls("nmcli") == [["nmcli", "radio", "wifi", "off"]]
    assert beta.tools.calls("nmcli") == [["nmcli", "radio", "wifi", "off"]]


def test_a_type_a_device_cannot_run_fails_at_dispatch(fleet: tuple[Controller, Agent, Agent]) -> None:
    controller, alpha, beta = fleet
    created = controller.create({"operation_type": "APPLE_APP_UNINSTALL", "operation_device_query": {"all": True}})
    operation = controller.wait_finished(created["id"])
    assert operation["state"] == "COMPLETED"
    counts = operation["operation_stats"]["device_operation_statuses_count"]
    assert counts["dispatch_failed_count"] == 2
    assert counts["dispatched_device_count"] == 0
    for result in controller.device_results(created["id"]).values():
        assert result["status"] == "FAILED"
        assert result["dispatch_state"] == "failed"
        assert result["failure_reason"] == (
            "APPLE_APP_UNINSTALL is not supported on linux or is denied by the device's agent config"
        )
    assert "queued" not in alpha.process.output() + beta.process.output()


def test_reboot_is_confirmed_by_the_boot_id(fleet: tuple[Controller, Agent, Agent]) -> None:
    controller, alpha, _ = fleet
    created = controller.create({"operation_type": "REBOOT", "operation_device_query": {"device_id": "alpha"}})

    def executing() -> bool:
        return controller.device_results(created["id"])["alpha"]["status"] == "EXECUTING"

    wait_for("REBOOT executing", executing)
    wait_for("systemctl reboot", lambda: alpha.tools.calls("systemctl") == [["systemctl", "reboot"]])
    alpha.process.kill()  # what the reboot would have done
    alpha.boot_id.write_text("boot-2\n")
    alpha.process = alpha.start()
    operation = controller.wait_finished(created["id"])
    result = controller.device_results(created["id"])["alpha"]
    assert operation["state"] == "COMPLETED"
    assert result["status"] == "SUCCESSFUL"
    assert result["result"] == {"previous_boot_id": "boot-1", "boot_id": "boot-2"}
    assert alpha.tools.calls("systemctl") == [["systemctl", "reboot"]]
