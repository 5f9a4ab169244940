"""The Android platform, its inventory and the adb bridge, against a recording fake adb and a private Mosquitto."""

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from agent import process
from agent.android.bridge import AndroidBridge, AttachedDevice, device_id_for, parse_devices
from agent.android.inventory import android_inventory, parse_battery, parse_getprop
from agent.config import AgentSettings
from agent.errors import InvalidArguments, ToolFailed, ToolNotFound, ToolTimeout, UnsupportedOperation
from agent.handlers import build_registry, capabilities, handler_for
from agent.handlers.base import HandlerContext
from agent.platforms.android import AndroidPlatform
from agent.platforms.contract import Beeper, Notifier, PackageInstall, PackageListing, PackageRemoval
from agent.platforms.linux import LinuxPlatform
from shared.arguments import validate_arguments
from shared.arguments.apps import AppState, SoftwareType
from shared.arguments.system import AudioStream, LocationMode, Rotation
from shared.errors import TopicError
from shared.messages import Command, utc_now
from shared.operations import OperationType
from shared.topics import Topics
from tests.agent.test_runner import until
from tests.fake_adb import PNG, FakeAdb

SERIAL = "0A1B2C3D4E"
Call = Callable[[AndroidPlatform], Awaitable[Any]]


@pytest.fixture(autouse=True)
def short_graces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "KILL_GRACE_S", 0.5)
    monkeypatch.setattr(process, "DRAIN_S", 0.3)


@pytest.fixture
def adb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeAdb:
    fake = FakeAdb.on_path(tmp_path / "bin", monkeypatch)
    fake.attach(SERIAL)
    return fake


@pytest.fixture
def android(adb: FakeAdb) -> AndroidPlatform:
    return AndroidPlatform(serial=SERIAL, tool_timeout=5)


def on_device(*argvs: list[str]) -> list[list[str]]:
    return [["adb", "-s", SERIAL, *argv] for argv in argvs]


# --- the platform: every method's exact adb commands ---------------------------------------------------------------

SETTINGS = ["shell", "settings", "put", "system"]
SDK = ["shell", "getprop", "ro.build.version.sdk"]


def put(key: str, value: str) -> list[list[str]]:
    """`settings put system KEY VALUE` and the `settings get` that reads it back."""
    return [[*SETTINGS, key, value], ["shell", "settings", "get", "system", key]]


QUOTED_TITLE_AND_MESSAGE = ["'Hello; reboot'", "tether", "'it'\"'\"'s $(id)'"]
"""What `adb shell` hands the device's sh: one word each, never a second command or a substitution."""

EXACT: list[tuple[str, Call, list[list[str]]]] = [
    ("reboot", lambda p: p.reboot(), [["reboot"]]),
    ("shut_down", lambda p: p.shut_down(), [["shell", "reboot", "-p"]]),
    ("wifi_on", lambda p: p.set_wifi(True), [["shell", "svc", "wifi", "enable"]]),
    ("wifi_off", lambda p: p.set_wifi(False), [["shell", "svc", "wifi", "disable"]]),
    ("bluetooth_on", lambda p: p.set_bluetooth(True), [SDK, ["shell", "cmd", "bluetooth_manager", "enable"]]),
    ("bluetooth_off", lambda p: p.set_bluetooth(False), [SDK, ["shell", "cmd", "bluetooth_manager", "disable"]]),
    (
        "brightness",
        lambda p: p.set_brightness(50),
        [*put("screen_brightness_mode", "0"), *put("screen_brightness", "128")],
    ),
    ("screen_off", lambda p: p.set_screen_off_timeout(30), put("screen_off_timeout", "30000")),
    ("screen_never_off", lambda p: p.set_screen_off_timeout(0), put("screen_off_timeout", "2147483647")),
    ("rotation_auto", lambda p: p.set_rotation(Rotation.AUTO), put("accelerometer_rotation", "1")),
    (
        "rotation_landscape",
        lambda p: p.set_rotation(Rotation.REVERSE_LANDSCAPE),
        [*put("accelerometer_rotation", "0"), *put("user_rotation", "3")],
    ),
    (
        "volume",
        lambda p: p.set_stream_volume(AudioStream.ALARM, 60),
        [
            ["shell", "cmd", "media_session", "volume", "--stream", "4", "--get"],
            ["shell", "cmd", "media_session", "volume", "--stream", "4", "--set", "9"],
        ],
    ),
    ("timezone", lambda p: p.set_time_zone("Asia/Tokyo"), [["shell", "cmd", "alarm", "set-timezone", "Asia/Tokyo"]]),
    (
        "location_on",
        lambda p: p.set_location_mode(LocationMode.ON),
        [["shell", "cmd", "location", "set-location-enabled", "true"]],
    ),
    (
        "location_off",
        lambda p: p.set_location_mode(LocationMode.OFF),
        [["shell", "cmd", "location", "set-location-enabled", "false"]],
    ),
    (
        "notify_quoted_for_the_device_shell",
        lambda p: p.notify("Hello; reboot", "it's $(id)"),
        [["shell", "cmd", "notification", "post", "-S", "bigtext", "-t", *QUOTED_TITLE_AND_MESSAGE]],
    ),
    ("install_file", lambda p: p.install_app_file(Path("/tmp/app.apk")), [["install", "-r", "/tmp/app.apk"]]),
    ("uninstall", lambda p: p.remove_packages(["com.android.chrome"]), [["uninstall", "com.android.chrome"]]),
    (
        "uninstall_apk",
        lambda p: p.remove_packages(["com.android.chrome"], SoftwareType.APK),
        [["uninstall", "com.android.chrome"]],
    ),
    ("clear", lambda p: p.clear_app_data("com.example"), [["shell", "pm", "clear", "com.example"]]),
    (
        "grant",
        lambda p: p.set_app_permission("com.example", "android.permission.CAMERA", True),
        [["shell", "pm", "grant", "com.example", "android.permission.CAMERA"]],
    ),
    (
        "revoke",
        lambda p: p.set_app_permission("com.example", "android.permission.CAMERA", False),
        [["shell", "pm", "revoke", "com.example", "android.permission.CAMERA"]],
    ),
    (
        "enable",
        lambda p: p.set_app_state("com.example", AppState.ENABLED),
        [["shell", "pm", "enable", "com.example"], ["shell", "pm", "unsuspend", "com.example"]],
    ),
    (
        "disable",
        lambda p: p.set_app_state("com.example", AppState.DISABLED),
        [["shell", "pm", "disable-user", "com.example"]],
    ),
    (
        "suspend",
        lambda p: p.set_app_state("com.example", AppState.SUSPENDED),
        [["shell", "pm", "suspend", "com.example"]],
    ),
    ("list", lambda p: p.list_packages(), [["shell", "pm", "list", "packages", "--show-versioncode"]]),
    ("boot_id", lambda p: p.boot_id(), [["shell", "cat", "/proc/sys/kernel/random/boot_id"]]),
]


@pytest.mark.parametrize(("call", "expected"), [case[1:] for case in EXACT], ids=[case[0] for case in EXACT])
def test_each_method_runs_exactly_these_adb_commands(
    android: AndroidPlatform, adb: FakeAdb, call: Call, expected: list[list[str]]
) -> None:
    asyncio.run(call(android))
    assert adb.calls() == on_device(*expected)


def test_removing_another_software_type_than_apk_is_refused(android: AndroidPlatform, adb: FakeAdb) -> None:
    with pytest.raises(UnsupportedOperation) as caught:
        asyncio.run(android.remove_packages(["htop"], SoftwareType.APT))

    assert str(caught.value) == "software type 'apt' is not supported on android, only apk"
    assert adb.calls() == []


def test_boot_id_and_package_list_are_parsed(android: AndroidPlatform, adb: FakeAdb) -> None:
    adb.attach(SERIAL, packages={"com.b": "2", "com.a": "10"}, boot_id="b00t")
    assert asyncio.run(android.boot_id()) == "b00t"
    assert asyncio.run(android.list_packages()) == [
        {"name": "com.a", "version": "10"},
        {"name": "com.b", "version": "2"},
    ]


def test_screenshot_streams_the_png_to_the_file(android: AndroidPlatform, adb: FakeAdb, tmp_path: Path) -> None:
    destination = tmp_path / "screen.png"
    asyncio.run(android.capture_screenshot(destination))
    assert destination.read_bytes() == PNG
    assert adb.calls() == on_device(["exec-out", "screencap", "-p"])


def test_screenshot_that_is_no_png_fails(android: AndroidPlatform, adb: FakeAdb, tmp_path: Path) -> None:
    adb.respond(SERIAL, ["exec-out"], stdout="")
    with pytest.raises(ToolFailed, match="did not produce a PNG"):
        asyncio.run(android.capture_screenshot(tmp_path / "screen.png"))


def test_logs_start_since_minutes_ago_and_keep_the_last_lines(
    android: AndroidPlatform, adb: FakeAdb, tmp_path: Path
) -> None:
    adb.attach(SERIAL, log_lines=50)
    destination = tmp_path / "logs.txt"
    before = time.time()
    asyncio.run(android.collect_logs(destination, since_minutes=10, max_lines=3))
    lines = destination.read_text().splitlines()
    assert [line.rsplit(" ", 1)[1] for line in lines] == ["47", "48", "49"]
    [argv] = adb.calls()
    assert argv[:-1] == on_device(["logcat", "-d", "-v", "threadtime", "-t"])[0]
    assert before - 600 - 1 < float(argv[-1]) < time.time() - 600 + 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bin", "logs.txt"]


def test_bugreport_is_written_as_zip_and_renamed(android: AndroidPlatform, adb: FakeAdb, tmp_path: Path) -> None:
    destination = tmp_path / "bugreport"
    asyncio.run(android.bugreport(destination))
    assert destination.read_bytes().startswith(b"PK\x03\x04")
    assert adb.calls() == on_device(["bugreport", f"{destination}.zip"])


def test_script_runs_in_the_device_shell_and_keeps_exit_and_output(
    android: AndroidPlatform, adb: FakeAdb, tmp_path: Path
) -> None:
    script = "echo out; echo err >&2; exit 3"
    outcome = asyncio.run(
        android.run_script(script, interpreter="/bin/sh", timeout=5, work_dir=tmp_path, output_limit=100)
    )
    assert (outcome.returncode, outcome.stdout_tail, outcome.stderr_tail) == (3, "out\n", "err\n")
    assert adb.calls() == on_device(["shell", "/system/bin/sh"])


def test_script_with_another_interpreter_is_refused(android: AndroidPlatform, adb: FakeAdb, tmp_path: Path) -> None:
    with pytest.raises(InvalidArguments, match="/usr/bin/python3 is not available on Android"):
        asyncio.run(
            android.run_script("print(1)", interpreter="/usr/bin/python3", timeout=5, work_dir=tmp_path, output_limit=9)
        )
    assert adb.calls() == []


# --- the platform: failures -----------------------------------------------------------------------------------------


def test_missing_adb_is_named(adb: FakeAdb) -> None:
    with pytest.raises(ToolNotFound, match="adb-not-installed not found on PATH"):
        asyncio.run(AndroidPlatform(serial=SERIAL, adb="adb-not-installed").reboot())


def test_non_zero_exit_fails_with_the_device_error(android: AndroidPlatform, adb: FakeAdb) -> None:
    adb.respond(SERIAL, ["shell", "svc", "wifi"], exit=255, stderr="cmd: Failure calling service wifi\n")
    with pytest.raises(ToolFailed, match="exited 255: cmd: Failure calling service wifi") as failure:
        asyncio.run(android.set_wifi(True))
    assert failure.value.result is not None
    assert failure.value.result["exit_code"] == 255


@pytest.mark.parametrize(
    ("call", "match", "output"),
    [
        (lambda p: p.clear_app_data("com.gone"), ["shell", "pm", "clear"], "Failed\nError: package com.gone not found"),
        (lambda p: p.install_app_file(Path("a.apk")), ["install"], "Failure [INSTALL_FAILED_OLDER_SDK]"),
    ],
    ids=["pm", "old-adb-install"],
)
def test_an_error_printed_with_exit_zero_still_fails(
    android: AndroidPlatform, adb: FakeAdb, call: Call, match: list[str], output: str
) -> None:
    adb.respond(SERIAL, match, stdout=output + "\n")
    with pytest.raises(ToolFailed, match=output.splitlines()[-1].replace("[", r"\[")):
        asyncio.run(call(android))


def test_a_download_not_named_apk_is_installed_under_an_apk_name(
    android: AndroidPlatform, adb: FakeAdb, tmp_path: Path
) -> None:
    download = tmp_path / "download"
    download.write_bytes(b"PK\x03\x04apk")
    asyncio.run(android.install_app_file(download))
    assert adb.calls() == on_device(["install", "-r", f"{download}.apk"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bin", "download"]


def test_uninstalling_an_absent_app_fails_and_stops(android: AndroidPlatform, adb: FakeAdb) -> None:
    with pytest.raises(ToolFailed, match="DELETE_FAILED_INTERNAL_ERROR"):
        asyncio.run(android.remove_packages(["com.absent", "com.android.chrome"]))
    assert adb.packages(SERIAL) == {"com.android.chrome": "631208033"}


def test_unknown_volume_range_fails_before_setting(android: AndroidPlatform, adb: FakeAdb) -> None:
    adb.respond(SERIAL, ["shell", "cmd", "media_session"], stdout="No such command\n")
    with pytest.raises(ToolFailed, match="did not report the range"):
        asyncio.run(android.set_stream_volume(AudioStream.MUSIC, 10))
    assert len(adb.calls()) == 1


def test_timeout_kills_adb(adb: FakeAdb) -> None:
    adb.respond(SERIAL, ["shell", "input"], sleep=10)
    started = time.monotonic()
    with pytest.raises(ToolTimeout, match=r"timed out after 0\.5s"):
        asyncio.run(AndroidPlatform(serial=SERIAL, tool_timeout=0.5).lock_sessions())
    assert time.monotonic() - started < 5


def test_detached_device_fails_with_adbs_reason(android: AndroidPlatform, adb: FakeAdb) -> None:
    adb.detach(SERIAL)
    with pytest.raises(ToolFailed, match=f"error: device '{SERIAL}' not found"):
        asyncio.run(android.reboot())


def test_bluetooth_before_android_13_fails_with_the_api_level(android: AndroidPlatform, adb: FakeAdb) -> None:
    adb.attach(SERIAL, props={"ro.build.version.sdk": "32"})
    with pytest.raises(UnsupportedOperation) as caught:
        asyncio.run(android.set_bluetooth(True))
    assert str(caught.value) == f"cmd bluetooth_manager needs Android 13 (API 33) or later; {SERIAL} runs API 32"
    assert adb.calls() == on_device(SDK)


def test_wifi_error_printed_with_exit_zero_fails(android: AndroidPlatform, adb: FakeAdb) -> None:
    adb.respond(SERIAL, ["shell", "svc", "wifi"], stdout="Error: wifi service not available\n")
    with pytest.raises(ToolFailed, match="svc wifi on 0A1B2C3D4E failed: Error: wifi service not available"):
        asyncio.run(android.set_wifi(False))


def test_a_setting_that_does_not_read_back_fails(android: AndroidPlatform, adb: FakeAdb) -> None:
    adb.respond(SERIAL, ["shell", "settings", "get", "system", "screen_brightness"], stdout="77\n")
    with pytest.raises(ToolFailed, match=f"^settings put system screen_brightness 255 on {SERIAL} left it '77'$"):
        asyncio.run(android.set_brightness(100))
    assert adb.device(SERIAL)["settings"] == {"system/screen_brightness_mode": "0", "system/screen_brightness": "255"}


def test_notify_ignores_its_echoed_message_but_fails_on_an_error_on_stderr(
    android: AndroidPlatform, adb: FakeAdb
) -> None:
    adb.respond(SERIAL, ["shell", "cmd", "notification"], stdout="posted: Error: Exception in the message\n")
    asyncio.run(android.notify("Hi", "Error: Exception in the message"))
    adb.attach(SERIAL)
    adb.respond(SERIAL, ["shell", "cmd", "notification"], stderr="java.lang.SecurityException: not allowed\n")
    with pytest.raises(ToolFailed, match=r"cmd notification on 0A1B2C3D4E failed: java\.lang\.SecurityException"):
        asyncio.run(android.notify("Hi", "there"))


def test_hidden_is_refused_before_anything_runs(android: AndroidPlatform, adb: FakeAdb) -> None:
    with pytest.raises(UnsupportedOperation) as caught:
        asyncio.run(android.set_app_state("com.example", AppState.HIDDEN))
    assert str(caught.value) == (
        "state 'hidden' is not supported on android: pm hide needs root or a device-owner app"
        " ('disabled' takes an app off the launcher)"
    )
    assert adb.calls() == []


def test_an_app_state_pm_does_not_print_back_fails(android: AndroidPlatform, adb: FakeAdb) -> None:
    adb.respond(SERIAL, ["shell", "pm", "unsuspend"], stdout="Package com.example new suspended state: true\n")
    with pytest.raises(ToolFailed) as caught:
        asyncio.run(android.set_app_state("com.example", AppState.ENABLED))
    assert str(caught.value) == (
        f"pm unsuspend com.example on {SERIAL} printed 'Package com.example new suspended state: true',"
        " not 'new suspended state: false'"
    )


NOTIFICATIONS = "android.permission.POST_NOTIFICATIONS"


@pytest.mark.parametrize("enabled", [True, False])
def test_app_notifications_are_the_post_notifications_grant_read_back(
    android: AndroidPlatform, adb: FakeAdb, enabled: bool
) -> None:
    asyncio.run(android.set_app_notifications("com.example", enabled))
    verb = "grant" if enabled else "revoke"
    assert adb.calls() == on_device(
        SDK, ["shell", "pm", verb, "com.example", NOTIFICATIONS], ["shell", "dumpsys", "package", "com.example"]
    )


def test_app_notifications_that_do_not_read_back_fail(android: AndroidPlatform, adb: FakeAdb) -> None:
    adb.respond(SERIAL, ["shell", "pm", "grant"])  # the grant does nothing on this device
    with pytest.raises(ToolFailed, match=f"^pm grant com.example on {SERIAL} left it granted=false$"):
        asyncio.run(android.set_app_notifications("com.example", True))


def test_app_notifications_before_android_13_fail_with_the_api_level(android: AndroidPlatform, adb: FakeAdb) -> None:
    adb.attach(SERIAL, props={"ro.build.version.sdk": "31"})
    with pytest.raises(UnsupportedOperation, match=f"needs Android 13 \\(API 33\\) or later; {SERIAL} runs API 31"):
        asyncio.run(android.set_app_notifications("com.example", False))
    assert adb.calls() == on_device(SDK)


# --- capabilities and the Android-only handlers ----------------------------------------------------------------------


def test_capabilities_follow_the_protocols_android_implements(android: AndroidPlatform) -> None:
    advertised = set(capabilities(android, build_registry()))
    android_only = {
        OperationType.CLEAR_APP_DATA,
        OperationType.SET_APP_PERMISSION,
        OperationType.SET_APP_STATE,
        OperationType.SET_APP_NOTIFICATIONS,
        OperationType.SET_ROTATION_STATE,
        OperationType.SET_GPS_STATE,
        OperationType.SET_LOCATION_SERVICE,
        OperationType.SET_MULTI_APP_MODE,
        OperationType.ADD_TO_WHITELIST,
        OperationType.REMOVE_FROM_WHITELIST,
        OperationType.CLEAR_PASSCODE,
        OperationType.RESET_LOCKSCREEN_PASSWORD,
    }
    assert OperationType.SET_KIOSK_APP in advertised
    assert android_only | {OperationType.REBOOT, OperationType.LOCK, OperationType.RUN_SHELL_SCRIPT} <= advertised
    assert OperationType.BEEP_DEVICE not in advertised
    assert not android_only & set(capabilities(LinuxPlatform(), build_registry()))
    assert isinstance(android, Notifier | PackageRemoval | PackageListing)
    assert not isinstance(android, Beeper | PackageInstall)


@pytest.mark.parametrize(
    ("operation_type", "arguments", "expected", "result"),
    [
        (
            OperationType.SET_APP_STATE,
            {"package": "com.example", "state": "disabled"},
            [["shell", "pm", "disable-user", "com.example"]],
            {"package": "com.example", "state": "disabled"},
        ),
        (
            OperationType.SET_APP_NOTIFICATIONS,
            {"package": "com.example", "enabled": "off"},
            [
                SDK,
                ["shell", "pm", "revoke", "com.example", NOTIFICATIONS],
                ["shell", "dumpsys", "package", "com.example"],
            ],
            {"package": "com.example", "enabled": False},
        ),
        (
            OperationType.SET_GPS_STATE,
            {"gps_state": "off"},
            [["shell", "cmd", "location", "set-location-enabled", "false"]],
            {"location": "off"},
        ),
        (
            OperationType.SET_LOCATION_SERVICE,
            {"mode": "on"},
            [["shell", "cmd", "location", "set-location-enabled", "true"]],
            {"location": "on"},
        ),
        (
            OperationType.SET_ROTATION_STATE,
            {"rotation": "portrait"},
            [*put("accelerometer_rotation", "0"), *put("user_rotation", "0")],
            {"rotation": "portrait"},
        ),
    ],
)
def test_android_handlers(
    android: AndroidPlatform,
    adb: FakeAdb,
    tmp_path: Path,
    operation_type: OperationType,
    arguments: dict[str, Any],
    expected: list[list[str]],
    result: dict[str, Any],
) -> None:
    command = Command(
        command_id="c1", operation_id="op", device_id="d", operation_type=operation_type, issued_at=utc_now()
    )
    handler = handler_for(operation_type, android, build_registry())
    parsed = validate_arguments(operation_type, arguments)
    assert asyncio.run(handler.run(parsed, HandlerContext(command, android, tmp_path))) == result
    assert adb.calls() == on_device(*expected)


# --- inventory ------------------------------------------------------------------------------------------------------


def test_inventory_from_one_getprop_and_one_dumpsys(android: AndroidPlatform, adb: FakeAdb) -> None:
    inventory, zone = asyncio.run(android_inventory(android))
    assert zone == "Europe/Berlin"
    assert inventory == {
        "serial": SERIAL,
        "adb_serial": SERIAL,
        "manufacturer": "Google",
        "model": "Pixel 7",
        "os": {"name": "Android", "version": "14", "sdk": 34},
        "battery": {"level": 85, "status": "charging", "plugged": ["usb"]},
    }
    assert adb.calls() == on_device(["shell", "getprop"], ["shell", "dumpsys", "battery"])


@pytest.mark.parametrize("zone", ["Mars/Olympus", "America"])  # "America" is a directory of the zone database
def test_unknown_time_zone_and_missing_battery_are_left_out(android: AndroidPlatform, adb: FakeAdb, zone: str) -> None:
    adb.attach(SERIAL, props={"persist.sys.timezone": zone})
    adb.respond(SERIAL, ["shell", "dumpsys"], exit=1, stderr="Can't find service: battery")
    inventory, zone = asyncio.run(android_inventory(android))
    assert zone is None
    assert "battery" not in inventory


def test_getprop_and_battery_parsing() -> None:
    props = parse_getprop("[ro.a]: [x y]\n[ro.empty]: []\nnoise\n[ro.b]: [[nested]]\n")
    assert props == {"ro.a": "x y", "ro.empty": "", "ro.b": "[nested]"}
    battery = parse_battery("  AC powered: true\n  Wireless powered: true\n  status: 5\n  level: 40\n  scale: 50\n")
    assert battery == {"level": 80, "status": "full", "plugged": ["ac", "wireless"]}


# --- the bridge: parsing ----------------------------------------------------------------------------------------------


def test_adb_devices_lines_are_parsed() -> None:
    text = (
        "* daemon not running; starting now at tcp:5037\n* daemon started successfully\n"
        "List of devices attached\n"
        "0A1B2C3D4E             device usb:1-1 product:panther model:Pixel_7 device:panther transport_id:3\n"
        "192.168.1.5:5555       unauthorized transport_id:4\n"
        "emulator-5554\toffline\n"
        "XYZ                    no permissions (user in plugdev group); see [http://developer.android.com/x]\n\n"
    )
    assert parse_devices(text) == [
        AttachedDevice(
            "0A1B2C3D4E",
            "device",
            {"usb": "1-1", "product": "panther", "model": "Pixel_7", "device": "panther", "transport_id": "3"},
        ),
        AttachedDevice("192.168.1.5:5555", "unauthorized"),
        AttachedDevice("emulator-5554", "offline"),
        AttachedDevice("XYZ", "no permissions"),
    ]


@pytest.mark.parametrize(
    ("serial", "prefix", "device_id"),
    [
        ("0A1B2C3D4E", "android-", "android-0A1B2C3D4E"),
        ("192.168.1.5:5555", "android-", "android-192.168.1.5:5555"),
        ("adb-R5CT/x #1", "a.", "a.adb-R5CT_x__1"),
        ("emulator-5554", "", "emulator-5554"),
    ],
)
def test_device_ids_are_sanitised_serials(serial: str, prefix: str, device_id: str) -> None:
    assert device_id_for(serial, prefix) == device_id


def test_a_serial_that_cannot_become_an_id_is_refused() -> None:
    with pytest.raises(TopicError):
        device_id_for("_weird", "")


# --- the bridge: against a real broker --------------------------------------------------------------------------------


class Observer:
    """A paho client recording every announce, presence and status message, in order, per topic."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("mqtt://").rsplit(":", 1)
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"observer-{time.monotonic_ns()}")
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.connect(host, int(port))
        self._client.subscribe([(f"tether/v1/devices/+/{kind}", 1) for kind in ("announce", "presence")])
        self._client.subscribe("tether/v1/devices/+/status/+", 1)
        self._client.loop_start()
        assert self._subscribed.wait(10)

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.payload:
            with self._lock:
                self.messages.append((message.topic, json.loads(message.payload)))

    def of(self, device_id: str, kind: str) -> list[dict[str, Any]]:
        prefix = f"tether/v1/devices/{device_id}/{kind}"
        with self._lock:
            return [payload for topic, payload in self.messages if topic.startswith(prefix)]

    def presence(self, device_id: str) -> list[str]:
        return [payload["state"] for payload in self.of(device_id, "presence")]

    def publish_command(self, command: Command) -> None:
        topic = Topics().command(command.device_id, command.command_id)
        self._client.publish(topic, command.model_dump_json(exclude_none=True), qos=1, retain=True).wait_for_publish(5)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@pytest.fixture
def observer(mosquitto_url: str) -> Iterator[Observer]:
    watching = Observer(mosquitto_url)
    yield watching
    watching.close()


def bridge_settings(url: str, tmp_path: Path) -> AgentSettings:
    return AgentSettings(
        broker=url,
        device_id="bridge-host",
        state_dir=tmp_path / "state",
        host=False,
        android=True,
        android_poll_interval_s=0.2,
        tool_timeout_s=5,
    )


async def with_bridge(
    settings: AgentSettings, scenario: Callable[[], Awaitable[None]], reboot_grace_s: float = 1.0
) -> None:
    bridge = asyncio.create_task(AndroidBridge(settings, build_registry(reboot_grace_s=reboot_grace_s)).run())
    try:
        await scenario()
    finally:
        bridge.cancel()
        with pytest.raises(asyncio.CancelledError):
            await bridge


def test_attached_devices_come_and_go_with_their_presence(
    mosquitto_url: str, observer: Observer, adb: FakeAdb, tmp_path: Path
) -> None:
    adb.attach("192.168.1.5:5555", props={"ro.product.model": "Tab"})
    adb.attach("UNAUTH1", state="unauthorized")
    first, second = "android-" + SERIAL, "android-192.168.1.5:5555"

    async def scenario() -> None:
        await until(lambda: observer.presence(first) == observer.presence(second) == ["online"])
        await until(lambda: bool(observer.of(first, "announce") and observer.of(second, "announce")))
        announcement = observer.of(second, "announce")[-1]
        assert (announcement["platform"], announcement["inventory"]["model"]) == ("android", "Tab")
        assert announcement["time_zone"] == "Europe/Berlin"
        assert {"CLEAR_APP_DATA", "SET_ROTATION_STATE", "REBOOT"} <= set(announcement["capabilities"])
        assert "BEEP_DEVICE" not in announcement["capabilities"]
        adb.detach(SERIAL)
        await until(lambda: observer.presence(first) == ["online", "offline"])
        adb.attach(SERIAL)
        await until(lambda: observer.presence(first) == ["online", "offline", "online"])
        assert observer.presence(second) == ["online"]
        assert observer.of("android-UNAUTH1", "presence") == []

    asyncio.run(with_bridge(bridge_settings(mosquitto_url, tmp_path), scenario))
    assert (tmp_path / "state" / "android" / first / "journal.db").exists()
    assert adb.calls("UNAUTH1") == []
    assert observer.presence(first)[-1] == observer.presence(second)[-1] == "offline"


def command(device_id: str, command_id: str, operation_type: OperationType, **arguments: Any) -> Command:
    return Command(
        command_id=command_id,
        operation_id="op",
        device_id=device_id,
        operation_type=operation_type,
        arguments=arguments,
        issued_at=utc_now(),
    )


def statuses(observer: Observer, device_id: str, command_id: str) -> list[str]:
    return [s["status"] for s in observer.of(device_id, "status") if s["command_id"] == command_id]


def test_a_reboot_is_decided_by_the_boot_id_when_the_device_comes_back(
    mosquitto_url: str, observer: Observer, adb: FakeAdb, tmp_path: Path
) -> None:
    device_id = "android-" + SERIAL

    async def scenario() -> None:
        await until(lambda: observer.presence(device_id) == ["online"])
        observer.publish_command(command(device_id, "r1", OperationType.REBOOT))
        await until(lambda: on_device(["reboot"])[0] in adb.calls(SERIAL))
        await until(lambda: statuses(observer, device_id, "r1") == ["PENDING", "EXECUTING"])
        adb.detach(SERIAL)  # what `adb reboot` does to the device list
        await until(lambda: observer.presence(device_id) == ["online", "offline"])
        adb.attach(SERIAL, boot_id="boot-2")
        await until(lambda: statuses(observer, device_id, "r1")[-1:] == ["SUCCESSFUL"])

    asyncio.run(with_bridge(bridge_settings(mosquitto_url, tmp_path), scenario, reboot_grace_s=60))
    assert [argv for argv in adb.calls(SERIAL) if argv[3:] == ["reboot"]] == on_device(["reboot"])
    final = observer.of(device_id, "status")[-1]
    assert final["result"] == {"previous_boot_id": "boot-1", "boot_id": "boot-2"}


def test_commands_run_on_their_device_only_and_devices_run_concurrently(
    mosquitto_url: str, observer: Observer, adb: FakeAdb, tmp_path: Path
) -> None:
    other = "SLOW0001"
    adb.attach(other)
    adb.respond(other, ["shell", "svc", "wifi"], sleep=1.5)

    fast, slow = "android-" + SERIAL, "android-" + other

    async def scenario() -> None:
        await until(lambda: observer.presence(fast) == observer.presence(slow) == ["online"])
        observer.publish_command(command(slow, "s1", OperationType.SET_WIFI_STATE, wifi_state=True))
        observer.publish_command(command(fast, "f1", OperationType.SET_ROTATION_STATE, rotation="landscape"))
        observer.publish_command(command(fast, "f2", OperationType.CLEAR_APP_DATA, package="com.example"))
        await until(lambda: statuses(observer, fast, "f2")[-1:] == ["SUCCESSFUL"])
        assert statuses(observer, slow, "s1")[-1] != "SUCCESSFUL"  # still sleeping: the fast device did not wait for it
        await until(lambda: statuses(observer, slow, "s1")[-1:] == ["SUCCESSFUL"])

    asyncio.run(with_bridge(bridge_settings(mosquitto_url, tmp_path), scenario))
    assert statuses(observer, fast, "f1") == ["PENDING", "EXECUTING", "SUCCESSFUL"]
    commands = [argv[3:] for argv in adb.calls(SERIAL) if argv[3:4] == ["shell"] and "boot_id" not in argv[-1]]
    assert commands[-5:] == [
        *put("accelerometer_rotation", "0"),
        *put("user_rotation", "1"),
        ["shell", "pm", "clear", "com.example"],
    ]
    assert [argv for argv in adb.calls(other) if "svc" in argv] == [
        ["adb", "-s", other, "shell", "svc", "wifi", "enable"]
    ]
    assert not [argv for argv in adb.calls(other) if "pm" in argv or "settings" in argv]


def test_the_hosts_login_for_android_devices_is_named_at_start_as_one_an_acl_refuses(
    mosquitto_url: str, observer: Observer, adb: FakeAdb, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without android_logins, devices use the host's login: fine on an anonymous broker, refused under an ACL."""
    settings = bridge_settings(mosquitto_url.replace("://", "://bridge-host@"), tmp_path)

    async def scenario() -> None:
        await until(lambda: observer.presence("android-" + SERIAL) == ["online"])

    with caplog.at_level(logging.WARNING, logger="agent.android.bridge"):
        asyncio.run(with_bridge(settings, scenario))
    assert [record.getMessage() for record in caplog.records if record.name == "agent.android.bridge"] == [
        "Android devices connect with the host's broker login bridge-host, which a broker with per-device logins "
        "(`tether broker acl`) refuses for them: give each device its own in an android_logins file"
    ]


def test_a_nudge_announces_what_the_device_reports_now_and_its_presence(
    mosquitto_url: str, observer: Observer, adb: FakeAdb, tmp_path: Path
) -> None:
    device_id = "android-" + SERIAL

    async def scenario() -> None:
        await until(lambda: observer.presence(device_id) == ["online"])
        await until(lambda: len(observer.of(device_id, "announce")) == 1)
        assert observer.of(device_id, "announce")[0]["time_zone"] == "Europe/Berlin"
        # Since it was attached: moved to Tokyo, and unplugged.
        adb.respond(
            SERIAL, ["shell", "getprop"], stdout="[persist.sys.timezone]: [Asia/Tokyo]\n[ro.product.model]: [Tab]\n"
        )
        adb.respond(SERIAL, ["shell", "dumpsys", "battery"], stdout="  level: 40\n  status: 3\n")
        adb.clear_calls()
        observer.publish_command(command(device_id, "n1", OperationType.NUDGE_DEVICE))
        await until(lambda: statuses(observer, device_id, "n1")[-1:] == ["SUCCESSFUL"])

    asyncio.run(with_bridge(bridge_settings(mosquitto_url, tmp_path), scenario))
    announcement = observer.of(device_id, "announce")[-1]
    assert announcement["time_zone"] == "Asia/Tokyo"
    assert announcement["inventory"]["model"] == "Tab"
    assert announcement["inventory"]["battery"] == {"level": 40, "status": "discharging", "plugged": []}
    final = observer.of(device_id, "status")[-1]
    assert final["result"] == {
        "announced": True,
        "presence": "online",
        "inventory": ["adb_serial", "battery", "manufacturer", "model", "os", "serial"],
        "time_zone": "Asia/Tokyo",
    }
    assert observer.presence(device_id) == ["online", "online", "offline"]
    commands = [argv[3:] for argv in adb.calls(SERIAL) if "boot_id" not in argv[-1]]
    assert commands == [["shell", "getprop"], ["shell", "dumpsys", "battery"]]
