"""The VM tier's lab: a real controller and Mosquitto on the host, one Debian 12 VM whose tetherd was installed by
systemd/install-tetherd.sh and runs under systemd as shipped, and a local apt repository served to it.

One VM serves the whole session (booting one costs half a minute under emulation); tests leave it as they found it
where they change it. Where the machine cannot build or boot the VM, the tests fail under `CI=true`.
"""

import functools
import http.server
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Controller, PersistentMosquitto, tether, wait_for
from tests.prerequisites import unavailable
from tests.vm.image import REPOSITORY, Image, ImageBuildError, ensure_image
from tests.vm.machine import HOST_ADDRESS, Machine, MachineError

DEVICE_ID = "debian-vm"
BROKER_PORT = 1883
WEB_PORT = 80
API_PORT = 8080
AGENT_SETTINGS = """allow_destructive = ["SHUT_DOWN", "WIPE", "REMOVE_AGENT", "REMOVE_DEVICE"]
converge_actions = ["converge-stamp"]
wipe_action = "wipe-stamp"

[custom_actions.stamp]
command = ["sh", "-c", "printf %s \\"$0\\" > \\"/root/stamp-$0\\"", "{name}"]
parameters = ["name"]

[custom_actions.converge-stamp]
command = ["sh", "-c", "printf converged > /root/stamp-converged"]

[custom_actions.wipe-stamp]
command = ["sh", "-c", "printf wiped > /root/stamp-wiped"]
"""
"""What the lab's install adds to the agent config: the destructive types allowed, and custom actions that leave a
file behind (WIPE's stands in for a reflash, which would end the session's VM)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The removal tests end the session's agent: they run after every other test (a stable sort keeps the rest)."""
    items.sort(key=lambda item: item.path.name == "test_removal.py")


@dataclass
class Lab:
    machine: Machine
    controller: Controller
    web_root: Path
    """Served to the guest at http://HOST_ADDRESS/ (the apt repository is `repo/`)."""

    def run(self, operation_type: str, arguments: dict[str, Any] | None = None, timeout: float = 120) -> dict[str, Any]:
        """The device's record once `operation_type` finished on the VM: status, result, failure_reason."""
        body: dict[str, Any] = {"operation_type": operation_type, "operation_device_query": {"device_id": DEVICE_ID}}
        if arguments is not None:
            body["arguments"] = arguments
        created = self.controller.create(body)
        self.controller.wait_finished(created["id"], timeout=timeout)
        return self.controller.device_results(created["id"])[DEVICE_ID]

    def artifact(self, result: dict[str, Any]) -> bytes:
        """The artifact a finished command uploaded, downloaded from the controller as an operator would."""
        response = self.controller.http.get(result["result"]["artifact"]["download_path"])
        assert response.status_code == 200, response.text
        return response.content

    def device(self) -> dict[str, Any]:
        result: dict[str, Any] = self.controller.get(f"/v0/devices/{DEVICE_ID}/")
        return result

    def wait_online(self, online: bool = True, timeout: float = 120) -> None:
        wait_for(f"{DEVICE_ID} {'online' if online else 'offline'}", lambda: self.device()["online"] is online, timeout)


@pytest.fixture(scope="session")
def image() -> Image:
    for tool in ("qemu-system-x86_64", "qemu-img", "ssh", "scp", "socat"):
        if shutil.which(tool) is None:
            unavailable(f"the VM tier needs {tool} (apt-get install qemu-system-x86 qemu-utils openssh-client socat)")
    try:
        return ensure_image()
    except ImageBuildError as error:
        unavailable(f"the VM image could not be built: {error}")


@pytest.fixture(scope="session")
def lab(image: Image) -> Iterator[Lab]:
    with tempfile.TemporaryDirectory(prefix="tether-vm-") as scratch:
        work = Path(scratch)
        printed = tether("broker", "acl", "--dir", str(work / "auth"), "--device", DEVICE_ID)
        credentials = dict(line.split(" ", 1) for line in printed.splitlines())
        settings = tuple((work / "auth" / "mosquitto-tether.conf").read_text().splitlines())
        broker = PersistentMosquitto(work / "mosquitto", extra_config=settings, anonymous=False).start()
        controller_url = f"mqtt://tether-controller:{credentials['tether-controller']}@127.0.0.1:{broker.port}"
        controller = Controller(work, controller_url, "--public-url", f"http://{HOST_ADDRESS}:{API_PORT}")
        web_root = work / "www"
        web_root.mkdir()
        (web_root / "repo").symlink_to(image.repository)
        web = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(web_root))
        )
        threading.Thread(target=web.serve_forever, daemon=True).start()
        forwards = {BROKER_PORT: broker.port, WEB_PORT: web.server_address[1], API_PORT: controller.http_port}
        machine = Machine(image, work / "vm", forwards)
        try:
            try:
                machine.start()
            except MachineError as error:
                unavailable(f"the VM did not boot: {error}")
            _install_agent(machine, work, credentials[DEVICE_ID])
            lab = Lab(machine, controller, web_root)
            lab.wait_online(timeout=180)
            yield lab
        finally:
            machine.stop()
            web.shutdown()
            web.server_close()
            controller.stop()
            broker.stop()


def _install_agent(machine: Machine, work: Path, password: str) -> None:
    """tether from this checkout into the image's environment, then systemd/install-tetherd.sh as operators run it."""
    wheel = _wheel(work)
    machine.copy_in(wheel, f"/root/{wheel.name}")
    machine.ssh(f"/opt/tether/bin/pip install --quiet --no-deps --no-index /root/{wheel.name}", timeout=300)
    machine.ssh("/opt/tether/bin/pip check")
    for name in ("install-tetherd.sh", "tetherd.service"):
        machine.write(f"/root/tether-install/{name}", (REPOSITORY / "systemd" / name).read_text())
    machine.write("/root/broker-password", password + "\n", mode="0600")
    machine.write(
        "/etc/apt/sources.list.d/tether-tests.list", f"deb [trusted=yes] http://{HOST_ADDRESS}:{WEB_PORT}/repo ./\n"
    )
    machine.write("/root/agent-extra.toml", AGENT_SETTINGS)
    public_key = tether("keys", "public", "--db", str(work / "tether.db")).strip()
    machine.ssh(
        "bash /root/tether-install/install-tetherd.sh --env /opt/tether"
        f" --broker mqtt://{DEVICE_ID}@{HOST_ADDRESS}:{BROKER_PORT} --broker-password-file /root/broker-password"
        f' --device-id {DEVICE_ID} --trusted-key {public_key} --set "$(cat /root/agent-extra.toml)"',
        timeout=300,
    )


def _wheel(work: Path) -> Path:
    """A wheel of this checkout, built from a copy so the build leaves nothing in the repository."""
    source = work / "source"
    shutil.copytree(
        REPOSITORY,
        source,
        ignore=shutil.ignore_patterns(".git", ".venv", "*.egg-info", "build", "__pycache__", ".*_cache", "tests"),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(work / "wheel"), str(source)],
        check=True,
        timeout=300,
    )
    return next((work / "wheel").glob("tether-*.whl"))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass
