"""Screenshots, logs and bug reports travel over HTTP with a one-time token and are downloadable from the API."""

import gzip
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.e2e.harness import Agent, Controller, wait_for
from tests.e2e.test_hostile_input import command

pytestmark = pytest.mark.e2e

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def device(tmp_path: Path, mosquitto_url: str) -> Iterator[tuple[Controller, Agent]]:
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    agent = Agent(tmp_path, mosquitto_url, "alpha")
    agent.tools.add("grim", script='printf \'\\211PNG\\r\\n\\032\\n\' > "$1"; head -c 64 /dev/zero >> "$1"')
    agent.tools.add("journalctl", stdout="2026-11-22T10:00:00+0000 alpha kiosk[1]: started\n")
    try:
        controller.wait_online("alpha")
        yield controller, agent
    finally:
        agent.stop()
        controller.stop()


def run(controller: Controller, operation_type: str, **arguments: object) -> tuple[dict[str, object], bytes]:
    created = controller.create(
        {"operation_type": operation_type, "operation_device_query": {"device_id": "alpha"}, "arguments": arguments}
    )
    operation = controller.wait_finished(created["id"])
    result = controller.device_results(created["id"])["alpha"]
    assert operation["state"] == "COMPLETED", result
    assert result["status"] == "SUCCESSFUL", result
    download = controller.http.get(f"/v0/operations/{created['id']}/devices/alpha/artifact")
    assert download.status_code == 200
    artifact = result["result"]["artifact"]
    assert artifact["size_bytes"] == len(download.content)
    assert artifact["download_path"] == f"/v0/operations/{created['id']}/devices/alpha/artifact"
    return artifact, download.content


def test_screenshot(device: tuple[Controller, Agent]) -> None:
    controller, agent = device
    artifact, content = run(controller, "CAPTURE_SCREENSHOT")
    assert content == PNG
    assert artifact["content_type"] == "image/png"
    [call] = agent.tools.calls("grim")
    assert call[0] == "grim"
    assert call[1].endswith("/screenshot.png")


def test_logs(device: tuple[Controller, Agent]) -> None:
    controller, agent = device
    artifact, content = run(controller, "COLLECT_LOGS", since_minutes=30, max_lines=500)
    assert gzip.decompress(content) == b"2026-11-22T10:00:00+0000 alpha kiosk[1]: started\n"
    assert artifact["content_type"] == "application/gzip"
    assert agent.tools.calls("journalctl") == [
        ["journalctl", "--no-pager", "-o", "short-iso", "--since", "-30min", "-n", "500"]
    ]


def test_bugreport(device: tuple[Controller, Agent]) -> None:
    controller, _ = device
    _, content = run(controller, "REQUEST_BUGREPORT")
    with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as archive:
        names = archive.getnames()
        journal = archive.extractfile("bugreport/journal.txt")
        assert journal is not None
        assert b"kiosk[1]: started" in journal.read()
    assert {"bugreport/journal.txt", "bugreport/failed-units.txt", "bugreport/inventory.json"} <= set(names)


def test_a_command_without_upload_details_fails_clearly(device: tuple[Controller, Agent]) -> None:

    controller, agent = device
    host, port = controller.broker_url.removeprefix("mqtt://").split(":")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="manual")
    client.connect(host, int(port))
    client.loop_start()
    client.subscribe("tether/v1/devices/alpha/status/manual-1", qos=1)
    reports: list[bytes] = []
    client.on_message = lambda _c, _u, message: reports.append(message.payload)
    topic = "tether/v1/devices/alpha/commands/manual-1"
    client.publish(topic, command("alpha", "manual-1", operation_type="CAPTURE_SCREENSHOT"), qos=1).wait_for_publish(5)
    wait_for("the FAILED status", lambda: any(b'"FAILED"' in r for r in reports))
    client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()
    assert b"needs an artifact upload URL" in next(r for r in reports if b'"FAILED"' in r)
    assert agent.tools.calls("grim") == []
