"""The operation handlers and the Linux platform, run against recording fake tools (and, for scripts, for real)."""

import asyncio
import sys
from pathlib import Path
from typing import Any, get_args

import pytest

from agent import process
from agent.errors import HandlerError, InvalidArguments, ToolFailed, ToolNotFound, ToolTimeout, UnsupportedOperation
from agent.handlers import REGISTRY, build_registry, capabilities, handler_for
from agent.handlers.base import Handler, HandlerContext, RestartOutcome
from agent.handlers.lock import LockHandler
from agent.handlers.power import RebootHandler
from agent.handlers.shell import ShellHandler
from agent.handlers.wifi import WifiHandler
from agent.platforms import LinuxPlatform
from agent.platforms.contract import Rebooter, ScriptRunner, SessionLocker, WifiRadio
from shared.arguments import ArgumentsError, arguments_model, validate_arguments
from shared.operations import OperationType, Platform
from tests.agent.contexts import context_for as shared_context
from tests.fakes import LIST_SESSIONS, FakeSession, FakeTools, logind, show_session

BOOT_ID = "0d3c1f4e-8a52-4c1b-9a7e-3f0b6e9d2a11"


@pytest.fixture(autouse=True)
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    """Every test here runs with the fakes first on PATH, so none can reach the real systemctl or nmcli."""
    return FakeTools.on_path(tmp_path / "fake-bin", monkeypatch)


@pytest.fixture(autouse=True)
def short_graces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "KILL_GRACE_S", 0.5)
    monkeypatch.setattr(process, "DRAIN_S", 0.3)


@pytest.fixture
def platform(tmp_path: Path) -> LinuxPlatform:
    boot_id = tmp_path / "boot_id"
    boot_id.write_text(BOOT_ID + "\n")
    return LinuxPlatform(boot_id_path=boot_id, tool_timeout=5)


def context_for(platform: Any, work_dir: Path, operation_type: OperationType = OperationType.LOCK) -> HandlerContext:
    work_dir.mkdir(exist_ok=True)
    return shared_context(platform, work_dir, operation_type)


@pytest.fixture
def context(platform: LinuxPlatform, tmp_path: Path) -> HandlerContext:
    return context_for(platform, tmp_path / "work")


def parse(handler: Handler, arguments: dict[str, Any]) -> Any:
    """Validate as the runner does, for the handler's (first) operation type."""
    try:
        return validate_arguments(min(handler.operation_types), arguments)
    except ArgumentsError as err:
        raise InvalidArguments(str(err)) from err


def execute(handler: Handler, arguments: dict[str, Any], context: HandlerContext) -> dict[str, Any]:
    return asyncio.run(handler.run(parse(handler, arguments), context))


# --- the Linux platform ---------------------------------------------------------------------------------------------


def test_boot_id_is_read_and_stripped(platform: LinuxPlatform) -> None:
    assert asyncio.run(platform.boot_id()) == BOOT_ID


def test_unreadable_boot_id_is_a_handler_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-boot-id"

    with pytest.raises(HandlerError, match=rf"^cannot read the boot id from {missing}: "):
        asyncio.run(LinuxPlatform(boot_id_path=missing).boot_id())


def test_linux_platform_offers_what_every_handler_needs(platform: LinuxPlatform) -> None:
    assert platform.kind is Platform.LINUX
    for needs in (Rebooter, SessionLocker, WifiRadio, ScriptRunner):
        assert isinstance(platform, needs)


def test_platform_tool_timeout_applies(fake_tools: FakeTools, tmp_path: Path) -> None:
    fake_tools.add("loginctl", sleep=30)
    platform = LinuxPlatform(boot_id_path=tmp_path / "unused", tool_timeout=0.3)

    with pytest.raises(ToolTimeout, match=r"^loginctl timed out after 0.3s$"):
        asyncio.run(platform.lock_sessions())


# --- REBOOT ---------------------------------------------------------------------------------------------------------


def test_reboot_runs_systemctl_and_fails_if_still_alive_after_the_grace(
    fake_tools: FakeTools, context: HandlerContext
) -> None:
    with pytest.raises(HandlerError) as caught:
        execute(RebootHandler(reboot_grace_s=0.05), {}, context)

    assert str(caught.value) == "the device did not reboot within 0.05 s of being asked to"
    assert fake_tools.calls() == [["systemctl", "reboot"]]


def test_default_reboot_grace_is_five_minutes() -> None:
    assert RebootHandler().reboot_grace_s == 300


def test_reboot_refused_by_systemctl_fails_at_once(fake_tools: FakeTools, context: HandlerContext) -> None:
    fake_tools.add("systemctl", exit_code=1, stderr="Failed to reboot system via logind: Access denied\n")

    with pytest.raises(ToolFailed, match=r"^systemctl exited 1: Failed to reboot system via logind: Access denied$"):
        execute(RebootHandler(), {}, context)


def test_reboot_without_systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, context: HandlerContext) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    with pytest.raises(ToolNotFound, match=r"^systemctl not found on PATH$"):
        execute(RebootHandler(), {}, context)


def test_reboot_takes_no_arguments() -> None:
    with pytest.raises(InvalidArguments, match=r"^invalid arguments: delay: Extra inputs are not permitted$"):
        parse(RebootHandler(), {"delay": 5})


def test_new_boot_id_after_restart_means_the_reboot_happened() -> None:
    outcome = RebootHandler().outcome_after_restart("boot-a", "boot-b")

    assert outcome == RestartOutcome(result={"previous_boot_id": "boot-a", "boot_id": "boot-b"})


def test_same_boot_id_after_restart_means_it_did_not() -> None:
    outcome = RebootHandler().outcome_after_restart("boot-a", "boot-a")

    assert outcome == RestartOutcome(reason="boot id unchanged: the device did not reboot")


# --- LOCK -----------------------------------------------------------------------------------------------------------


def test_lock_locks_every_session_and_reads_back_that_it_is_locked(
    fake_tools: FakeTools, context: HandlerContext
) -> None:
    fake_tools.add("loginctl", script=logind(FakeSession("2")))

    assert execute(LockHandler(), {}, context) == {
        "locked": True,
        "sessions": [{"session": "2", "user": "kiosk", "type": "wayland", "desktop": "GNOME", "locked": True}],
    }
    assert fake_tools.calls() == [LIST_SESSIONS, show_session("2"), ["loginctl", "lock-sessions"], show_session("2")]


def test_lock_failure_names_loginctl(fake_tools: FakeTools, context: HandlerContext) -> None:
    fake_tools.add("loginctl", exit_code=1, stderr="Failed to issue method call: Access denied\n")

    with pytest.raises(ToolFailed, match=r"^loginctl exited 1: Failed to issue method call: Access denied$"):
        execute(LockHandler(), {}, context)


# --- SET_WIFI_STATE -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "word"),
    [
        (True, "on"),
        (False, "off"),
        ("on", "on"),
        ("ON", "on"),
        ("enable", "on"),
        ("off", "off"),
        ("OFF", "off"),
        ("disable", "off"),
    ],
)
def test_wifi_switches_the_radio(fake_tools: FakeTools, context: HandlerContext, value: Any, word: str) -> None:
    assert execute(WifiHandler(), {"wifi_state": value}, context) == {"wifi_state": word}
    assert fake_tools.calls() == [["nmcli", "radio", "wifi", word]]


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({}, "wifi_state: Field required"),
        ({"wifi_state": "maybe"}, "wifi_state: Value error, expected true/false, 'on'/'off' or 'enable'/'disable'"),
        ({"wifi_state": 1}, "wifi_state: Input should be a valid boolean"),
        ({"wifi_state": None}, "wifi_state: Input should be a valid boolean"),
        ({"wifi_state": True, "ssid": "x"}, "ssid: Extra inputs are not permitted"),
    ],
)
def test_wifi_rejects_bad_arguments(arguments: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidArguments) as caught:
        parse(WifiHandler(), arguments)

    assert str(caught.value).startswith(f"invalid arguments: {problem}")


def test_wifi_failure_names_nmcli(fake_tools: FakeTools, context: HandlerContext) -> None:
    fake_tools.add("nmcli", exit_code=10, stderr="Error: NetworkManager is not running.\n")

    with pytest.raises(ToolFailed, match=r"^nmcli exited 10: Error: NetworkManager is not running\.$"):
        execute(WifiHandler(), {"wifi_state": "off"}, context)


def test_wifi_without_nmcli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, context: HandlerContext) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    with pytest.raises(ToolNotFound, match=r"^nmcli not found on PATH$"):
        execute(WifiHandler(), {"wifi_state": True}, context)


# --- RUN_SHELL_SCRIPT -----------------------------------------------------------------------------------------------


def test_script_runs_for_real(context: HandlerContext) -> None:
    result = execute(ShellHandler(), {"script": "echo hi; echo warn >&2"}, context)

    assert result == {
        "exit_code": 0,
        "stdout": "hi\n",
        "stderr": "warn\n",
        "stdout_truncated": False,
        "stderr_truncated": False,
        "duration_s": result["duration_s"],
    }
    assert 0 <= result["duration_s"] < 5


def test_failing_script_keeps_exit_code_and_output(context: HandlerContext) -> None:
    with pytest.raises(ToolFailed) as caught:
        execute(ShellHandler(), {"script": "echo hi; echo err >&2; exit 3"}, context)

    assert str(caught.value) == "script exited 3: err"
    assert caught.value.result is not None
    assert caught.value.result["exit_code"] == 3
    assert caught.value.result["stdout"] == "hi\n"
    assert caught.value.result["stderr"] == "err\n"


def test_failing_script_without_stderr(context: HandlerContext) -> None:
    with pytest.raises(ToolFailed, match=r"^script exited 7$"):
        execute(ShellHandler(), {"script": "echo only-stdout; exit 7"}, context)


def test_script_is_a_private_file_run_in_the_work_dir(context: HandlerContext) -> None:
    result = execute(ShellHandler(), {"script": 'pwd; stat -c %a "$0"; dirname "$0"'}, context)

    work_dir = str(context.work_dir)
    assert result["stdout"] == f"{work_dir}\n700\n{work_dir}\n"


def test_script_with_another_interpreter(context: HandlerContext) -> None:
    arguments = {"script": "import sys\nprint(sys.argv[0].rsplit('/', 1)[0])", "interpreter": sys.executable}

    assert execute(ShellHandler(), arguments, context)["stdout"] == f"{context.work_dir}\n"


def test_missing_interpreter(context: HandlerContext, tmp_path: Path) -> None:
    missing = tmp_path / "bin" / "zsh"

    with pytest.raises(ToolNotFound, match=rf"^{missing} not found or not executable$"):
        execute(ShellHandler(), {"script": "true", "interpreter": str(missing)}, context)


def test_script_timeout_keeps_partial_output(context: HandlerContext) -> None:
    with pytest.raises(ToolTimeout) as caught:
        execute(ShellHandler(), {"script": "echo started; sleep 30", "timeout_s": 1}, context)

    assert str(caught.value) == "script timed out after 1s"
    assert caught.value.result is not None
    assert caught.value.result["stdout"] == "started\n"


def test_script_output_is_cut_to_the_limit(context: HandlerContext) -> None:
    result = execute(ShellHandler(), {"script": "seq 1 10000", "output_limit": 6}, context)

    assert result["stdout"] == "10000\n"
    assert result["stdout_truncated"]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({}, "script"),
        ({"script": ""}, "script"),
        ({"script": "x" * (256 * 1024 + 1)}, "script"),
        ({"script": "é" * (128 * 1024 + 1)}, "script"),
        ({"script": 42}, "script"),
        ({"script": "true", "timeout_s": 0}, "timeout_s"),
        ({"script": "true", "timeout_s": 86401}, "timeout_s"),
        ({"script": "true", "interpreter": "sh"}, "interpreter"),
        ({"script": "true", "interpreter": "bin/bash"}, "interpreter"),
        ({"script": "true", "output_limit": -1}, "output_limit"),
        ({"script": "true", "output_limit": 1024 * 1024 + 1}, "output_limit"),
        ({"script": "true", "shell": "bash"}, "shell"),
    ],
)
def test_script_rejects_bad_arguments(arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArguments, match=rf"^invalid arguments: {field}: "):
        parse(ShellHandler(), arguments)


def test_script_defaults() -> None:
    arguments = parse(ShellHandler(), {"script": "true"})

    assert arguments.model_dump() == {
        "script": "true",
        "timeout_s": 300,
        "interpreter": "/bin/sh",
        "output_limit": 4096,
    }


# --- the registry ---------------------------------------------------------------------------------------------------


def test_capabilities_on_linux(platform: LinuxPlatform) -> None:
    assert capabilities(platform) == [
        OperationType.ADD_OVERRIDE_APN,
        OperationType.ADD_WIFI_AP,
        OperationType.ALLOW_BLUETOOTH,
        OperationType.ALLOW_CAMERA,
        OperationType.APPLY_APP_CONFIG,
        OperationType.BEEP_DEVICE,
        OperationType.CAPTURE_SCREENSHOT,
        OperationType.COLLECT_LOGS,
        OperationType.CONVERGE,
        OperationType.DEPLOY_SYSTEM_OTA,
        OperationType.DISABLE_LOST_MODE,
        OperationType.ENABLE_LOST_MODE,
        OperationType.INSTALL,
        OperationType.INSTALL_APP,
        OperationType.INSTALL_CERTIFICATE,
        OperationType.INSTALL_OTA,
        OperationType.LOCK,
        OperationType.LOST_MODE_DEVICE_LOCATION,
        OperationType.NOTIFY_DEVICE,
        OperationType.NOTIFY_OTA,
        OperationType.NUDGE_DEVICE,
        OperationType.PAUSE_OS_UPDATES,
        OperationType.PLAY_LOST_MODE_SOUND,
        OperationType.REBOOT,
        OperationType.REFRESH_APPLIST,
        OperationType.REMOVE_AGENT,
        OperationType.REMOVE_DEVICE,
        OperationType.REMOVE_WIFI_AP,
        OperationType.REQUEST_BUGREPORT,
        OperationType.REQUEST_DPCLOG,
        OperationType.RUN_CUSTOM_ACTION,
        OperationType.RUN_SHELL_SCRIPT,
        OperationType.SET_BLUETOOTH_STATE,
        OperationType.SET_BRIGHTNESS_SCALE,
        OperationType.SET_DEVICE_LANGUAGE,
        OperationType.SET_DEVICE_LOCKDOWN_STATE,
        OperationType.SET_ETHERNET_SETTINGS,
        OperationType.SET_KIOSK_APP,
        OperationType.SET_OS_UPDATE_POLICY,
        OperationType.SET_SCREEN_OFF_TIMEOUT,
        OperationType.SET_STATIC_IP,
        OperationType.SET_STREAM_VOLUME,
        OperationType.SET_TIMEZONE,
        OperationType.SET_WALLPAPER,
        OperationType.SET_WIFI_STATE,
        OperationType.SHUT_DOWN,
        OperationType.SIMPLE_INSTALL,
        OperationType.SYNC_CONTENT,
        OperationType.UNINSTALL,
        OperationType.UNINSTALL_APP,
        OperationType.UNINSTALL_CERTIFICATE,
        OperationType.UPDATE_BLUEPRINT,
        OperationType.UPDATE_DEVICE_CONFIG,
        OperationType.USE_ONLY_SAVED_WIFI_AP,
        OperationType.WIPE,
    ]


def test_a_platform_without_tools_can_only_change_its_profile_or_take_a_blueprint_of_such_changes() -> None:
    assert capabilities(BarePlatform()) == [OperationType.UPDATE_BLUEPRINT, OperationType.UPDATE_DEVICE_CONFIG]


def test_every_registered_handler_runs_its_type() -> None:
    for operation_type, handler in REGISTRY.items():
        assert operation_type in handler.operation_types
        model = arguments_model(operation_type)
        assert model.model_config.get("extra") == "forbid"
        assert model.model_config.get("frozen") is True


def test_every_handler_is_typed_with_the_model_its_types_are_validated_into() -> None:
    """`run`'s arguments parameter is the handler's first type parameter; the runner validates with shared.arguments."""
    for operation_type, handler in REGISTRY.items():
        declared = handler.arguments_model
        models = get_args(declared) or (declared,)  # a family of several types takes a union of their models
        assert arguments_model(operation_type) in models, operation_type


def test_handler_for_a_supported_type(platform: LinuxPlatform) -> None:
    assert isinstance(handler_for(OperationType.REBOOT, platform), RebootHandler)


def test_handler_for_an_unsupported_type(platform: LinuxPlatform) -> None:
    with pytest.raises(UnsupportedOperation, match=r"^APPLE_APP_UNINSTALL is not supported on linux$"):
        handler_for(OperationType.APPLE_APP_UNINSTALL, platform)


@pytest.mark.parametrize("operation_type", [OperationType.REBOOT, OperationType.LOCK, OperationType.RUN_SHELL_SCRIPT])
def test_a_platform_without_the_tool_is_refused(operation_type: OperationType) -> None:
    with pytest.raises(UnsupportedOperation, match=rf"^{operation_type} is not supported on android$"):
        handler_for(operation_type, BarePlatform())


def test_reboot_grace_is_configurable(platform: LinuxPlatform) -> None:
    registry = build_registry(reboot_grace_s=0.5)

    handler = handler_for(OperationType.REBOOT, platform, registry)
    assert isinstance(handler, RebootHandler)
    assert handler.reboot_grace_s == 0.5


class BarePlatform:
    kind = Platform.ANDROID

    async def boot_id(self) -> str:
        return BOOT_ID
