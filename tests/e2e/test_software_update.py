"""c8y_SoftwareUpdate through /devicecontrol to a real agent: url and softwareType are honoured, or the entry fails."""

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agent.file_server import Server, file_server
from tests.e2e.harness import Agent, Controller, wait_for

__all__ = ["file_server"]  # the fixture, imported for pytest
pytestmark = pytest.mark.e2e

APT_OPTIONS = ["-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]


def test_a_package_from_its_url_installs_and_an_unsupported_type_fails_with_a_reason(
    tmp_path: Path, mosquitto_url: str, file_server: Server
) -> None:
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    agent = Agent(tmp_path, mosquitto_url, "1234")
    agent.tools.add("apt-get")
    agent.tools.add("dpkg-deb", stdout="tool\t1.0\n")
    agent.tools.add("dpkg-query", stdout="tool\t1.0\tinstalled\n")
    body = b"a debian package"
    file_server.files["tool_1.0_all.deb"] = body
    sha256 = hashlib.sha256(body).hexdigest()
    url = file_server.url("/files/tool_1.0_all.deb")
    client = httpx.Client(base_url=f"http://127.0.0.1:{controller.http_port}", auth=("ops", controller.key))
    try:
        controller.wait_online("1234")
        entries = [
            # Plain http is accepted only with a checksum (a Tether extension to the entry); https needs none.
            {
                "name": "tool",
                "version": "1.0",
                "softwareType": "apt",
                "url": url,
                "sha256": sha256,
                "action": "install",
            },
            {"name": "extra", "version": "2.0", "softwareType": "dnf", "url": "", "action": "install"},
        ]
        created = client.post("/devicecontrol/operations", json={"deviceId": "1234", "c8y_SoftwareUpdate": entries})
        assert created.status_code == 201, created.text

        def finished() -> dict[str, Any] | None:
            shown: dict[str, Any] = client.get(created.headers["location"]).json()
            return shown if shown["status"] in ("SUCCESSFUL", "FAILED") else None

        done = wait_for("the operation to finish", finished)
        unsupported = "software type 'dnf' is not supported on this device, only apt, debian"
        assert done["status"] == "FAILED"
        assert done["failureReason"] == f"1 of 2 packages failed: extra: {unsupported}"
        assert done["c8y_SoftwareUpdate"] == entries
        (operation,) = controller.get("/v0/operations/")["results"]  # the same operation, through /v0
        result = controller.device_results(operation["id"])["1234"]["result"]
        assert result == {
            "installed": [
                {
                    "name": "tool",
                    "version": "1.0",
                    "software_type": "apt",
                    "source": url,
                    "status": "SUCCESSFUL",
                    "installed_version": "1.0",
                    "sha256": sha256,
                },
                {
                    "name": "extra",
                    "version": "2.0",
                    "software_type": "dnf",
                    "source": "repository",
                    "status": "FAILED",
                    "installed_version": None,
                    "reason": unsupported,
                },
            ]
        }
        (inspected,) = agent.tools.calls("dpkg-deb")
        (installed,) = agent.tools.calls("apt-get")
        assert inspected[-1] == installed[-1]
        assert Path(installed[-1]).name == "tool_1.0_all.deb"
        assert installed[:-1] == [
            "apt-get",
            "install",
            "-y",
            "--no-install-recommends",
            *APT_OPTIONS,
            "-o",
            "DPkg::Lock::Timeout=300",
        ]

        refused = client.post(
            "/devicecontrol/operations",
            json={"deviceId": "1234", "c8y_SoftwareUpdate": [{"name": "x", "softwareType": "docker"}]},
        )
        assert refused.status_code == 400
        fields = [error["field"] for error in refused.json()["errors"]]
        assert fields == ["c8y_SoftwareUpdate.packages.0.software_type"]
    finally:
        client.close()
        agent.stop()
        controller.stop()
