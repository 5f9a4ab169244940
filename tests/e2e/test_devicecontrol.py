"""A Cumulocity-style client against real processes: create with Basic auth, poll, read the command's output."""

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Agent, Controller, wait_for

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
