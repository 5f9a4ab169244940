"""Power-off, regional, display, sound and attention handlers on the Linux platform, against recording fakes."""

import asyncio
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent import process
from agent.errors import HandlerError, ToolFailed, ToolNotFound, ToolTimeout, UnsupportedOperation
from agent.handlers import build_registry, handler_for
from agent.handlers.attention import BeepHandler, NotifyHandler
from agent.handlers.base import Handler, RestartOutcome
from agent.handlers.display import BrightnessHandler, ScreenOffTimeoutHandler
from agent.handlers.management import RemoveAgentHandler
from agent.handlers.power import ShutDownHandler
from agent.handlers.regional import LanguageHandler, TimeZoneHandler
from agent.handlers.sound import VolumeHandler
from agent.platforms import LinuxPlatform
from agent.platforms.contract import AgentRemover, Audio, Beeper, Clock, Display, Locale, Notifier, PowerOff
from shared.arguments import ArgumentsError, validate_arguments
from shared.arguments.management import DeviceConfigArguments
from shared.operations import OperationType
from tests.agent.contexts import context_for
from tests.fakes import LIST_SESSIONS, RUNUSER, FakeSession, FakeTools, logind, show_session

sh = shlex.split


@pytest.fixture(autouse=True)
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    return FakeTools.on_path(tmp_path / "fake-bin", monkeypatch)


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "KILL_GRACE_S", 0.5)
    monkeypatch.setattr(process, "DRAIN_S", 0.3)
    monkeypatch.setenv("DISPLAY", ":0")


def execute(
    handler: Handler,
    arguments: dict[str, Any],
    tmp_path: Path,
    tool_timeout: float = 5,
    profile_changes: list[DeviceConfigArguments] | None = None,
) -> dict[str, Any]:
    """Validate as the runner does, then run on a Linux platform; profile changes go to `profile_changes`."""
    changes = [] if profile_changes is None else profile_changes

    async def update_profile(change: DeviceConfigArguments) -> dict[str, Any]:
        changes.append(change)
        return {}

    (operation_type,) = handler.operation_types
    platform = LinuxPlatform(
        boot_id_path=tmp_path / "boot_id",
        tool_timeout=tool_timeout,
        etc_dir=tmp_path / "etc",
        user_runtime_root=tmp_path / "run-user",
        lock_wait_s=0.5,
    )
    context = context_for(platform, tmp_path, operation_type, update_profile=update_profile)
    return asyncio.run(handler.run(validate_arguments(operation_type, arguments), context))


# Records what the fake wall reads on stdin (builtins only).
READ_STDIN = """while IFS= read -r line; do printf '%s\\n' "$line"; done > "${0%/*}/stdin.txt\""""


KIOSK = FakeSession("2", tty="tty2")
"""A kiosk user in GNOME on Wayland."""
SSH = FakeSession("7", user="ops", uid=1001, type="tty", desktop="", tty="pts/0")
"""An administrator logged in over SSH."""
LOCALES = {"locale": {"stdout": "C\nC.utf8\nPOSIX\nde_DE.utf8\npt_BR.utf8\nen_GB.utf8\n"}}


@dataclass(frozen=True)
class Case:
    handler: Handler
    arguments: dict[str, Any]
    calls: list[list[str]]
    result: dict[str, Any]
    fakes: dict[str, dict[str, Any]] = field(default_factory=dict)
    only_fakes_on_path: bool = False
    """PATH holds nothing but the fakes, so a tool installed on this machine cannot change which one is chosen."""
    missing: str = ""
    """The ToolNotFound message when PATH is empty, if not `<first tool> not found on PATH`."""

    def install(self, tools: FakeTools, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in {argv[0] for argv in self.calls}:
            tools.add(name, **self.fakes.get(name, {}))
        if self.only_fakes_on_path:
            monkeypatch.setenv("PATH", str(tools.directory))


CASES = {
    "timezone": Case(
        TimeZoneHandler(),
        {"timezone": "Europe/Berlin"},
        [sh("timedatectl set-timezone Europe/Berlin")],
        {"timezone": "Europe/Berlin"},
    ),
    "language-tag": Case(
        LanguageHandler(),
        {"language": "de-DE"},
        [sh("locale -a"), sh("localectl set-locale LANG=de_DE.UTF-8")],
        {"language": "de-DE", "locale": "de_DE.UTF-8", "generated": False},
        fakes=LOCALES,
    ),
    "language-posix": Case(
        LanguageHandler(),
        {"language": "pt_BR"},
        [sh("locale -a"), sh("localectl set-locale LANG=pt_BR.UTF-8")],
        {"language": "pt_BR", "locale": "pt_BR.UTF-8", "generated": False},
        fakes=LOCALES,
    ),
    "language-full": Case(
        LanguageHandler(),
        {"language": "en_GB.UTF-8"},
        [sh("locale -a"), sh("localectl set-locale LANG=en_GB.UTF-8")],
        {"language": "en_GB.UTF-8", "locale": "en_GB.UTF-8", "generated": False},
        fakes=LOCALES,
    ),
    "language-bare": Case(
        LanguageHandler(),
        {"language": "de"},
        [sh("locale -a"), sh("localectl set-locale LANG=de_DE.UTF-8")],
        {"language": "de", "locale": "de_DE.UTF-8", "generated": False},
        fakes=LOCALES,
    ),
    "brightness": Case(BrightnessHandler(), {"brightness": 40}, [sh("brightnessctl set 40%")], {"brightness": 40}),
    "brightness-off": Case(BrightnessHandler(), {"brightness": 0}, [sh("brightnessctl set 0%")], {"brightness": 0}),
    "screen-off-after": Case(
        ScreenOffTimeoutHandler(),
        {"timeout_s": 300},
        [LIST_SESSIONS, sh("xset s 300 0 +dpms dpms 300 300 300")],
        {"timeout_s": 300, "mechanism": "xset", "display": ":0", "sessions": []},
    ),
    "screen-never-off": Case(
        ScreenOffTimeoutHandler(),
        {"timeout_s": 0},
        [LIST_SESSIONS, sh("xset s off -dpms")],
        {"timeout_s": 0, "mechanism": "xset", "display": ":0", "sessions": []},
    ),
    "volume-pipewire": Case(
        VolumeHandler(),
        {"volume": 35},
        [
            LIST_SESSIONS,
            show_session("2"),
            sh("runuser -u kiosk -- env XDG_RUNTIME_DIR=<runtime> DBUS_SESSION_BUS_ADDRESS=unix:path=<runtime>/bus")
            + sh("wpctl set-volume @DEFAULT_AUDIO_SINK@ 35%"),
            sh("wpctl set-volume @DEFAULT_AUDIO_SINK@ 35%"),
        ],
        {"stream": "music", "volume": 35},
        fakes={"loginctl": {"script": logind(KIOSK)}, "runuser": {"script": RUNUSER}},
        missing="neither wpctl (PipeWire) nor amixer (ALSA) found on PATH",
    ),
    "volume-alsa": Case(
        VolumeHandler(),
        {"stream": "system", "volume": 100},
        [sh("amixer sset Master 100%")],
        {"stream": "system", "volume": 100},
        only_fakes_on_path=True,
    ),
    "notify": Case(
        NotifyHandler(),
        {"title": "Maintenance", "message": "Rebooting at 22:00 -- save your work"},
        [LIST_SESSIONS, show_session("7"), ["who"], ["wall"]],
        {
            "title": "Maintenance",
            "message": "Rebooting at 22:00 -- save your work",
            "terminals": ["pts/0"],
            "sessions": [],
            "not_reached": [],
        },
        fakes={"wall": {"script": READ_STDIN}, "loginctl": {"script": logind(SSH)}},
    ),
    "beep": Case(BeepHandler(), {"duration_s": 1.5}, [sh("beep -l 1500")], {"duration_s": 1.5}),
    "beep-default": Case(BeepHandler(), {}, [sh("beep -l 1000")], {"duration_s": 1.0}),
    "remove-agent": Case(
        RemoveAgentHandler(),
        {},
        [
            [
                "systemd-run",
                "--on-active=5",
                "--unit=tetherd-remove",
                "--collect",
                "--description=Remove the Tether agent",
                *sh("systemctl disable --now tetherd.service"),
            ]
        ],
        {"unit": "tetherd.service", "stops_in_s": 5.0},
    ),
}
"""What each handler runs and returns."""


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_handler_runs_the_tools_and_returns_what_it_applied(
    case: Case, fake_tools: FakeTools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case.install(fake_tools, monkeypatch)

    assert execute(case.handler, case.arguments, tmp_path) == case.result
    runtime = str(tmp_path / "run-user" / "1000")
    assert fake_tools.calls() == [[word.replace("<runtime>", runtime) for word in argv] for argv in case.calls]


def test_a_new_time_zone_is_announced_for_device_time_schedules(tmp_path: Path, fake_tools: FakeTools) -> None:
    fake_tools.add("timedatectl")
    changes: list[DeviceConfigArguments] = []
    execute(TimeZoneHandler(), {"timezone": "Asia/Tokyo"}, tmp_path, profile_changes=changes)
    assert changes == [DeviceConfigArguments(time_zone="Asia/Tokyo")]


def test_a_time_zone_the_system_refused_is_not_announced(tmp_path: Path, fake_tools: FakeTools) -> None:
    fake_tools.add("timedatectl", exit_code=1)
    changes: list[DeviceConfigArguments] = []
    with pytest.raises(ToolFailed):
        execute(TimeZoneHandler(), {"timezone": "Asia/Tokyo"}, tmp_path, profile_changes=changes)
    assert changes == []


SHUT_DOWN = Case(ShutDownHandler(shutdown_grace_s=0.05), {}, [sh("systemctl poweroff")], {})
FAILING = {
    "shut-down": SHUT_DOWN,
    **{
        name: CASES[name]
        for name in ("timezone", "language-tag", "brightness", "screen-off-after", "volume-pipewire", "notify")
    },
    "beep": Case(BeepHandler(), {"duration_s": 0.1}, [sh("beep -l 100")], {"duration_s": 0.1}),
}
"""One case per handler, for its failure paths."""


@pytest.mark.parametrize("case", FAILING.values(), ids=FAILING.keys())
def test_missing_tool(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    message = case.missing or f"{case.calls[0][0]} not found on PATH"

    with pytest.raises(ToolNotFound) as caught:
        execute(case.handler, case.arguments, tmp_path)
    assert str(caught.value) == message


@pytest.mark.parametrize("case", FAILING.values(), ids=FAILING.keys())
def test_failing_tool(case: Case, fake_tools: FakeTools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = case.calls[0][0]
    case.install(fake_tools, monkeypatch)
    fake_tools.add(tool, exit_code=3, stderr="details\nFailed to set: Access denied\n")

    with pytest.raises(ToolFailed, match=rf"^{tool} exited 3: Failed to set: Access denied$"):
        execute(case.handler, case.arguments, tmp_path)
    assert fake_tools.calls() == case.calls[:1]


@pytest.mark.parametrize("case", FAILING.values(), ids=FAILING.keys())
def test_hanging_tool(case: Case, fake_tools: FakeTools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = case.calls[0][0]
    case.install(fake_tools, monkeypatch)
    fake_tools.add(tool, sleep=10)
    # A beep may take its own duration on top of the tool timeout.
    limit = "0.3" if tool == "beep" else "0.2"

    with pytest.raises(ToolTimeout, match=rf"^{tool} timed out after {limit}s$"):
        execute(case.handler, case.arguments, tmp_path, tool_timeout=0.2)


@pytest.mark.parametrize(
    ("operation_type", "arguments", "field"),
    [
        (OperationType.SHUT_DOWN, {"delay": 5}, "arguments.delay"),
        (OperationType.SET_TIMEZONE, {}, "arguments.timezone"),
        (OperationType.SET_TIMEZONE, {"timezone": "Mars/Olympus_Mons"}, "arguments.timezone"),
        (OperationType.SET_TIMEZONE, {"timezone": "../../etc/passwd"}, "arguments.timezone"),
        (OperationType.SET_DEVICE_LANGUAGE, {"language": "german"}, "arguments.language"),
        (OperationType.SET_DEVICE_LANGUAGE, {"language": "de_DE LC_ALL=C"}, "arguments.language"),
        (OperationType.SET_BRIGHTNESS_SCALE, {"brightness": 101}, "arguments.brightness"),
        (OperationType.SET_BRIGHTNESS_SCALE, {"brightness": "50%"}, "arguments.brightness"),
        (OperationType.SET_SCREEN_OFF_TIMEOUT, {"timeout_s": -1}, "arguments.timeout_s"),
        (OperationType.SET_SCREEN_OFF_TIMEOUT, {"timeout_s": 86401}, "arguments.timeout_s"),
        (OperationType.SET_STREAM_VOLUME, {}, "arguments.volume"),
        (OperationType.SET_STREAM_VOLUME, {"volume": 101}, "arguments.volume"),
        (OperationType.SET_STREAM_VOLUME, {"stream": "bass", "volume": 5}, "arguments.stream"),
        (OperationType.NOTIFY_DEVICE, {"title": ""}, "arguments.title"),
        (OperationType.NOTIFY_DEVICE, {"title": "t", "message": "m" * 4001}, "arguments.message"),
        (OperationType.BEEP_DEVICE, {"duration_s": 0}, "arguments.duration_s"),
        (OperationType.BEEP_DEVICE, {"duration_s": 61}, "arguments.duration_s"),
    ],
)
def test_bad_arguments_name_the_field(operation_type: OperationType, arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(ArgumentsError) as caught:
        validate_arguments(operation_type, arguments)

    assert caught.value.field == field


def test_linux_has_the_system_capabilities(tmp_path: Path) -> None:
    platform = LinuxPlatform(boot_id_path=tmp_path / "boot_id")

    for needs in (PowerOff, AgentRemover, Clock, Locale, Display, Audio, Notifier, Beeper):
        assert isinstance(platform, needs)


# --- SHUT_DOWN ------------------------------------------------------------------------------------------------------


def test_shut_down_powers_off_and_fails_if_still_alive_after_the_grace(fake_tools: FakeTools, tmp_path: Path) -> None:
    with pytest.raises(HandlerError) as caught:
        execute(SHUT_DOWN.handler, {}, tmp_path)

    assert str(caught.value) == "the device did not shut down within 0.05 s of being asked to"
    assert fake_tools.calls() == [sh("systemctl poweroff")]


def test_shut_down_and_remove_agent_are_destructive_and_others_are_not() -> None:
    assert ShutDownHandler.destructive
    for case in CASES.values():
        assert case.handler.destructive == isinstance(case.handler, RemoveAgentHandler)


def test_remove_agent_stops_the_unit_the_config_names(fake_tools: FakeTools, tmp_path: Path) -> None:
    fake_tools.add("systemd-run")
    platform = LinuxPlatform(boot_id_path=tmp_path / "boot_id", agent_unit="tether-agent@kiosk.service")

    assert asyncio.run(platform.remove_agent(2.5)) == "tether-agent@kiosk.service"
    assert fake_tools.calls()[0][1] == "--on-active=2.5"
    assert fake_tools.calls()[0][-1] == "tether-agent@kiosk.service"


def test_shut_down_grace_follows_the_reboot_grace(tmp_path: Path) -> None:
    platform = LinuxPlatform(boot_id_path=tmp_path / "boot_id")

    handler = handler_for(OperationType.SHUT_DOWN, platform, build_registry(reboot_grace_s=7))
    assert isinstance(handler, ShutDownHandler)
    assert handler.shutdown_grace_s == 7


def test_new_boot_id_after_restart_means_the_device_was_powered_off_and_on() -> None:
    outcome = ShutDownHandler().outcome_after_restart("boot-a", "boot-b")

    assert outcome == RestartOutcome(result={"previous_boot_id": "boot-a", "boot_id": "boot-b"})


def test_same_boot_id_after_restart_means_it_did_not_shut_down() -> None:
    outcome = ShutDownHandler().outcome_after_restart("boot-a", "boot-a")

    assert outcome == RestartOutcome(reason="boot id unchanged: the device did not shut down")


# --- specifics ------------------------------------------------------------------------------------------------------


def test_notify_sends_title_and_message_through_stdin(fake_tools: FakeTools, tmp_path: Path) -> None:
    fake_tools.add("wall", script=READ_STDIN)
    fake_tools.add("loginctl", script=logind(SSH))

    execute(NotifyHandler(), {"title": "/etc/shadow", "message": "line one\nline two"}, tmp_path)

    assert fake_tools.calls("wall") == [["wall"]]
    assert (fake_tools.directory / "stdin.txt").read_text() == "/etc/shadow\nline one\nline two\n"


def test_notify_without_a_message_sends_the_title(fake_tools: FakeTools, tmp_path: Path) -> None:
    fake_tools.add("wall", script=READ_STDIN)
    fake_tools.add("loginctl", script=logind(SSH))

    assert execute(NotifyHandler(), {"title": "Hello"}, tmp_path)["message"] == ""
    assert (fake_tools.directory / "stdin.txt").read_text() == "Hello\n"


def test_screen_timeout_without_a_session_needs_an_x_display(
    fake_tools: FakeTools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY")

    with pytest.raises(HandlerError) as caught:
        execute(ScreenOffTimeoutHandler(), {"timeout_s": 60}, tmp_path)

    assert str(caught.value) == (
        "no graphical session is logged in and tetherd has no DISPLAY of its own: nothing has a screen timeout to set"
    )
    assert fake_tools.calls() == [LIST_SESSIONS]


def test_volume_prefers_pipewire_over_alsa(fake_tools: FakeTools, tmp_path: Path) -> None:
    fake_tools.add("loginctl", script=logind(KIOSK))
    fake_tools.add("runuser", script=RUNUSER)
    fake_tools.add("wpctl")
    fake_tools.add("amixer")

    execute(VolumeHandler(), {"stream": "system", "volume": 10}, tmp_path)

    assert fake_tools.calls("wpctl") == [sh("wpctl set-volume @DEFAULT_AUDIO_SINK@ 10%")]
    assert fake_tools.calls("amixer") == []


@pytest.mark.parametrize("stream", ["ring", "alarm", "notification", "voice_call"])
def test_volume_of_a_stream_linux_lacks_fails(stream: str, fake_tools: FakeTools, tmp_path: Path) -> None:
    fake_tools.add("wpctl")

    with pytest.raises(UnsupportedOperation) as caught:
        execute(VolumeHandler(), {"stream": stream, "volume": 50}, tmp_path)

    assert str(caught.value) == (
        f"the {stream} stream has no volume of its own on linux: "
        "only music and system (both the default output's volume) can be set"
    )
    assert fake_tools.calls() == []
