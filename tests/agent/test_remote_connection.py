"""REMOTE_CONNECTION on Linux: the reverse SSH tunnel to the configured bastion, as a transient unit, read back."""

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from agent.config import RemoteConnectionSettings
from agent.errors import HandlerError
from agent.handlers import build_registry, capabilities
from agent.handlers.base import HandlerContext
from agent.handlers.remote import RemoteConnectionHandler, remote_port
from agent.platforms import LinuxPlatform
from agent.platforms.android import AndroidPlatform
from shared.arguments import ArgumentsError, validate_arguments
from shared.arguments.remote import RemoteConnectionArguments
from shared.messages import Command
from shared.operations import OperationType
from tests.fakes import FakeTools

BASTION = RemoteConnectionSettings(
    host="bastion.example",
    port=2222,
    user="tunnel",
    identity_file=Path("/etc/tetherd/remote_ed25519"),
    known_hosts_file=Path("/etc/tetherd/bastion_known_hosts"),
    remote_port_range=(20000, 20999),
)
SYSTEMCTL = """state="${0%/*}/unit-state"
case "$1" in
  is-active) s=inactive; [ -e "$state" ] && read -r s < "$state"; echo "$s"; [ "$s" = active ] ;;
  stop) [ -e "${0%/*}/stop-fails" ] || echo inactive > "$state" ;;
esac"""
"""systemctl with the one unit, whose state is the file `unit-state` beside it; `stop` stops it unless `stop-fails`."""
STARTS = 'echo active > "${0%/*}/unit-state"; echo "Running as unit: tether-remote.service"'
STATE = ["systemctl", "is-active", "tether-remote.service"]
STOP = ["systemctl", "stop", "tether-remote.service"]


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    tools = FakeTools.on_path(tmp_path / "bin", monkeypatch)
    tools.add("systemctl", script=SYSTEMCTL)
    tools.add("systemd-run", script=STARTS)
    return tools


def run(tmp_path: Path, arguments: dict[str, Any], bastion: RemoteConnectionSettings | None = BASTION) -> Any:
    platform = LinuxPlatform(boot_id_path=tmp_path / "boot_id", tool_timeout=5, tunnel_settle_s=0.01)
    command = Command(
        command_id="c1",
        operation_id="op-1",
        device_id="kiosk-17",
        operation_type=OperationType.REMOTE_CONNECTION,
        arguments=arguments,
        issued_at=datetime.now(UTC),
    )
    context = HandlerContext(command=command, platform=platform, work_dir=tmp_path / "work")
    parsed = validate_arguments(OperationType.REMOTE_CONNECTION, arguments)
    assert isinstance(parsed, RemoteConnectionArguments)
    return asyncio.run(RemoteConnectionHandler(bastion).run(parsed, context))


def test_open_starts_ssh_as_a_transient_unit_that_ends_by_itself(tools: FakeTools, tmp_path: Path) -> None:
    result = run(tmp_path, {"duration_s": 900})

    port = remote_port(BASTION, "kiosk-17")
    assert tools.calls() == [
        STATE,
        [
            "systemd-run",
            "--unit=tether-remote",
            "--collect",
            "--property=RuntimeMaxSec=900",
            "ssh",
            "-N",
            "-o",
            "BatchMode=yes",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "ServerAliveInterval=30",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "UserKnownHostsFile=/etc/tetherd/bastion_known_hosts",
            "-i",
            "/etc/tetherd/remote_ed25519",
            "-p",
            "2222",
            "-R",
            f"{port}:127.0.0.1:22",
            "tunnel@bastion.example",
        ],
        STATE,
    ]
    assert result == {
        "unit": "tether-remote.service",
        "bastion": "tunnel@bastion.example:2222",
        "remote_port": port,
        "duration_s": 900,
        "replaced": False,
        "unit_state": "active",
    }


def test_open_replaces_a_tunnel_already_open(tools: FakeTools, tmp_path: Path) -> None:
    (tools.directory / "unit-state").write_text("active\n")

    result = run(tmp_path, {"duration_s": 60})

    assert [argv[:2] for argv in tools.calls()] == [
        STATE[:2],
        STOP[:2],
        ["systemd-run", "--unit=tether-remote"],
        STATE[:2],
    ]
    assert result["replaced"] is True


def test_open_fails_when_ssh_stops_at_once(tools: FakeTools, tmp_path: Path) -> None:
    tools.add("systemd-run", stdout="Running as unit: tether-remote.service\n")  # ssh exits: the unit is collected

    with pytest.raises(HandlerError) as caught:
        run(tmp_path, {"duration_s": 60})

    assert str(caught.value) == (
        "ssh to bastion.example stopped within 0.01s (inactive): see journalctl -u tether-remote.service"
    )


def test_close_stops_the_unit_and_reads_it_back(tools: FakeTools, tmp_path: Path) -> None:
    (tools.directory / "unit-state").write_text("active\n")

    result = run(tmp_path, {"close": True})

    assert tools.calls() == [STATE, STOP, STATE]
    assert result == {"unit": "tether-remote.service", "closed": True, "unit_state": "inactive"}


def test_close_without_a_tunnel_says_nothing_was_open(tools: FakeTools, tmp_path: Path) -> None:
    result = run(tmp_path, {"close": True}, bastion=None)

    assert tools.calls() == [STATE, STATE]
    assert result == {"unit": "tether-remote.service", "closed": False, "unit_state": "inactive"}


def test_close_fails_when_the_unit_keeps_running(tools: FakeTools, tmp_path: Path) -> None:
    (tools.directory / "unit-state").write_text("active\n")
    (tools.directory / "stop-fails").touch()

    with pytest.raises(HandlerError, match=r"^tether-remote.service is still active after it was stopped$"):
        run(tmp_path, {"close": True})


def test_the_type_is_offered_only_with_a_bastion_in_the_config(tmp_path: Path) -> None:
    linux = LinuxPlatform(boot_id_path=tmp_path / "boot_id")
    android = AndroidPlatform(serial="S1")
    assert OperationType.REMOTE_CONNECTION not in capabilities(linux, build_registry())
    assert OperationType.REMOTE_CONNECTION in capabilities(linux, build_registry(remote_connection=BASTION))
    assert OperationType.REMOTE_CONNECTION not in capabilities(android, build_registry(remote_connection=BASTION))


def test_without_a_bastion_opening_names_the_config_section(tools: FakeTools, tmp_path: Path) -> None:
    with pytest.raises(HandlerError, match=r"set \[remote_connection\] in the agent config$"):
        run(tmp_path, {"duration_s": 60}, bastion=None)
    assert tools.calls() == []


def test_each_device_keeps_its_own_port_in_the_range() -> None:
    ports = {remote_port(BASTION, f"kiosk-{n}") for n in range(200)}
    assert all(20000 <= port <= 20999 for port in ports)
    assert len(ports) > 150  # spread over the range
    assert remote_port(BASTION, "kiosk-17") == remote_port(BASTION, "kiosk-17")
    one = BASTION.model_copy(update={"remote_port_range": (20005, 20005)})
    assert remote_port(one, "kiosk-17") == 20005


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"duration_s": 59},
        {"duration_s": 14401},
        {"close": True, "duration_s": 60},
        {"close": "yes"},
        {"duration_s": 60, "host": "evil.example"},
        {"duration_s": 60, "remote_port": 22},
    ],
)
def test_a_command_can_only_open_for_a_while_or_close(arguments: dict[str, Any]) -> None:
    with pytest.raises(ArgumentsError):
        validate_arguments(OperationType.REMOTE_CONNECTION, arguments)


@pytest.mark.parametrize(
    "change",
    [
        {"host": "-oProxyCommand=sh"},
        {"host": "bastion.example x"},
        {"user": "-l"},
        {"user": "root@other"},
        {"identity_file": "remote_ed25519"},
        {"known_hosts_file": "known_hosts"},
        {"remote_port_range": (22, 22)},
        {"remote_port_range": (21000, 20000)},
        {"remote_port_range": (20000, 70000)},
        {"port": 0},
        {"proxy_jump": "elsewhere"},
    ],
)
def test_the_config_section_is_checked(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RemoteConnectionSettings.model_validate({**BASTION.model_dump(), **change})
