"""A Cumulocity-style client against real processes: create with Basic auth, poll, read the command's output."""

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Agent, Controller, Simulator, retained, wait_for

pytestmark = pytest.mark.e2e


def test_a_c8y_command_runs_on_the_device_and_its_output_comes_back_as_result(
    tmp_path: Path, mosquitto_url: str
) -> None:
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    agent = Agent(tmp_path, mosquitto_url, "1234")
    client = httpx.Client(base_url=f"http://127.0.0.1:{controller.http_port}", auth=("ops", controller.key))
    try:
        controller.wait_online("1234")
        created = client.post(
            "/devicecontrol/operations/",
            json={"deviceId": "1234", "c8y_Command": {"text": "echo hello from 1234"}},
            headers={"Accept": "application/vnd.com.nsn.cumulocity.operation+json"},
        )
        assert created.status_code == 201, created.text

        def finished() -> dict[str, Any] | None:
            body: dict[str, Any] = client.get(created.headers["location"]).json()
            return body if body["status"] in ("SUCCESSFUL", "FAILED") else None

        done = wait_for("the operation to finish", finished)
        assert done["status"] == "SUCCESSFUL", done
        assert done["c8y_Command"] == {"text": "echo hello from 1234", "result": "hello from 1234\n"}
        restart = client.post("/devicecontrol/operations", json={"deviceId": "1234", "c8y_Restart": {}})
        assert restart.status_code == 201
        wait_for("the reboot tool to run", lambda: agent.tools.calls("systemctl") == [["systemctl", "reboot"]])
    finally:
        client.close()
        agent.stop()
        controller.stop()


def test_deleting_a_pending_operation_clears_its_command_so_the_device_never_runs_it(
    tmp_path: Path, mosquitto_url: str
) -> None:
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    agent = Agent(tmp_path, mosquitto_url, "1234")
    client = httpx.Client(base_url=f"http://127.0.0.1:{controller.http_port}", auth=("ops", controller.key))
    try:
        controller.wait_online("1234")
        agent.stop()
        wait_for("the device offline", lambda: not controller.get("/v0/devices/1234/")["online"])
        created = client.post("/devicecontrol/operations", json={"deviceId": "1234", "c8y_Restart": {}}).json()
        wait_for("the command retained", lambda: retained(mosquitto_url, "tether/v1/devices/1234/commands/+"))

        assert client.delete("/devicecontrol/operations", params={"deviceId": "1234"}).status_code == 204

        wait_for("the command cleared", lambda: not retained(mosquitto_url, "tether/v1/devices/1234/commands/+"))
        assert client.get(f"/devicecontrol/operations/{created['id']}").status_code == 404
        (operation,) = controller.get("/v0/operations/")["results"]
        ended = controller.wait_finished(operation["id"])
        assert ended["operation_stats"]["device_operation_statuses_count"]["failed_device_count"] == 1
        agent.process = agent.start()
        controller.wait_online("1234")
        time.sleep(1)
        assert agent.tools.calls("systemctl") == []
    finally:
        client.close()
        agent.stop()
        controller.stop()


C8Y_SCRIPT = Path(__file__).parents[2] / "docs" / "examples" / "c8y_device_control.py"


def test_a_script_written_for_cumulocity_runs_unchanged(tmp_path: Path, mosquitto_url: str) -> None:
    """docs/examples/c8y_device_control.py knows nothing of Tether: only the base URL and credentials are Tether's."""
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    Simulator(tmp_path, mosquitto_url, 1, "--id-prefix", "idle-").stop()  # registered, then offline
    fleet = Simulator(tmp_path, mosquitto_url, 5, "--id-prefix", "c8y-")
    devices = [f"c8y-{n:06d}" for n in range(5)]
    try:
        wait_for("the fleet", lambda: controller.get("/v0/devices/", online="true")["count"] == 5)
        base_url = f"http://127.0.0.1:{controller.http_port}"
        done = subprocess.run(
            [sys.executable, str(C8Y_SCRIPT), base_url, "ops", controller.key, *devices, "--idle", "idle-000000"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        counts = fleet.stop()
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.splitlines() == [
            "created 5 c8y_Restart operation(s)",
            "5 SUCCESSFUL",
            "paged through 5 operation(s), 2 per page",
            "bulk-deleted the pending operations",
        ]
        assert sorted(counts["runs_per_device"].values()) == [1] * 5
        wait_for(
            "the idle device's command cleared", lambda: not retained(mosquitto_url, "tether/v1/devices/+/commands/+")
        )
        (idle,) = [
            o
            for o in controller.get("/v0/operations/")["results"]
            if o["operation_device_query"] == {"device_id": "idle-000000"}
        ]
        assert controller.wait_finished(idle["id"])["reason"].endswith("failed of 1 device(s)")
    finally:
        controller.stop()
