"""UPDATE_BLUEPRINT: steps run in order through the runner, each with the checks its own command would get."""

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.handlers import build_registry
from agent.journal import Journal
from agent.platforms.linux import LinuxPlatform
from agent.policy import TypePolicy
from agent.runner import Runner
from shared.arguments import ArgumentsError, validate_arguments
from shared.messages import Command, StatusReport, utc_now
from shared.operations import DeviceStatus, OperationType
from tests.agent.test_runner import until
from tests.fakes import FakeTools


def blueprint(*steps: tuple[OperationType, dict[str, Any]]) -> dict[str, Any]:
    return {"name": "kiosk-baseline", "steps": [{"operation_type": t, "arguments": a} for t, a in steps]}


WIFI_OFF = (OperationType.SET_WIFI_STATE, {"wifi_state": "off"})
BERLIN = (OperationType.SET_TIMEZONE, {"timezone": "Europe/Berlin"})
BRIGHT = (OperationType.SET_BRIGHTNESS_SCALE, {"brightness": 80})


class Device:
    def __init__(self, tmp_path: Path, tools: FakeTools, policy: TypePolicy | None = None) -> None:
        (tmp_path / "boot_id").write_text("boot-1\n")
        self.tools = tools
        self.journal = Journal(tmp_path / "journal.db")
        self.published: list[StatusReport] = []
        self.profiles: list[Any] = []

        async def publish(report: StatusReport) -> bool:
            self.published.append(report)
            return True

        async def update_profile(change: Any) -> dict[str, Any]:
            self.profiles.append(change)
            return {"time_zone": change.time_zone}

        self.runner = Runner(
            device_id="d1",
            platform=LinuxPlatform(boot_id_path=tmp_path / "boot_id", tool_timeout=5),
            registry=build_registry(),
            journal=self.journal,
            publish=publish,
            work_root=tmp_path / "work",
            type_policy=policy,
            update_profile=update_profile,
        )

    def run(self, arguments: dict[str, Any]) -> StatusReport:
        command = Command(
            command_id="c1",
            operation_id="op",
            device_id="d1",
            operation_type=OperationType.UPDATE_BLUEPRINT,
            arguments=arguments,
            issued_at=utc_now(),
        )

        async def go() -> None:
            worker = asyncio.create_task(self.runner.run())
            await self.runner.accept(command)
            await until(lambda: bool(self.published) and self.published[-1].status.is_terminal)
            worker.cancel()

        asyncio.run(go())
        return self.published[-1]


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    tools = FakeTools.on_path(tmp_path / "bin", monkeypatch)
    for name in ("timedatectl", "brightnessctl"):
        tools.add(name)
    return tools


@pytest.fixture
def device(tmp_path: Path, tools: FakeTools) -> Iterator[Device]:
    made = Device(tmp_path, tools)
    yield made
    made.journal.close()


def test_the_steps_run_in_order_as_their_own_operations_would(device: Device) -> None:
    final = device.run(blueprint(WIFI_OFF, BERLIN))
    assert (final.status, final.failure_reason) == (DeviceStatus.SUCCESSFUL, None)
    assert device.tools.calls() == [["nmcli", "radio", "wifi", "off"], ["timedatectl", "set-timezone", "Europe/Berlin"]]
    assert final.result == {
        "name": "kiosk-baseline",
        "steps": [
            {"operation_type": "SET_WIFI_STATE", "result": {"wifi_state": "off"}},
            {"operation_type": "SET_TIMEZONE", "result": {"timezone": "Europe/Berlin"}},
        ],
    }
    assert [change.time_zone for change in device.profiles] == ["Europe/Berlin"]  # announced, as SET_TIMEZONE is


def test_the_first_failing_step_ends_the_blueprint_and_the_rest_never_run(device: Device) -> None:
    device.tools.add("timedatectl", exit_code=1, stderr="Failed to set time zone: Access denied\n")
    final = device.run(blueprint(WIFI_OFF, BERLIN, BRIGHT))
    assert final.status is DeviceStatus.FAILED
    assert final.failure_reason is not None
    assert final.failure_reason.startswith("step 2 of 3 (SET_TIMEZONE) failed: ")
    assert "Access denied" in final.failure_reason
    assert device.tools.calls("brightnessctl") == []
    assert final.result is not None
    assert final.result["steps"] == [{"operation_type": "SET_WIFI_STATE", "result": {"wifi_state": "off"}}]
    assert final.result["failed"]["step"] == 2


def test_a_step_the_device_does_not_allow_is_refused_with_the_configs_reason(tmp_path: Path, tools: FakeTools) -> None:
    device = Device(tmp_path, tools, TypePolicy(denied=frozenset({OperationType.SET_WIFI_STATE})))
    try:
        final = device.run(blueprint(BERLIN, WIFI_OFF))
    finally:
        device.journal.close()
    assert final.status is DeviceStatus.FAILED
    assert final.failure_reason == (
        "step 2 of 2 (SET_WIFI_STATE) failed: "
        "SET_WIFI_STATE is denied on this device (denied_types in its agent config)"
    )
    assert tools.calls("nmcli") == []


def test_a_step_the_platform_lacks_fails_with_its_own_reason(device: Device) -> None:
    final = device.run(blueprint((OperationType.SET_ROTATION_STATE, {"rotation": "landscape"})))
    assert (
        final.failure_reason == "step 1 of 1 (SET_ROTATION_STATE) failed: SET_ROTATION_STATE is not supported on linux"
    )
    assert device.tools.calls() == []


@pytest.mark.parametrize(
    ("steps", "field", "words"),
    [
        ([(OperationType.REBOOT, {})], "arguments.steps.0", "REBOOT cannot be a blueprint step"),
        ([(OperationType.UPDATE_BLUEPRINT, blueprint(WIFI_OFF))], "arguments.steps.0", "cannot be a blueprint step"),
        ([(OperationType.RUN_SHELL_SCRIPT, {"script": "id"})], "arguments.steps.0", "cannot be a blueprint step"),
        ([WIFI_OFF, (OperationType.SET_TIMEZONE, {"timezone": "Mars/Olympus"})], "arguments.steps.1", "timezone"),
        ([], "arguments.steps", "at least 1"),
    ],
)
def test_a_blueprint_is_checked_whole_when_it_is_created(
    steps: list[tuple[OperationType, dict[str, Any]]], field: str, words: str
) -> None:
    with pytest.raises(ArgumentsError, match=words) as raised:
        validate_arguments(OperationType.UPDATE_BLUEPRINT, blueprint(*steps))
    assert raised.value.field == field
