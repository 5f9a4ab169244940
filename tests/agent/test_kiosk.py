"""Kiosk mode and the app allowlist: the cage unit on Linux, the home activity and app suspension on Android."""

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from agent import process
from agent.errors import HandlerError, InvalidArguments, ToolFailed, ToolNotFound
from agent.handlers import REGISTRY, capabilities, handler_for
from agent.handlers.base import HandlerContext
from agent.platforms.android import AndroidPlatform
from agent.platforms.linux import LinuxPlatform
from shared.arguments import ArgumentsError, validate_arguments
from shared.operations import OperationType
from tests.agent.contexts import context_for as shared_context
from tests.fake_adb import FakeAdb
from tests.fakes import FakeTools

SERIAL = "0A1B2C3D4E"
UNIT = "tether-kiosk.service"
PASSWD = "kiosk:x:1001:1001:Kiosk:/home/kiosk:/bin/sh\n"
IS_ACTIVE = 'case "$1" in is-active) echo "${KIOSK_STATE:-active}"; [ "${KIOSK_STATE:-active}" = active ] ;; esac'
HOME = ["shell", "cmd", "package", "resolve-activity", "--components"]
HOME_QUERY = [*HOME, "-a", "android.intent.action.MAIN", "-c", "android.intent.category.HOME"]
LAUNCHABLE = ["shell", "cmd", "package", "query-activities", "--components"]
LAUNCHABLE_QUERY = [*LAUNCHABLE, "-a", "android.intent.action.MAIN", "-c", "android.intent.category.LAUNCHER"]
KIOSK = "com.example.kiosk/.MainActivity"
KIOSK_FULL = "com.example.kiosk/com.example.kiosk.MainActivity"
LAUNCHER = "com.android.launcher3/com.android.launcher3.Launcher"


@pytest.fixture(autouse=True)
def short_graces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "KILL_GRACE_S", 0.5)
    monkeypatch.setattr(process, "DRAIN_S", 0.3)


def context_for(platform: Any, state_dir: Path, operation_type: OperationType) -> HandlerContext:
    work_dir = state_dir / "work" / "cmd-1"
    work_dir.mkdir(parents=True, exist_ok=True)
    return shared_context(platform, work_dir, operation_type)


def execute(platform: Any, state_dir: Path, operation_type: OperationType, arguments: dict[str, Any]) -> Any:
    """Validate as the runner does, then run the registry's handler."""
    try:
        parsed = validate_arguments(operation_type, arguments)
    except ArgumentsError as err:
        raise InvalidArguments(str(err)) from err
    handler = handler_for(operation_type, platform)
    return asyncio.run(handler.run(parsed, context_for(platform, state_dir, operation_type)))


# --- arguments -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        {"app": ["chromium"], "user": "root"},
        {"app": ["chromium", "--url=https://a\nExecStartPre=/bin/rm -rf /"]},
        {"app": ["chromium\n"]},
        {"app": ["-chromium"]},
        {"app": ["bin/chromium"]},
        {"app": ["/usr/bin/../../tmp/x"]},
        {"app": ["/usr//bin/chromium"]},
        {"app": []},
        {"app": "chromium --kiosk"},
        {"app": ["chromium"], "user": "Kiosk User"},
        {"app": ["chromium"], "user": "-oUser=root"},
        {"app": ["chromium"], "user": "kiosk\nUser=root"},
        {"component": "com.example.kiosk/.Main; reboot"},
        {"component": "-p/.Main"},
        {"component": "kiosk"},
        {},
        {"enabled": True},
        {"enabled": False, "app": ["chromium"]},
        {"enabled": False, "user": "kiosk"},
        {"enabled": False, "component": KIOSK},
        {"app": ["chromium"], "shell": "/bin/sh"},
    ],
)
def test_kiosk_arguments_refuse_what_could_inject_or_mislead(arguments: dict[str, Any]) -> None:
    with pytest.raises(ArgumentsError):
        validate_arguments(OperationType.SET_KIOSK_APP, arguments)


def test_kiosk_arguments_take_an_argv_a_user_and_a_component() -> None:
    parsed = validate_arguments(
        OperationType.SET_KIOSK_APP, {"app": ["/usr/bin/cog", "https://menu.example/"], "component": KIOSK}
    )
    assert parsed.model_dump() == {
        "enabled": True,
        "app": ["/usr/bin/cog", "https://menu.example/"],
        "user": "kiosk",
        "component": KIOSK,
    }
    assert validate_arguments(OperationType.SET_KIOSK_APP, {"enabled": "off"}).model_dump()["enabled"] is False


@pytest.mark.parametrize("package", ["-f", "com", "com.example/.Main", "com.example;reboot", "com..example", "1a.b"])
@pytest.mark.parametrize("operation_type", [OperationType.ADD_TO_WHITELIST, OperationType.REMOVE_FROM_WHITELIST])
def test_allowlist_arguments_take_android_package_names_only(package: str, operation_type: OperationType) -> None:
    with pytest.raises(ArgumentsError):
        validate_arguments(operation_type, {"packages": [package]})
    with pytest.raises(ArgumentsError):
        validate_arguments(operation_type, {"packages": []})


# --- Linux: the cage unit ---------------------------------------------------------------------------------------------


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    fakes = FakeTools.on_path(tmp_path / "bin", monkeypatch)
    fakes.add("cage")
    fakes.add("chromium")
    fakes.add("getent", stdout=PASSWD)
    fakes.add("id", stdout="kiosk video\n")
    fakes.add("systemctl", script=IS_ACTIVE)
    return fakes


@pytest.fixture
def linux(tmp_path: Path) -> LinuxPlatform:
    return LinuxPlatform(tool_timeout=5, etc_dir=tmp_path / "etc")


def unit_path(tmp_path: Path) -> Path:
    return tmp_path / "etc" / "systemd" / "system" / UNIT


def test_linux_offers_the_kiosk_app_but_no_allowlist(linux: LinuxPlatform) -> None:
    advertised = set(capabilities(linux, REGISTRY))
    assert OperationType.SET_KIOSK_APP in advertised
    assert (
        not {
            OperationType.SET_MULTI_APP_MODE,
            OperationType.ADD_TO_WHITELIST,
            OperationType.REMOVE_FROM_WHITELIST,
        }
        & advertised
    )


def test_kiosk_app_writes_the_cage_unit_and_starts_it(tools: FakeTools, linux: LinuxPlatform, tmp_path: Path) -> None:
    arguments = {"app": ["chromium", "--kiosk", 'say "hi"', "100%", "$HOME", "a\\b"], "user": "kiosk"}

    result = execute(linux, tmp_path / "state", OperationType.SET_KIOSK_APP, arguments)

    bin_dir = tmp_path / "bin"
    assert tools.calls() == [
        ["getent", "passwd", "kiosk"],
        ["id", "-nG", "kiosk"],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", UNIT],
        ["systemctl", "restart", UNIT],
        ["systemctl", "is-active", UNIT],
    ]
    unit = unit_path(tmp_path).read_text()
    assert unit.startswith("# Managed by Tether (SET_KIOSK_APP)")
    exec_start = (
        f'ExecStart="{bin_dir}/cage" "--" "{bin_dir}/chromium" "--kiosk" "say \\"hi\\"" "100%%" "$$HOME" "a\\\\b"'
    )
    assert exec_start in unit.splitlines()
    for line in (
        "User=kiosk",
        "PAMName=login",
        "TTYPath=/dev/tty1",
        "Conflicts=getty@tty1.service",
        "Restart=always",
        "WantedBy=multi-user.target",
    ):
        assert line in unit.splitlines()
    assert unit_path(tmp_path).stat().st_mode & 0o777 == 0o644
    assert result == {
        "enabled": True,
        "unit": UNIT,
        "path": str(unit_path(tmp_path)),
        "app": [f"{bin_dir}/chromium", "--kiosk", 'say "hi"', "100%", "$HOME", "a\\b"],
        "user": "kiosk",
        "state": "active",
    }


def test_kiosk_app_without_cage_fails_naming_it(
    tools: FakeTools, linux: LinuxPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bin" / "cage").unlink()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # the host's own cage, if any, is out of sight

    with pytest.raises(ToolNotFound, match=r"^cage \(the Wayland kiosk compositor\) not found on PATH"):
        execute(linux, tmp_path / "state", OperationType.SET_KIOSK_APP, {"app": ["chromium"]})

    assert tools.calls() == []
    assert not unit_path(tmp_path).exists()


@pytest.mark.parametrize(
    ("app", "reason"),
    [
        (["firefox-esr"], "the kiosk app firefox-esr is not found on PATH"),
        (["/nonexistent/kiosk"], "the kiosk app /nonexistent/kiosk is not an executable file on this device"),
    ],
)
def test_kiosk_app_that_is_not_there_fails(
    app: list[str], reason: str, tools: FakeTools, linux: LinuxPlatform, tmp_path: Path
) -> None:
    with pytest.raises(HandlerError, match=f"^{reason}$"):
        execute(linux, tmp_path / "state", OperationType.SET_KIOSK_APP, {"app": app})
    assert tools.calls() == []
    assert not unit_path(tmp_path).exists()


@pytest.mark.parametrize(
    ("getent", "reason"),
    [
        ({"exit_code": 2}, "there is no user kiosk on this device: create the kiosk's account first"),
        ({"stdout": "kiosk:x:0:0::/root:/bin/sh\n"}, "user kiosk has uid 0: a kiosk never runs as root"),
        # A service's account (postgres, www-data, messagebus): the app would own that service's files and data.
        (
            {"stdout": "kiosk:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"},
            "user kiosk is a system account (uid 33): a kiosk runs as an ordinary user's account, uid 1000 or above",
        ),
        (
            {"stdout": "kiosk:x:1001:0::/home/kiosk:/bin/sh\n"},
            "user kiosk has the root group (gid 0) as its own: a kiosk never runs with root's group",
        ),
    ],
)
def test_kiosk_user_must_exist_and_not_be_root(
    getent: dict[str, Any], reason: str, tools: FakeTools, linux: LinuxPlatform, tmp_path: Path
) -> None:
    tools.add("getent", **getent)
    with pytest.raises(HandlerError, match=f"^{re.escape(reason)}$"):
        execute(linux, tmp_path / "state", OperationType.SET_KIOSK_APP, {"app": ["chromium"]})
    assert tools.calls() == [["getent", "passwd", "kiosk"]]
    assert not unit_path(tmp_path).exists()


@pytest.mark.parametrize("group", ["sudo", "wheel", "admin", "docker", "lxd", "disk"])
def test_kiosk_user_who_can_become_root_is_refused(
    group: str, tools: FakeTools, linux: LinuxPlatform, tmp_path: Path
) -> None:
    # Raspberry Pi OS's first user (uid 1000) is in sudo with NOPASSWD: an app run as them is root one `sudo` away,
    # past the confinement run_scripts_as gives RUN_SHELL_SCRIPT.
    tools.add("id", stdout=f"kiosk adm {group} video\n")

    with pytest.raises(HandlerError) as caught:
        execute(linux, tmp_path / "state", OperationType.SET_KIOSK_APP, {"app": ["chromium"]})

    assert str(caught.value) == (
        f"user kiosk is in the group {group}, which can become root: a kiosk runs as an account without it"
    )
    assert tools.calls() == [["getent", "passwd", "kiosk"], ["id", "-nG", "kiosk"]]
    assert not unit_path(tmp_path).exists()


def test_kiosk_that_does_not_come_up_fails(
    tools: FakeTools, linux: LinuxPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIOSK_STATE", "failed")
    with pytest.raises(ToolFailed, match=f"^{UNIT} is failed after its restart: see journalctl -u {UNIT}$"):
        execute(linux, tmp_path / "state", OperationType.SET_KIOSK_APP, {"app": ["chromium"]})


def test_kiosk_app_on_linux_needs_an_app(tools: FakeTools, linux: LinuxPlatform, tmp_path: Path) -> None:
    with pytest.raises(InvalidArguments, match="SET_KIOSK_APP on linux needs 'app'"):
        execute(linux, tmp_path / "state", OperationType.SET_KIOSK_APP, {"component": KIOSK})
    assert tools.calls() == []


def test_kiosk_off_stops_disables_and_removes_the_unit(
    tools: FakeTools, linux: LinuxPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    execute(linux, tmp_path / "state", OperationType.SET_KIOSK_APP, {"app": ["chromium"]})
    tools.log.unlink()
    monkeypatch.setenv("KIOSK_STATE", "inactive")

    result = execute(linux, tmp_path / "state", OperationType.SET_KIOSK_APP, {"enabled": False})

    assert tools.calls() == [
        ["systemctl", "disable", "--now", UNIT],
        ["systemctl", "daemon-reload"],
        ["systemctl", "is-active", UNIT],
    ]
    assert not unit_path(tmp_path).exists()
    assert result == {
        "enabled": False,
        "unit": UNIT,
        "path": str(unit_path(tmp_path)),
        "removed": True,
        "state": "inactive",
    }


def test_kiosk_off_without_a_kiosk_only_reads_the_state_back(
    tools: FakeTools, linux: LinuxPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIOSK_STATE", "inactive")
    result = execute(linux, tmp_path / "state", OperationType.SET_KIOSK_APP, {"enabled": False})
    assert tools.calls() == [["systemctl", "is-active", UNIT]]
    assert (result["removed"], result["state"]) == (False, "inactive")


# --- Android: the home activity -------------------------------------------------------------------------------------


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


def kiosk_state(tmp_path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((tmp_path / "state" / "kiosk.json").read_text())
    return loaded


def keep_state(tmp_path: Path, **state: Any) -> None:
    (tmp_path / "state").mkdir(exist_ok=True)
    (tmp_path / "state" / "kiosk.json").write_text(json.dumps(state))


def test_kiosk_app_on_android_becomes_the_home_activity(adb: FakeAdb, android: AndroidPlatform, tmp_path: Path) -> None:
    adb.respond(SERIAL, HOME, stdout=f"{KIOSK}\n")

    result = execute(
        android, tmp_path / "state", OperationType.SET_KIOSK_APP, {"app": ["chromium"], "component": KIOSK}
    )

    assert adb.calls() == on_device(
        HOME_QUERY,
        ["shell", "cmd", "package", "set-home-activity", KIOSK],
        ["shell", "am", "start", "-W", "-n", KIOSK],
        HOME_QUERY,
    )
    assert result == {"enabled": True, "component": KIOSK, "home": KIOSK_FULL, "home_before": None}
    assert kiosk_state(tmp_path)["kiosk_component"] == KIOSK_FULL


def test_kiosk_app_that_does_not_become_home_fails(adb: FakeAdb, android: AndroidPlatform, tmp_path: Path) -> None:
    adb.respond(SERIAL, HOME, stdout=f"priority=0\n{LAUNCHER}\n")

    with pytest.raises(ToolFailed, match=f"^HOME opens {LAUNCHER} after set-home-activity, not {KIOSK}$"):
        execute(android, tmp_path / "state", OperationType.SET_KIOSK_APP, {"component": KIOSK})
    assert kiosk_state(tmp_path)["home_before"] == LAUNCHER  # kept before acting, so it can be given back


def test_kiosk_app_refused_by_the_device_fails_with_its_error(
    adb: FakeAdb, android: AndroidPlatform, tmp_path: Path
) -> None:
    adb.respond(SERIAL, ["shell", "cmd", "package", "set-home-activity"], stdout="Error: Failed to set default home.\n")
    with pytest.raises(ToolFailed, match="Failed to set default home"):
        execute(android, tmp_path / "state", OperationType.SET_KIOSK_APP, {"component": KIOSK})


def test_kiosk_app_on_android_needs_a_component(adb: FakeAdb, android: AndroidPlatform, tmp_path: Path) -> None:
    with pytest.raises(InvalidArguments, match="SET_KIOSK_APP on android needs 'component'"):
        execute(android, tmp_path / "state", OperationType.SET_KIOSK_APP, {"app": ["chromium"]})
    assert adb.calls() == []


def test_kiosk_off_on_android_gives_the_previous_home_back(
    adb: FakeAdb, android: AndroidPlatform, tmp_path: Path
) -> None:
    keep_state(tmp_path, kiosk_component=KIOSK_FULL, home_before=LAUNCHER)
    adb.respond(SERIAL, HOME, stdout=f"{LAUNCHER}\n")

    result = execute(android, tmp_path / "state", OperationType.SET_KIOSK_APP, {"enabled": False})

    assert adb.calls() == on_device(
        ["shell", "cmd", "package", "set-home-activity", LAUNCHER],
        ["shell", "am", "start", "-W", "-n", LAUNCHER],
        HOME_QUERY,
    )
    assert result == {"enabled": False, "changed": True, "home": LAUNCHER}
    assert (kiosk_state(tmp_path)["kiosk_component"], kiosk_state(tmp_path)["home_before"]) == (None, None)


def test_kiosk_off_without_a_home_to_give_back_fails(adb: FakeAdb, android: AndroidPlatform, tmp_path: Path) -> None:
    keep_state(tmp_path, kiosk_component=KIOSK_FULL)
    with pytest.raises(HandlerError, match="no home app was chosen before the kiosk app was set"):
        execute(android, tmp_path / "state", OperationType.SET_KIOSK_APP, {"enabled": False})
    assert adb.calls() == []


# --- Android: multi-app mode and the allowlist -----------------------------------------------------------------------

LAUNCHER_ICONS = "\n".join(
    [
        "com.android.chrome/com.google.android.apps.chrome.Main",
        "com.android.settings/.Settings",
        "com.android.launcher3/.Launcher",
        KIOSK,
        "com.example.games/.Play",
        "com.example.games/.Other",
        "com.android.shell/.Bugreport",
    ]
)


def answer_for_multi_app(adb: FakeAdb) -> FakeAdb:
    """The home is the kiosk app, these are the launcher icons, and pm suspends and unsuspends whatever it is asked."""
    adb.respond(SERIAL, HOME, stdout=f"{KIOSK}\n")
    adb.respond(SERIAL, LAUNCHABLE, stdout=LAUNCHER_ICONS + "\n")
    adb.respond(SERIAL, ["shell", "pm", "suspend"], stdout="Package new suspended state: true\n")
    adb.respond(SERIAL, ["shell", "pm", "unsuspend"], stdout="Package new suspended state: false\n")
    return adb


@pytest.fixture
def multi_app(adb: FakeAdb) -> FakeAdb:
    return answer_for_multi_app(adb)


def test_multi_app_mode_suspends_every_app_outside_the_allowlist(
    multi_app: FakeAdb, android: AndroidPlatform, tmp_path: Path
) -> None:
    keep_state(tmp_path, allowlist=["com.android.chrome"], kiosk_component=KIOSK_FULL)

    result = execute(android, tmp_path / "state", OperationType.SET_MULTI_APP_MODE, {"enabled": True})

    # Settings, the shell, the kiosk app and the home app are never suspended.
    assert multi_app.calls() == on_device(
        HOME_QUERY,
        LAUNCHABLE_QUERY,
        ["shell", "pm", "suspend", "com.android.launcher3"],
        ["shell", "pm", "suspend", "com.example.games"],
    )
    assert result == {
        "allowlist": ["com.android.chrome"],
        "multi_app": True,
        "suspended": ["com.android.launcher3", "com.example.games"],
        "unsuspended": [],
        "suspended_by_tether": ["com.android.launcher3", "com.example.games"],
    }

    multi_app.clear_calls()
    result = execute(android, tmp_path / "state", OperationType.SET_MULTI_APP_MODE, {"enabled": False})

    assert multi_app.calls() == on_device(
        ["shell", "pm", "unsuspend", "com.android.launcher3"],
        ["shell", "pm", "unsuspend", "com.example.games"],
    )
    assert result["unsuspended"] == ["com.android.launcher3", "com.example.games"]
    assert result["suspended_by_tether"] == []
    assert kiosk_state(tmp_path)["multi_app"] is False


def test_allowlist_changes_apply_at_once_in_multi_app_mode(
    multi_app: FakeAdb, android: AndroidPlatform, tmp_path: Path
) -> None:
    keep_state(tmp_path, multi_app=True, suspended=["com.android.launcher3", "com.example.games"])

    added = execute(android, tmp_path / "state", OperationType.ADD_TO_WHITELIST, {"packages": ["com.example.games"]})

    assert multi_app.calls() == on_device(
        HOME_QUERY,
        LAUNCHABLE_QUERY,
        ["shell", "pm", "unsuspend", "com.example.games"],
        ["shell", "pm", "suspend", "com.android.chrome"],
    )
    assert added == {
        "allowlist": ["com.example.games"],
        "multi_app": True,
        "suspended": ["com.android.chrome"],
        "unsuspended": ["com.example.games"],
        "suspended_by_tether": ["com.android.chrome", "com.android.launcher3"],
    }

    multi_app.clear_calls()
    removed = execute(
        android, tmp_path / "state", OperationType.REMOVE_FROM_WHITELIST, {"packages": ["com.example.games"]}
    )

    assert multi_app.calls()[2:] == on_device(["shell", "pm", "suspend", "com.example.games"])
    assert removed["allowlist"] == []


def test_allowlist_outside_multi_app_mode_changes_nothing_on_the_device(
    multi_app: FakeAdb, android: AndroidPlatform, tmp_path: Path
) -> None:
    result = execute(android, tmp_path / "state", OperationType.ADD_TO_WHITELIST, {"packages": ["com.example.games"]})

    assert multi_app.calls() == []
    assert result == {
        "allowlist": ["com.example.games"],
        "multi_app": False,
        "suspended": [],
        "unsuspended": [],
        "suspended_by_tether": [],
    }
    assert kiosk_state(tmp_path)["allowlist"] == ["com.example.games"]


def test_an_app_the_system_will_not_suspend_fails_the_command_and_the_rest_still_apply(
    adb: FakeAdb, android: AndroidPlatform, tmp_path: Path
) -> None:
    refusal = "Could not suspend com.android.launcher3\n"
    adb.respond(SERIAL, ["shell", "pm", "suspend", "com.android.launcher3"], stdout=refusal)
    answer_for_multi_app(adb)

    with pytest.raises(
        HandlerError, match=r"^1 app\(s\) could not be changed: pm suspend com.android.launcher3"
    ) as err:
        execute(android, tmp_path / "state", OperationType.SET_MULTI_APP_MODE, {"enabled": True})

    assert err.value.result is not None
    assert err.value.result["suspended"] == ["com.android.chrome", "com.example.games"]
    assert kiosk_state(tmp_path)["suspended"] == ["com.android.chrome", "com.example.games"]


def test_setting_the_kiosk_app_in_multi_app_mode_unsuspends_it(
    multi_app: FakeAdb, android: AndroidPlatform, tmp_path: Path
) -> None:
    keep_state(tmp_path, multi_app=True, allowlist=["com.android.chrome"], suspended=["com.example.kiosk"])

    result = execute(android, tmp_path / "state", OperationType.SET_KIOSK_APP, {"component": KIOSK})

    assert ["adb", "-s", SERIAL, "shell", "pm", "unsuspend", "com.example.kiosk"] in multi_app.calls()
    assert "com.example.kiosk" not in kiosk_state(tmp_path)["suspended"]
    assert result["home"] == KIOSK_FULL
    assert multi_app.calls()[-3:] == on_device(
        ["shell", "cmd", "package", "set-home-activity", KIOSK], ["shell", "am", "start", "-W", "-n", KIOSK], HOME_QUERY
    )


def test_unreadable_kiosk_state_fails_rather_than_forgetting_what_was_suspended(
    multi_app: FakeAdb, android: AndroidPlatform, tmp_path: Path
) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "kiosk.json").write_text("{not json")
    with pytest.raises(HandlerError, match="cannot read the kiosk state"):
        execute(android, tmp_path / "state", OperationType.SET_MULTI_APP_MODE, {"enabled": False})
    assert multi_app.calls() == []
