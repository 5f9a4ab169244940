"""Lost mode on Linux and Android: the exact tools each type runs, what the agent keeps and announces, and refusals."""

import asyncio
import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent import process
from agent.errors import HandlerError, ToolFailed, UnsupportedOperation
from agent.handlers import handler_for
from agent.handlers.base import Handler, PlatformTools
from agent.handlers.lost_mode import (
    DisableLostModeHandler,
    EnableLostModeHandler,
    LostModeLocationHandler,
    LostModeSoundHandler,
)
from agent.platforms.android import AndroidPlatform
from agent.platforms.linux import LinuxPlatform
from agent.profile import LostMode, Profile, ProfileStore
from shared.arguments import ArgumentsError, validate_arguments
from shared.messages import Announcement, utc_now
from shared.operations import OperationType, Platform
from tests.agent.contexts import context_for
from tests.fake_adb import FakeAdb
from tests.fakes import RUNUSER, FakeSession, FakeTools, logind

SERIAL = "0A1B2C3D4E"
CONFIGURED = Announcement(
    device_id="dev-1",
    platform=Platform.LINUX,
    agent_version="0.1.0",
    tags=["kiosk"],
    inventory={"hostname": "kiosk-1"},
    announced_at=utc_now(),
)
READ_STDIN = """while IFS= read -r line; do printf '%s\\n' "$line"; done > "${0%/*}/stdin.txt\""""
"""Records what the fake wall reads on stdin (builtins only)."""
LOST = {"message": "Please return me to the front desk; $(reboot)", "phone_number": "+49 30 1234567"}
SHOWN = "Please return me to the front desk; $(reboot)\nCall +49 30 1234567"
NOTIFY_SEND_LOST = ["notify-send", "--app-name=Tether", "--", "This device has been reported lost", SHOWN]


@pytest.fixture(autouse=True)
def short_graces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "KILL_GRACE_S", 0.5)
    monkeypatch.setattr(process, "DRAIN_S", 0.3)


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    """Fakes first on PATH, `wall` among them, so no test writes to this machine's terminals."""
    fakes = FakeTools.on_path(tmp_path / "bin", monkeypatch)
    fakes.add("wall")
    # A kiosk's screen session, whose locker works, and an operator's terminal: the message reaches both.
    fakes.add(
        "loginctl", script=logind(FakeSession("2"), FakeSession("7", user="ops", uid=1001, type="tty", tty="pts/0"))
    )
    fakes.add("runuser", script=RUNUSER)
    fakes.add("notify-send")
    return fakes


def acting(tools: FakeTools) -> list[list[str]]:
    """The calls that show the message or lock, without logind's read-backs and runuser's wrapping."""
    return [
        call
        for call in tools.calls()
        if call[0] in ("wall", "notify-send") or call[:2] == ["loginctl", "lock-sessions"]
    ]


@pytest.fixture
def adb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeAdb:
    fake = FakeAdb.on_path(tmp_path / "adb-bin", monkeypatch)
    fake.attach(SERIAL, credential="Pin")  # a device with a lock screen: LOCK can lock it
    return fake


@pytest.fixture
def profile(tmp_path: Path) -> Profile:
    return Profile(ProfileStore(tmp_path / "state" / "profile.json"), CONFIGURED)


def linux(tmp_path: Path) -> LinuxPlatform:
    return LinuxPlatform(boot_id_path=tmp_path / "boot_id", tool_timeout=5)


def android() -> AndroidPlatform:
    return AndroidPlatform(serial=SERIAL, tool_timeout=5)


def execute(
    handler: Handler[Any, Any],
    arguments: dict[str, Any],
    platform: PlatformTools,
    tmp_path: Path,
    profile: Profile | None = None,
) -> dict[str, Any]:
    """Validate as the runner does, then run; lost mode is kept in `profile` as the device's session would."""

    async def update_lost_mode(message: str | None) -> LostMode:
        assert profile is not None, "this handler should not keep lost mode"
        return profile.set_lost_mode(message, CONFIGURED)[1]

    (operation_type,) = handler.operation_types
    context = context_for(platform, tmp_path, operation_type, update_lost_mode=update_lost_mode)
    assert handler.supports(platform)
    return asyncio.run(handler.run(validate_arguments(operation_type, arguments), context))


def announced_lost_mode(profile: Profile) -> Any:
    return profile.announced(CONFIGURED).inventory["lost_mode"]


# --- ENABLE_LOST_MODE and DISABLE_LOST_MODE on Linux ----------------------------------------------------------------


def test_enable_on_linux_keeps_announces_shows_and_locks(tmp_path: Path, tools: FakeTools, profile: Profile) -> None:
    tools.add("wall", script=READ_STDIN)

    result = execute(EnableLostModeHandler(), LOST, linux(tmp_path), tmp_path, profile)

    assert acting(tools) == [["wall"], NOTIFY_SEND_LOST, ["loginctl", "lock-sessions"]]
    assert (tools.directory / "stdin.txt").read_text() == f"This device has been reported lost\n{SHOWN}\n"
    assert result["steps"] == [
        {"step": "record", "ok": True},
        {"step": "message", "ok": True},
        {"step": "lock", "ok": True},
    ]
    lost_mode = result["lost_mode"]
    assert (lost_mode["enabled"], lost_mode["message"]) == (True, LOST["message"])
    assert datetime.fromisoformat(lost_mode["since"]) <= utc_now()
    announced = profile.announced(CONFIGURED)
    assert announced.inventory == {"hostname": "kiosk-1", "lost_mode": lost_mode}
    assert announced.tags == ["kiosk"]


def test_enable_again_replaces_the_message_and_keeps_since(tmp_path: Path, tools: FakeTools, profile: Profile) -> None:
    first = execute(EnableLostModeHandler(), {"message": "first"}, linux(tmp_path), tmp_path, profile)
    second = execute(EnableLostModeHandler(), {"message": "second"}, linux(tmp_path), tmp_path, profile)

    assert second["lost_mode"] == {**first["lost_mode"], "message": "second"}


def test_a_failed_lock_fails_the_command_after_every_step_was_tried(
    tmp_path: Path, tools: FakeTools, profile: Profile
) -> None:
    # The kiosk's session has no screen locker: lock-sessions succeeds, and its LockedHint stays "no".
    tools.add("loginctl", script=logind(FakeSession("2", locks=False)))

    with pytest.raises(HandlerError) as raised:
        execute(EnableLostModeHandler(), LOST, linux(tmp_path), tmp_path, profile)

    assert str(raised.value).startswith("lock: ")
    assert str(raised.value).endswith(" (done: record, message)")
    assert acting(tools) == [NOTIFY_SEND_LOST, ["loginctl", "lock-sessions"]]
    assert raised.value.result is not None
    steps = raised.value.result["steps"]
    assert [(step["step"], step["ok"]) for step in steps] == [("record", True), ("message", True), ("lock", False)]
    assert "2" in steps[2]["error"]
    assert raised.value.result["lost_mode"] == announced_lost_mode(profile)
    assert announced_lost_mode(profile)["enabled"] is True


def test_a_profile_that_cannot_be_kept_fails_the_record_step_only(tmp_path: Path, tools: FakeTools) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    unwritable = Profile(ProfileStore(blocker / "profile.json"), CONFIGURED)

    with pytest.raises(HandlerError, match=r"^record: cannot keep the device profile in .* \(done: message, lock\)$"):
        execute(EnableLostModeHandler(), LOST, linux(tmp_path), tmp_path, unwritable)

    assert acting(tools) == [["wall"], NOTIFY_SEND_LOST, ["loginctl", "lock-sessions"]]


def test_disable_on_linux_announces_it_and_says_so(tmp_path: Path, tools: FakeTools, profile: Profile) -> None:
    execute(EnableLostModeHandler(), LOST, linux(tmp_path), tmp_path, profile)
    tools.add("wall", script=READ_STDIN)

    result = execute(DisableLostModeHandler(), {}, linux(tmp_path), tmp_path, profile)

    assert acting(tools)[0] == ["wall"]
    shown = (tools.directory / "stdin.txt").read_text()
    assert shown == "Lost mode has ended\nThis device is no longer reported lost.\n"
    assert result["steps"] == [{"step": "record", "ok": True}, {"step": "message", "ok": True}]
    assert result["lost_mode"]["enabled"] is False
    assert "message" not in result["lost_mode"]
    assert announced_lost_mode(profile) == result["lost_mode"]


# --- ENABLE_LOST_MODE and DISABLE_LOST_MODE on Android --------------------------------------------------------------


def notification(title: str, message: str) -> list[str]:
    """What `adb shell` gets for a notification: each word quoted for the device's shell."""
    words = ["cmd", "notification", "post", "-S", "bigtext", "-t", title, "tether", message]
    return ["adb", "-s", SERIAL, "shell", *(shlex.quote(word) for word in words)]


def test_enable_on_android_posts_the_message_and_puts_the_screen_to_sleep(
    tmp_path: Path, adb: FakeAdb, profile: Profile
) -> None:
    result = execute(EnableLostModeHandler(), LOST, android(), tmp_path, profile)

    assert adb.calls() == [
        notification("This device has been reported lost", SHOWN),
        ["adb", "-s", SERIAL, "shell", "input", "keyevent", "KEYCODE_SLEEP"],
        ["adb", "-s", SERIAL, "shell", "dumpsys", "power"],
        ["adb", "-s", SERIAL, "shell", "am", "get-current-user"],
        ["adb", "-s", SERIAL, "shell", "dumpsys", "lock_settings"],
    ]
    assert result["lock"] == {"screen_off": True, "locked": True, "credential": "pin"}
    assert adb.calls()[0][-1] == "'Please return me to the front desk; $(reboot)\nCall +49 30 1234567'"
    assert [step["ok"] for step in result["steps"]] == [True, True, True]
    assert announced_lost_mode(profile)["enabled"] is True


def test_disable_on_android_replaces_the_lost_notification(tmp_path: Path, adb: FakeAdb, profile: Profile) -> None:
    result = execute(DisableLostModeHandler(), {}, android(), tmp_path, profile)

    assert adb.calls() == [notification("Lost mode has ended", "This device is no longer reported lost.")]
    assert result["lost_mode"]["enabled"] is False


def test_an_unreachable_android_device_fails_both_device_steps(tmp_path: Path, adb: FakeAdb, profile: Profile) -> None:
    adb.detach(SERIAL)

    with pytest.raises(HandlerError) as raised:
        execute(EnableLostModeHandler(), LOST, android(), tmp_path, profile)

    assert str(raised.value) == (
        f"message: adb exited 1: error: device '{SERIAL}' not found; "
        f"lock: adb exited 1: error: device '{SERIAL}' not found (done: record)"
    )


# --- LOST_MODE_DEVICE_LOCATION ---------------------------------------------------------------------------------------

GPSD_FIX = (
    '{"class":"VERSION","release":"3.22","rev":"3.22","proto_major":3,"proto_minor":14}\n'
    '{"class":"TPV","device":"/dev/ttyACM0","mode":1,"time":"2026-12-06T14:00:01.000Z"}\n'
    '{"class":"TPV","device":"/dev/ttyACM0","mode":3,"time":"2026-12-06T14:00:02.000Z",'
    '"lat":52.520008,"lon":13.404954,"altHAE":74.2,"eph":5.9}\n'
)


def test_location_on_linux_asks_gpsd(tmp_path: Path, tools: FakeTools) -> None:
    tools.add("gpspipe", stdout=GPSD_FIX)

    result = execute(LostModeLocationHandler(), {}, linux(tmp_path), tmp_path)

    assert tools.calls() == [["gpspipe", "-w", "-n", "20", "-x", "30"]]
    expected_age = (utc_now() - datetime(2026, 12, 6, 14, 0, 2, tzinfo=UTC)).total_seconds()
    assert result.pop("age_s") == pytest.approx(expected_age, abs=5)
    assert result == {"latitude": 52.520008, "longitude": 13.404954, "accuracy_m": 5.9, "provider": "gpsd"}


def test_location_on_linux_without_gpsd_fails_with_gpspipes_reason(tmp_path: Path, tools: FakeTools) -> None:
    tools.add("gpspipe", exit_code=1, stderr="gpspipe: could not connect to gpsd localhost:2947, Connection refused\n")

    with pytest.raises(ToolFailed, match=r"^gpspipe exited 1: gpspipe: could not connect to gpsd localhost:2947"):
        execute(LostModeLocationHandler(), {}, linux(tmp_path), tmp_path)


def test_location_on_linux_without_a_fix(tmp_path: Path, tools: FakeTools) -> None:
    tools.add("gpspipe", stdout='{"class":"TPV","device":"/dev/ttyACM0","mode":1}\n')

    with pytest.raises(HandlerError, match=r"^no location fix$"):
        execute(LostModeLocationHandler(), {}, linux(tmp_path), tmp_path)


DUMPSYS = """Location Manager State:
  Location Providers:
    fused provider:
      last location=Location[fused 52.520010,13.404950 hAcc=5.2 et=+2h3m3s900ms alt=74.1 vAcc=3.0]
    gps provider [ON]:
      last location=Location[gps 52.520008,13.404954 hAcc=4.9 et=+2h3m4s567ms alt=74.2 vAcc=3.1]
"""


def test_location_on_android_reads_dumpsys_and_the_uptime(tmp_path: Path, adb: FakeAdb) -> None:
    adb.respond(SERIAL, ["shell", "dumpsys", "location"], stdout=DUMPSYS)
    adb.respond(SERIAL, ["shell", "cat", "/proc/uptime"], stdout="7400.25 14000.50\n")

    result = execute(LostModeLocationHandler(), {}, android(), tmp_path)

    assert adb.calls() == [
        ["adb", "-s", SERIAL, "shell", "dumpsys", "location"],
        ["adb", "-s", SERIAL, "shell", "cat", "/proc/uptime"],
    ]
    assert result == {
        "latitude": 52.520008,
        "longitude": 13.404954,
        "accuracy_m": 4.9,
        "provider": "gps",
        "age_s": 15.7,
    }


def test_location_on_android_without_a_fix(tmp_path: Path, adb: FakeAdb) -> None:
    adb.respond(SERIAL, ["shell", "dumpsys", "location"], stdout="  gps provider:\n    last location=null\n")
    adb.respond(SERIAL, ["shell", "cat", "/proc/uptime"], stdout="100.00 150.00\n")

    with pytest.raises(HandlerError, match=r"^no location fix$"):
        execute(LostModeLocationHandler(), {}, android(), tmp_path)


# --- PLAY_LOST_MODE_SOUND and SET_GEO_FENCE ---------------------------------------------------------------------------


def test_sound_on_linux_beeps_ten_seconds_by_default(tmp_path: Path, tools: FakeTools) -> None:
    tools.add("beep")

    assert execute(LostModeSoundHandler(), {}, linux(tmp_path), tmp_path) == {"duration_s": 10.0}
    assert execute(LostModeSoundHandler(), {"duration_s": 2.5}, linux(tmp_path), tmp_path) == {"duration_s": 2.5}
    assert tools.calls() == [["beep", "-l", "10000"], ["beep", "-l", "2500"]]


def test_a_linux_device_without_a_speaker_fails_the_sound(tmp_path: Path, tools: FakeTools) -> None:
    tools.add("beep", exit_code=1, stderr="Could not open /dev/input/by-path/platform-pcspkr-event-spkr for writing\n")

    with pytest.raises(ToolFailed, match=r"^beep exited 1: Could not open"):
        execute(LostModeSoundHandler(), {}, linux(tmp_path), tmp_path)


@pytest.mark.parametrize(
    ("operation_type", "platform"),
    [
        (OperationType.PLAY_LOST_MODE_SOUND, Platform.ANDROID),
        (OperationType.SET_GEO_FENCE, Platform.ANDROID),
        (OperationType.SET_GEO_FENCE, Platform.LINUX),
    ],
)
def test_what_no_platform_tool_can_do_is_not_offered(
    operation_type: OperationType, platform: Platform, tmp_path: Path
) -> None:
    device = android() if platform is Platform.ANDROID else linux(tmp_path)
    with pytest.raises(UnsupportedOperation, match=rf"^{operation_type} is not supported on {platform}$"):
        handler_for(operation_type, device)


# --- arguments --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation_type", "arguments", "field"),
    [
        (OperationType.ENABLE_LOST_MODE, {}, "arguments.message"),
        (OperationType.ENABLE_LOST_MODE, {"message": ""}, "arguments.message"),
        (OperationType.ENABLE_LOST_MODE, {"message": "m" * 1001}, "arguments.message"),
        (OperationType.ENABLE_LOST_MODE, {"message": "\x1b]2;owned\x07 return me"}, "arguments.message"),
        (OperationType.ENABLE_LOST_MODE, {"message": "line\rover"}, "arguments.message"),
        (OperationType.ENABLE_LOST_MODE, {"message": "m", "phone_number": "-1 555 0100"}, "arguments.phone_number"),
        (OperationType.ENABLE_LOST_MODE, {"message": "m", "phone_number": "555\n0100"}, "arguments.phone_number"),
        (OperationType.ENABLE_LOST_MODE, {"message": "m", "phone_number": "555; reboot"}, "arguments.phone_number"),
        (OperationType.ENABLE_LOST_MODE, {"message": "m", "footnote": "f" * 201}, "arguments.footnote"),
        (OperationType.ENABLE_LOST_MODE, {"message": "m", "footnote": "a\x00b"}, "arguments.footnote"),
        (OperationType.ENABLE_LOST_MODE, {"message": "m", "lock": False}, "arguments.lock"),
        (OperationType.PLAY_LOST_MODE_SOUND, {"duration_s": 0}, "arguments.duration_s"),
        (OperationType.PLAY_LOST_MODE_SOUND, {"duration_s": 61}, "arguments.duration_s"),
        (OperationType.DISABLE_LOST_MODE, {"message": "m"}, "arguments.message"),
        (OperationType.LOST_MODE_DEVICE_LOCATION, {"provider": "gps"}, "arguments.provider"),
    ],
)
def test_bad_arguments_are_refused(operation_type: OperationType, arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(ArgumentsError) as raised:
        validate_arguments(operation_type, arguments)
    assert raised.value.field == field


def test_a_message_may_span_lines_and_a_number_may_be_written_as_people_do() -> None:
    arguments = {"message": "Lost.\nPlease call.", "phone_number": "(030) 123-45.67 / 8", "footnote": "Asset 4711"}

    parsed = validate_arguments(OperationType.ENABLE_LOST_MODE, arguments)

    assert parsed.model_dump() == arguments
