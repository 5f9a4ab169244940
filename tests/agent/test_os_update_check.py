"""NOTIFY_OTA on Linux: the package lists refreshed, the waiting upgrades read strictly, reported and inventoried.

PATH holds nothing but the fakes (see test_linux_packages): this machine's real apt-get must never be found.
"""

import shlex
from pathlib import Path
from typing import Any

import pytest

from agent.errors import HandlerError, ToolFailed
from agent.handlers import updates as updates_module
from agent.handlers.updates import PendingUpdatesHandler
from agent.platforms.linux_pending_updates import PendingUpdate, parse_apk, parse_apt, parse_dnf, parse_zypper
from shared.operations import OperationType
from tests.agent.test_linux_packages import (
    Inventory,
    context,
    execute,
    fake_tools,
    inventory,
    parse,
    platform,
    short_graces,
)
from tests.fakes import FakeTools

__all__ = ["context", "fake_tools", "inventory", "platform", "short_graces"]  # fixtures, imported for pytest

APT_UPGRADE = """Reading package lists...
Building dependency tree...
Reading state information...
Calculating upgrade...
The following packages will be upgraded:
  libssl3 openssl tzdata
3 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.
Inst tzdata [2024a-0+deb12u1] (2025a-0+deb12u1 Debian:12.9/stable-updates [all])
Inst libssl3 [3.0.11-1~deb12u1] (3.0.15-1~deb12u1 Debian-Security:12/stable-security [amd64])
Inst openssl [3.0.11-1~deb12u1] (3.0.15-1~deb12u1 Debian:12.9/stable, Debian-Security:12/stable-security [amd64]) []
Conf tzdata (2025a-0+deb12u1 Debian:12.9/stable-updates [all])
Conf libssl3 (3.0.15-1~deb12u1 Debian-Security:12/stable-security [amd64])
Conf openssl (3.0.15-1~deb12u1 Debian:12.9/stable, Debian-Security:12/stable-security [amd64])
"""
DNF_CHECK_UPDATE = """
curl.x86_64                          7.76.1-31.el9                  baseos
NetworkManager-initscripts-updown.noarch
                                     1:1.48.10-2.el9                baseos
Obsoleting Packages
grub2-tools.x86_64                   1:2.06-92.el9                  baseos
    grub2-tools.x86_64               1:2.06-80.el9                  @baseos
"""
RPM_INSTALLED = "curl\t7.76.1-29.el9\nNetworkManager-initscripts-updown\t1:1.48.10-1.el9\nbash\t5.1.8-9.el9\n"
ZYPPER_LIST_UPDATES = """Loading repository data...
Reading installed packages...
S | Repository        | Name | Current Version | Available Version | Arch
--+-------------------+------+-----------------+-------------------+-------
v | Update repository | curl | 8.6.0-4.1       | 8.6.0-4.3         | x86_64
v | Update repository | vim  | 9.1.0836-1.1    | 9.1.1101-1.1      | x86_64
"""
APK_VERSION = """Installed:                                Available:
busybox-1.36.1-r15                      < 1.36.1-r16
ca-certificates-bundle-20240226-r0      < 20241121-r0
"""
PENDING: dict[str, dict[str, Any]] = {
    "apt-get": {
        "calls": [["apt-get", "update", "-q"], ["apt-get", "-s", "-q", "upgrade"]],
        "packages": [
            {"name": "libssl3", "current": "3.0.11-1~deb12u1", "available": "3.0.15-1~deb12u1"},
            {"name": "openssl", "current": "3.0.11-1~deb12u1", "available": "3.0.15-1~deb12u1"},
            {"name": "tzdata", "current": "2024a-0+deb12u1", "available": "2025a-0+deb12u1"},
        ],
        "security": 2,
    },
    "dnf": {
        "calls": [
            ["dnf", "check-update", "-q", "--refresh"],
            ["rpm", "-qa", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\n"],
        ],
        "packages": [
            {
                "name": "NetworkManager-initscripts-updown",
                "current": "1:1.48.10-1.el9",
                "available": "1:1.48.10-2.el9",
            },
            {"name": "curl", "current": "7.76.1-29.el9", "available": "7.76.1-31.el9"},
        ],
    },
    "zypper": {
        "calls": [["zypper", "--non-interactive", "refresh"], ["zypper", "--non-interactive", "list-updates"]],
        "packages": [
            {"name": "curl", "current": "8.6.0-4.1", "available": "8.6.0-4.3"},
            {"name": "vim", "current": "9.1.0836-1.1", "available": "9.1.1101-1.1"},
        ],
    },
    "apk": {
        "calls": [["apk", "update"], ["apk", "version", "-l", "<"]],
        "packages": [
            {"name": "busybox", "current": "1.36.1-r15", "available": "1.36.1-r16"},
            {"name": "ca-certificates-bundle", "current": "20240226-r0", "available": "20241121-r0"},
        ],
    },
}


def answering(argument: str, output: str, exit_code: int = 0) -> str:
    """A fake's script that prints `output` and exits `exit_code` when one of its arguments is `argument`."""
    answer = f"printf %s {shlex.quote(output)}; exit {exit_code}"
    return f'for a; do [ "$a" = {shlex.quote(argument)} ] && {{ {answer}; }}; done'


def add_pending(tools: FakeTools) -> None:
    """Every manager with what it says is waiting; each test's PATH keeps only the one it asks for first."""
    tools.add("apt-get", script=answering("-s", APT_UPGRADE))
    tools.add("dnf", script=answering("check-update", DNF_CHECK_UPDATE, 100))
    tools.add("rpm", stdout=RPM_INSTALLED)
    tools.add("zypper", script=answering("list-updates", ZYPPER_LIST_UPDATES))
    tools.add("apk", script=answering("version", APK_VERSION))


@pytest.mark.parametrize("manager", list(PENDING))
def test_notify_ota_reports_and_inventories_what_is_waiting(
    fake_tools: FakeTools, context: Any, inventory: Inventory, manager: str
) -> None:
    add_pending(fake_tools)
    for other in PENDING:
        if other != manager:
            (fake_tools.directory / other).unlink()

    result = execute(PendingUpdatesHandler(), OperationType.NOTIFY_OTA, {}, context)

    expected = PENDING[manager]
    assert fake_tools.calls() == expected["calls"]
    security = {"security": expected["security"]} if "security" in expected else {}
    assert result == {
        "manager": manager,
        "count": len(expected["packages"]),
        "packages": expected["packages"],
        "truncated": False,
        **security,
    }
    [update] = inventory.updates
    checked_at = update["os_updates"].pop("checked_at")
    assert checked_at.endswith("+00:00")
    assert update == {"os_updates": result}


def test_notify_ota_reads_the_c_locale(
    fake_tools: FakeTools, context: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LC_ALL", raising=False)
    fake_tools.add("apt-get", script=f'echo "$LC_ALL $DEBIAN_FRONTEND" >> {tmp_path}/env')

    result = execute(PendingUpdatesHandler(), OperationType.NOTIFY_OTA, {}, context)

    assert result["count"] == 0
    assert (tmp_path / "env").read_text().splitlines() == [" noninteractive", "C noninteractive"]


def test_notify_ota_with_nothing_waiting(fake_tools: FakeTools, context: Any, inventory: Inventory) -> None:
    fake_tools.add("dnf")

    result = execute(PendingUpdatesHandler(), OperationType.NOTIFY_OTA, {}, context)

    assert result == {"manager": "dnf", "count": 0, "packages": [], "truncated": False}
    assert fake_tools.calls() == [["dnf", "check-update", "-q", "--refresh"]]
    assert inventory.updates[0]["os_updates"]["count"] == 0


def test_notify_ota_fails_when_dnf_fails(fake_tools: FakeTools, context: Any, inventory: Inventory) -> None:
    fake_tools.add("dnf", exit_code=1, stderr="Error: Failed to download metadata for repo 'baseos'\n")

    with pytest.raises(ToolFailed, match=r"^dnf exited 1: Error: Failed to download metadata for repo 'baseos'$"):
        execute(PendingUpdatesHandler(), OperationType.NOTIFY_OTA, {}, context)
    assert inventory.updates == []


@pytest.mark.parametrize(
    ("exit_code", "stdout", "listed"),
    [(100, "", 0), (0, "curl.x86_64  7.76.1-31.el9  baseos\n", 1)],
)
def test_notify_ota_refuses_dnf_contradicting_itself(
    fake_tools: FakeTools, context: Any, exit_code: int, stdout: str, listed: int
) -> None:
    fake_tools.add("dnf", exit_code=exit_code, stdout=stdout)
    fake_tools.add("rpm", stdout=RPM_INSTALLED)

    with pytest.raises(HandlerError, match=rf"^dnf exited {exit_code} but listed {listed} updates: cannot tell"):
        execute(PendingUpdatesHandler(), OperationType.NOTIFY_OTA, {}, context)


def test_notify_ota_fails_when_the_lists_cannot_be_refreshed(fake_tools: FakeTools, context: Any) -> None:
    fake_tools.add("apt-get", exit_code=100, stderr="E: Could not get lock /var/lib/apt/lists/lock\n")

    with pytest.raises(ToolFailed, match=r"^apt-get exited 100: E: Could not get lock"):
        execute(PendingUpdatesHandler(), OperationType.NOTIFY_OTA, {}, context)
    assert fake_tools.calls() == [["apt-get", "update", "-q"]]


def test_notify_ota_bounds_the_list(
    fake_tools: FakeTools, context: Any, inventory: Inventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(updates_module, "LISTED_PACKAGES", 1)
    fake_tools.add("zypper", script=answering("list-updates", ZYPPER_LIST_UPDATES))

    result = execute(PendingUpdatesHandler(), OperationType.NOTIFY_OTA, {}, context)

    assert (result["count"], result["truncated"], [p["name"] for p in result["packages"]]) == (2, True, ["curl"])
    assert inventory.updates[0]["os_updates"]["count"] == 2


@pytest.mark.parametrize(
    ("parse", "text", "line"),
    [
        (parse_apt, "Inst libssl3 3.0.15 Debian-Security\n", "Inst libssl3 3.0.15 Debian-Security"),
        (parse_dnf, "curl.x86_64 7.76.1-31.el9\n", "curl.x86_64 7.76.1-31.el9"),
        (parse_dnf, "Last metadata expiration check: 0:01:02 ago.\n", "Last metadata expiration check: 0:01:02 ago."),
        (parse_dnf, "NetworkManager.noarch\n", "NetworkManager.noarch"),
        (parse_zypper, ZYPPER_LIST_UPDATES + "v | Update repository | jq | 1.7\n", "v | Update repository | jq | 1.7"),
        (parse_apk, APK_VERSION + "busybox-1.36.1-r15 = 1.36.1-r15\n", "busybox-1.36.1-r15 = 1.36.1-r15"),
    ],
)
def test_an_unexpected_line_fails_rather_than_hides_an_update(parse: Any, text: str, line: str) -> None:
    with pytest.raises(HandlerError, match=r"^cannot read \S+'s list of updates: unexpected line (.*)$") as caught:
        parse(text)
    assert str(caught.value).endswith(repr(line))


def test_zypper_without_a_table_or_its_all_clear_fails() -> None:
    assert parse_zypper("Loading repository data...\nReading installed packages...\nNo updates found.\n") == []
    with pytest.raises(HandlerError, match=r"printed no table and not 'No updates found.'$"):
        parse_zypper("Repository 'Main' is invalid.\n")


def test_apt_tells_security_updates_by_their_suite() -> None:
    assert parse_apt(APT_UPGRADE)[0] == PendingUpdate("tzdata", "2024a-0+deb12u1", "2025a-0+deb12u1", security=False)
    assert [update.security for update in parse_apt(APT_UPGRADE)] == [False, True, True]


def test_notify_ota_takes_no_arguments() -> None:
    with pytest.raises(HandlerError, match=r"^invalid arguments: all: Extra inputs are not permitted$"):
        parse(OperationType.NOTIFY_OTA, {"all": True})
