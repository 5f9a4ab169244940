"""LOCK, CLEAR_PASSCODE and RESET_LOCKSCREEN_PASSWORD on Android, against the recording fake adb.

`cmd lock_settings` reaches the device on the standard input of its shell, which the fake adb runs on this host: a
recording fake `cmd` on PATH stands for the device's, so its exact argv is asserted after the device shell parsed it.
"""

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest

from agent.errors import HandlerError, InvalidArguments, ToolFailed
from agent.handlers import build_registry, handler_for
from agent.handlers.base import HandlerContext
from agent.platforms import android_lock
from agent.platforms.android import AndroidPlatform
from agent.platforms.android_lock import credential_type, screen_is_off
from shared.arguments import ArgumentsError, validate_arguments
from shared.arguments.lockscreen import CredentialKind
from shared.messages import Command, utc_now
from shared.operations import OperationType
from tests.agent.test_android import SERIAL, adb, android, on_device, short_graces
from tests.fake_adb import FakeAdb
from tests.fakes import FakeTools

__all__ = ["adb", "android", "short_graces"]  # the fixtures, shared with test_android

SLEEP = ["shell", "input", "keyevent", "KEYCODE_SLEEP"]
POWER = ["shell", "dumpsys", "power"]
CREDENTIAL_READ = [["shell", "am", "get-current-user"], ["shell", "dumpsys", "lock_settings"]]
DEVICE_SHELL = ["shell", "/system/bin/sh"]


@pytest.fixture
def device_cmd(tmp_path: Path) -> FakeTools:
    """The fakes' directory, which is first on PATH for the device shell the fake adb runs here."""
    return FakeTools(tmp_path / "bin")


def run(operation_type: OperationType, arguments: dict[str, Any], android: AndroidPlatform, tmp_path: Path) -> Any:
    command = Command(
        command_id="c1", operation_id="op", device_id="d", operation_type=operation_type, issued_at=utc_now()
    )
    handler = handler_for(operation_type, android, build_registry())
    parsed = validate_arguments(operation_type, arguments)
    return asyncio.run(handler.run(parsed, HandlerContext(command, android, tmp_path)))


def flattened(calls: list[list[str]]) -> str:
    return " ".join(itertools.chain.from_iterable(calls))


# --- LOCK -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("credential", "kind"), [("Pin", "pin"), ("Pattern", "pattern"), ("Password", "password")])
def test_lock_turns_the_screen_off_and_is_locked_when_a_credential_is_set(
    android: AndroidPlatform, adb: FakeAdb, tmp_path: Path, credential: str, kind: str
) -> None:
    adb.set_credential(SERIAL, credential)
    result = run(OperationType.LOCK, {}, android, tmp_path)
    assert result == {"screen_off": True, "locked": True, "credential": kind}
    assert adb.calls() == on_device(SLEEP, POWER, *CREDENTIAL_READ)
    assert adb.device(SERIAL)["awake"] is False


def test_lock_without_a_credential_fails_saying_the_screen_is_off_but_not_locked(
    android: AndroidPlatform, adb: FakeAdb
) -> None:
    with pytest.raises(ToolFailed) as caught:
        asyncio.run(android.lock_sessions())
    assert str(caught.value) == (
        f"the screen of {SERIAL} is off but it is not locked: user 0 has no PIN, pattern or password, so anyone can "
        "wake it (set one with RESET_LOCKSCREEN_PASSWORD)"
    )
    assert adb.device(SERIAL)["awake"] is False


def test_lock_fails_when_the_screen_stays_on(
    android: AndroidPlatform, adb: FakeAdb, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(android_lock, "SCREEN_OFF_INTERVAL_S", 0)
    adb.set_credential(SERIAL, "Pin")
    adb.respond(SERIAL, POWER, stdout="  mWakefulness=Awake\nDisplay Power: state=ON\n")
    with pytest.raises(ToolFailed, match=f"^KEYCODE_SLEEP was sent but the screen of {SERIAL} is still on$"):
        asyncio.run(android.lock_sessions())
    assert adb.calls() == on_device(SLEEP, *[POWER] * android_lock.SCREEN_OFF_CHECKS)


def test_lock_fails_when_dumpsys_power_says_nothing_it_knows(android: AndroidPlatform, adb: FakeAdb) -> None:
    adb.respond(SERIAL, POWER, stdout="Can't find service: power\n")
    with pytest.raises(ToolFailed, match="shows neither mWakefulness nor Display Power"):
        asyncio.run(android.lock_sessions())


def test_lock_fails_when_no_credential_type_is_printed(android: AndroidPlatform, adb: FakeAdb) -> None:
    adb.respond(SERIAL, ["shell", "dumpsys", "lock_settings"], stdout="User State:\n  User 0\n    Quality: 0\n")
    with pytest.raises(ToolFailed, match="names no CredentialType for user 0 \\(Android 11\\+ does\\)"):
        asyncio.run(android.lock_sessions())


@pytest.mark.parametrize(
    ("power", "off"),
    [
        ("  mWakefulness=Asleep\n", True),
        ("  mWakefulness=Dozing\nDisplay Power: state=DOZE\n", True),
        ("Display Power: state=OFF\n", True),
        ("  mWakefulness=Awake\nDisplay Power: state=ON\n", False),
        ("nothing\n", None),
    ],
)
def test_screen_state_is_read_from_dumpsys_power(power: str, off: bool | None) -> None:
    assert screen_is_off(power) is off


def test_the_current_users_credential_type_is_read() -> None:
    dump = (
        "User State:\n  User 0\n    CredentialType: None\n  User 10\n    CredentialType: Password\n\n"
        "Storage:\n  User 0\n"
    )
    assert credential_type(dump, "0") == "none"
    assert credential_type(dump, "10") == "password"
    assert credential_type(dump, "11") is None


# --- CLEAR_PASSCODE and RESET_LOCKSCREEN_PASSWORD ------------------------------------------------------------------


def test_clear_passcode_proves_the_current_one_on_the_device_shells_stdin(
    android: AndroidPlatform, adb: FakeAdb, device_cmd: FakeTools, tmp_path: Path
) -> None:
    device_cmd.add("cmd", stdout="Lock credential cleared\n")
    result = run(OperationType.CLEAR_PASSCODE, {"current": "it's $(id) 1"}, android, tmp_path)
    assert result == {"credential": "none", "changed": True}
    assert device_cmd.calls("cmd") == [["cmd", "lock_settings", "clear", "--old", "it's $(id) 1"]]
    assert adb.calls() == on_device(DEVICE_SHELL, *CREDENTIAL_READ)
    assert "it's" not in flattened(adb.calls())


def test_clearing_when_none_is_set_succeeds_unchanged(
    android: AndroidPlatform, adb: FakeAdb, device_cmd: FakeTools
) -> None:
    device_cmd.add("cmd", stdout="Old password provided but user has no password\n", exit_code=255)
    assert asyncio.run(android.clear_lock_credential("1234")) is False


@pytest.mark.parametrize(
    ("stdout", "stderr", "reason"),
    [
        (
            "Old password '4321' didn't match\n",
            "",
            "the current credential is wrong (the device counts this as a failed unlock attempt)",
        ),
        ("Request throttled\n", "", "the device is throttling attempts after wrong credentials; try again later"),
        (
            "",
            "The device does not support lock screen - ignoring the command.\n",
            "this build has no secure lock screen",
        ),
        (
            "",
            "Error while executing command: clear 4321\n",
            "exited 255: Error while executing command: clear [credential]",
        ),
        ("Lock credential cleared\n", "", "exited 255: Lock credential cleared"),
    ],
)
def test_a_refused_clear_fails_without_the_credential(
    android: AndroidPlatform, adb: FakeAdb, device_cmd: FakeTools, stdout: str, stderr: str, reason: str
) -> None:
    adb.set_credential(SERIAL, "Pin")
    device_cmd.add("cmd", stdout=stdout, stderr=stderr, exit_code=255)
    with pytest.raises(ToolFailed) as caught:
        asyncio.run(android.clear_lock_credential("4321"))
    assert str(caught.value) == f"cmd lock_settings clear on {SERIAL} failed: {reason}"
    assert caught.value.result is None
    assert adb.calls() == on_device(DEVICE_SHELL)


def test_a_clear_that_leaves_a_credential_fails(android: AndroidPlatform, adb: FakeAdb, device_cmd: FakeTools) -> None:
    adb.set_credential(SERIAL, "Pin")
    device_cmd.add("cmd", stdout="Lock credential cleared\n")
    with pytest.raises(ToolFailed, match=f"^cmd lock_settings clear on {SERIAL} left user 0 a pin$"):
        asyncio.run(android.clear_lock_credential("4321"))


@pytest.mark.parametrize(
    ("arguments", "argv", "credential"),
    [
        (
            {"kind": "pin", "new": "5678", "current": "1234"},
            ["cmd", "lock_settings", "set-pin", "--old", "1234", "5678"],
            "Pin",
        ),
        ({"kind": "pin", "new": "5678"}, ["cmd", "lock_settings", "set-pin", "5678"], "None"),
        (
            {"kind": "password", "new": "it's $(reboot)", "current": "12369"},
            ["cmd", "lock_settings", "set-password", "--old", "12369", "it's $(reboot)"],
            "Pattern",
        ),
        (
            {"kind": "password", "new": "Error: didn't match", "current": "1234"},
            ["cmd", "lock_settings", "set-password", "--old", "1234", "Error: didn't match"],
            "Pin",
        ),
    ],
    ids=["pin", "first-pin", "password-quoted", "password-of-error-words"],
)
def test_reset_lockscreen_password_sets_and_reads_back_the_kind(
    android: AndroidPlatform,
    adb: FakeAdb,
    device_cmd: FakeTools,
    tmp_path: Path,
    arguments: dict[str, Any],
    argv: list[str],
    credential: str,
) -> None:
    adb.set_credential(SERIAL, credential)
    kind = arguments["kind"].capitalize()
    device_cmd.add("cmd", stdout=f"{kind} set to '{arguments['new']}'\n", script=adb.credential_change(SERIAL, kind))
    result = run(OperationType.RESET_LOCKSCREEN_PASSWORD, arguments, android, tmp_path)
    assert result == {"credential": arguments["kind"]}
    assert device_cmd.calls("cmd") == [argv]
    first_read = CREDENTIAL_READ if "current" not in arguments else []
    assert adb.calls() == on_device(*first_read, DEVICE_SHELL, *CREDENTIAL_READ)
    assert arguments["new"] not in flattened(adb.calls())


def test_a_new_credential_the_policy_refuses_fails_with_the_policy_only(
    android: AndroidPlatform, device_cmd: FakeTools
) -> None:
    device_cmd.add("cmd", stdout="New credential doesn't satisfy admin policies: TOO_SHORT (5678)\n", exit_code=255)
    with pytest.raises(ToolFailed) as caught:
        asyncio.run(android.set_lock_credential(CredentialKind.PIN, "5678", "1234"))
    assert str(caught.value) == (
        f"cmd lock_settings set-pin on {SERIAL} failed: "
        "the new credential does not satisfy the device's password policy (TOO_SHORT ([credential]))"
    )


def test_a_set_that_reads_back_another_kind_fails(
    android: AndroidPlatform, adb: FakeAdb, device_cmd: FakeTools
) -> None:
    adb.set_credential(SERIAL, "Password")
    device_cmd.add("cmd", stdout="Pin set to '5678'\n")
    with pytest.raises(
        ToolFailed, match=f"^cmd lock_settings set-pin on {SERIAL} left user 0 with password, not a pin$"
    ):
        asyncio.run(android.set_lock_credential(CredentialKind.PIN, "5678", "1234"))


def test_a_new_credential_without_the_current_one_is_refused_before_an_attempt_counts(
    android: AndroidPlatform, adb: FakeAdb, device_cmd: FakeTools
) -> None:
    adb.set_credential(SERIAL, "Pattern")
    with pytest.raises(InvalidArguments, match=f"^user 0 of {SERIAL} has a pattern set: give it as current$"):
        asyncio.run(android.set_lock_credential(CredentialKind.PIN, "5678", None))
    assert adb.calls() == on_device(*CREDENTIAL_READ)
    assert device_cmd.calls() == []


@pytest.mark.parametrize(
    ("operation_type", "arguments", "problem"),
    [
        (OperationType.RESET_LOCKSCREEN_PASSWORD, {"kind": "pin", "new": "12ab"}, "a new PIN is 4 to 16 digits"),
        (OperationType.RESET_LOCKSCREEN_PASSWORD, {"kind": "pin", "new": "123"}, "a new PIN is 4 to 16 digits"),
        (OperationType.RESET_LOCKSCREEN_PASSWORD, {"kind": "password", "new": "--old x"}, "not starting with"),
        (OperationType.RESET_LOCKSCREEN_PASSWORD, {"kind": "password", "new": "secret\nline"}, "printable ASCII"),
        (OperationType.RESET_LOCKSCREEN_PASSWORD, {"kind": "pattern", "new": "12369"}, "kind: Input should be"),
        (OperationType.CLEAR_PASSCODE, {"current": "secret\n"}, "current: String should match pattern"),
        (OperationType.CLEAR_PASSCODE, {"current": ""}, "current: String should match pattern"),
        (OperationType.CLEAR_PASSCODE, {}, "current: Field required"),
    ],
)
def test_credentials_are_refused_without_being_quoted(
    operation_type: OperationType, arguments: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ArgumentsError) as caught:
        validate_arguments(operation_type, arguments)
    assert problem in str(caught.value)
    for secret in ("12ab", "--old x", "secret"):
        assert secret not in str(caught.value)


def test_credentials_stay_out_of_the_models_repr() -> None:
    parsed = validate_arguments(
        OperationType.RESET_LOCKSCREEN_PASSWORD, {"kind": "pin", "new": "5678", "current": "1234"}
    )
    assert "5678" not in repr(parsed)
    assert "1234" not in repr(parsed)


def test_a_timeout_reason_carries_no_credential(android: AndroidPlatform, device_cmd: FakeTools) -> None:
    device_cmd.add("cmd", stdout="Pin set to '5678'\n", sleep=5)
    android.tool_timeout = 0.5
    with pytest.raises(HandlerError) as caught:
        asyncio.run(android.set_lock_credential(CredentialKind.PIN, "5678", "1234"))
    assert "timed out" in str(caught.value)
    assert "5678" not in str(caught.value)
    assert "5678" not in str(caught.value.result)
