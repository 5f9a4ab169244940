"""Packages on a real Debian: INSTALL, UNINSTALL, REFRESH_APPLIST and NOTIFY_OTA through apt, from the local
repository the lab serves (build-image.sh made it: `hello` and what the image lacks of its dependencies)."""

from hashlib import sha256

import pytest

from tests.e2e.harness import wait_for
from tests.vm.conftest import WEB_PORT, Lab
from tests.vm.machine import HOST_ADDRESS

pytestmark = pytest.mark.vm


def installed_version(lab: Lab, package: str) -> str | None:
    done = lab.machine.ssh(f"dpkg-query -W -f '${{db:Status-Status}} ${{Version}}' {package}", check=False)
    status, _, version = done.stdout.partition(" ")
    return version if done.returncode == 0 and status == "installed" else None


def test_a_package_installed_from_the_repository_runs_is_listed_and_is_removed_again(lab: Lab) -> None:
    assert installed_version(lab, "hello") is None
    result = lab.run("INSTALL", {"packages": [{"name": "hello"}]}, timeout=300)
    assert result["status"] == "SUCCESSFUL", str(result)
    version = installed_version(lab, "hello")
    assert version is not None
    [package] = result["result"]["installed"]
    assert (package["name"], package["status"], package["installed_version"]) == ("hello", "SUCCESSFUL", version)
    assert lab.machine.output("hello") == "Hello, world!"

    listed = lab.run("REFRESH_APPLIST")
    assert listed["status"] == "SUCCESSFUL", str(listed)
    packages = {entry["name"]: entry["version"] for entry in listed["result"]["packages"]}
    assert packages["hello"] == version
    assert packages["tzdata"] == installed_version(lab, "tzdata")
    assert listed["result"]["count"] == len(packages) == int(lab.machine.output("dpkg-query -W | wc -l"))
    inventory = wait_for(
        "the listing in the announced inventory",
        lambda: (shown := lab.device()["inventory"]).get("package_count") == len(packages) and shown,
        timeout=30,
    )
    assert {"name": "hello", "version": version} in inventory["packages"]

    removed = lab.run("UNINSTALL", {"packages": ["hello"]}, timeout=300)
    assert removed["status"] == "SUCCESSFUL", str(removed)
    assert removed["result"]["removed"] == ["hello"]
    assert installed_version(lab, "hello") is None


def test_a_package_no_repository_has_fails_with_apts_reason_and_installs_nothing(lab: Lab) -> None:
    before = lab.machine.output("dpkg-query -W | md5sum")
    result = lab.run("INSTALL", {"packages": [{"name": "tether-no-such-package"}]}, timeout=300)
    assert result["status"] == "FAILED", str(result)
    assert "Unable to locate package tether-no-such-package" in result["failure_reason"]
    assert lab.machine.output("dpkg-query -W | md5sum") == before


def test_waiting_os_updates_are_read_from_apt_and_none_are_installed(lab: Lab) -> None:
    result = lab.run("NOTIFY_OTA", timeout=300)
    assert result["status"] == "SUCCESSFUL", str(result)
    # The lab's repository holds only what build-image.sh put there, at the versions the image has or lacks.
    assert result["result"]["manager"] == "apt-get"
    assert result["result"]["count"] == len(result["result"]["packages"]) == 0
    assert lab.device()["inventory"]["os_updates"]["count"] == 0


def hello_package(lab: Lab) -> dict[str, str]:
    """The lab repository's `hello` .deb as a download: its URL on the lab's web server and its SHA-256."""
    deb = next((lab.web_root / "repo").glob("hello_*.deb"))
    return {"url": f"http://{HOST_ADDRESS}:{WEB_PORT}/repo/{deb.name}", "sha256": sha256(deb.read_bytes()).hexdigest()}


@pytest.mark.parametrize("operation_type", ["SIMPLE_INSTALL", "INSTALL_OTA"])
def test_a_package_file_is_downloaded_checked_installed_and_removed(lab: Lab, operation_type: str) -> None:
    assert installed_version(lab, "hello") is None
    result = lab.run(operation_type, {"file": hello_package(lab)}, timeout=300)
    assert result["status"] == "SUCCESSFUL", str(result)
    assert result["result"]["sha256"] == hello_package(lab)["sha256"]
    assert lab.machine.output("hello") == "Hello, world!"

    removed = lab.run("UNINSTALL_APP", {"packages": ["hello"]}, timeout=300)
    assert removed["status"] == "SUCCESSFUL", str(removed)
    assert installed_version(lab, "hello") is None


def test_a_package_file_that_is_not_the_one_named_installs_nothing(lab: Lab) -> None:
    result = lab.run("SIMPLE_INSTALL", {"file": {**hello_package(lab), "sha256": "0" * 64}}, timeout=300)
    assert result["status"] == "FAILED", str(result)
    assert "sha256" in result["failure_reason"].lower()
    assert installed_version(lab, "hello") is None
