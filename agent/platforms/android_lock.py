"""The Android screen lock over adb as the shell user: LOCK, and the lock screen's credential.

The shell user can turn the screen off and can change the credential only by proving the current one
(`cmd lock_settings`); it can read which kind of credential is set (`dumpsys lock_settings`), never the credential.
"""

import asyncio
import re
from typing import Any

from agent import process
from agent.errors import InvalidArguments, ToolFailed
from agent.platforms.android_adb import AdbTools, in_user_section, remote_command
from agent.platforms.android_diagnostics import DEVICE_SHELL
from agent.platforms.linux_network import password_hidden
from agent.process import ProcessResult, last_line
from shared.arguments.lockscreen import CredentialKind

SCREEN_OFF_CHECKS = 10
SCREEN_OFF_INTERVAL_S = 0.2
"""KEYCODE_SLEEP is handled after `input` returns: the screen is read back up to 10 times over 2 seconds."""

SECURE_CREDENTIALS = frozenset({"pattern", "pin", "password"})
"""What `dumpsys lock_settings` calls a credential the keyguard asks for; "none" means a swipe (or nothing) wakes it."""

_WAKEFULNESS = re.compile(r"^\s*mWakefulness=(?P<state>\w+)", re.MULTILINE)
_DISPLAY_POWER = re.compile(r"^\s*Display Power: state=(?P<state>\w+)", re.MULTILINE)
_USER = re.compile(r"^\s*User (?P<id>\d+)\s*$")
_CREDENTIAL_TYPE = re.compile(r"^\s*CredentialType: (?P<type>\w+)\s*$")

_SUCCESS_LINES = {"clear": "Lock credential cleared", "set-pin": "Pin set to '", "set-password": "Password set to '"}
"""What `cmd lock_settings` prints once it has done VERB, and only then."""
_NONE_SET = "Old password provided but user has no password"
_LOCK_SETTINGS_REFUSALS = {
    "didn't match": "the current credential is wrong (the device counts this as a failed unlock attempt)",
    "Request throttled": "the device is throttling attempts after wrong credentials; try again later",
    _NONE_SET: "no PIN, pattern or password is set: give no current one",
    "does not support lock screen": "this build has no secure lock screen",
    "Profile uses unified challenge": "the user's profile shares its parent's lock (unified challenge)",
}
"""What `cmd lock_settings` prints when it refuses, and the reason given instead: its own lines quote credentials."""
_POLICY_REFUSAL = "doesn't satisfy admin policies:"
REDACTED = "[credential]"


def screen_is_off(power: str) -> bool | None:
    """From `dumpsys power`: off when asleep or dozing (`mWakefulness`) or the display is OFF; None if neither shows."""
    wakefulness = _WAKEFULNESS.search(power)
    display = _DISPLAY_POWER.search(power)
    if wakefulness is None and display is None:
        return None
    return (wakefulness is not None and wakefulness["state"] in ("Asleep", "Dozing")) or (
        display is not None and display["state"] == "OFF"
    )


def credential_type(lock_settings: str, user: str) -> str | None:
    """The lowercased `CredentialType` (none, pattern, pin, password) of `user` in `dumpsys lock_settings` (Android
    11+); None if it names none."""
    kind = in_user_section(lock_settings, user, _USER, _CREDENTIAL_TYPE)
    return None if kind is None else kind["type"].lower()


class AndroidLockScreen(AdbTools):
    async def lock_sessions(self) -> dict[str, Any]:
        """`adb -s S shell input keyevent KEYCODE_SLEEP`, then `dumpsys power` until the screen reads off, then the
        current user's credential type (`am get-current-user`, `dumpsys lock_settings`).

        The screen going off locks the device only if a PIN, pattern or password is set: without one anyone can wake
        it, and the command fails saying so (the screen stays off), so that SUCCESSFUL always means locked.
        """
        await self.shell("input", "keyevent", "KEYCODE_SLEEP")
        await self._wait_screen_off()
        user, kind = await self._credential()
        if kind not in SECURE_CREDENTIALS:
            raise ToolFailed(
                f"the screen of {self.serial} is off but it is not locked: user {user} has no PIN, pattern or "
                "password, so anyone can wake it (set one with RESET_LOCKSCREEN_PASSWORD)"
            )
        return {"screen_off": True, "locked": True, "credential": kind}

    async def clear_lock_credential(self, current: str) -> bool:
        """`cmd lock_settings clear --old CURRENT`, sent on the standard input of `adb -s S shell /system/bin/sh`,
        then `dumpsys lock_settings` must read "None"."""
        result = await self._lock_settings("clear", current=current)
        had_one = _succeeded("clear", result)
        if not had_one and _NONE_SET not in result.stdout_tail + result.stderr_tail:
            raise self._refused("clear", result, current)
        user, kind = await self._credential()
        if kind != "none":
            raise ToolFailed(f"cmd lock_settings clear on {self.serial} left user {user} a {kind}")
        return had_one

    async def set_lock_credential(self, kind: CredentialKind, new: str, current: str | None) -> None:
        """`cmd lock_settings set-pin|set-password [--old CURRENT] NEW` on the standard input of
        `adb -s S shell /system/bin/sh`, then `dumpsys lock_settings` must read the new kind.

        Without `current` the credential type is read first: were one set, the device would count the missing
        credential as a failed unlock attempt, so the command fails before that.
        """
        if current is None:
            user, found = await self._credential()
            if found != "none":
                raise InvalidArguments(f"user {user} of {self.serial} has a {found} set: give it as current")
        verb = f"set-{kind}"
        result = await self._lock_settings(verb, current=current, new=new)
        if not _succeeded(verb, result):
            raise self._refused(verb, result, current, new)
        user, found = await self._credential()
        if found != str(kind):
            raise ToolFailed(f"cmd lock_settings {verb} on {self.serial} left user {user} with {found}, not a {kind}")

    async def _wait_screen_off(self) -> None:
        for check in range(SCREEN_OFF_CHECKS):
            off = screen_is_off(await self.read_text("dumpsys", "power"))
            if off is None:
                raise ToolFailed(f"dumpsys power on {self.serial} shows neither mWakefulness nor Display Power")
            if off:
                return
            if check < SCREEN_OFF_CHECKS - 1:
                await asyncio.sleep(SCREEN_OFF_INTERVAL_S)
        raise ToolFailed(f"KEYCODE_SLEEP was sent but the screen of {self.serial} is still on")

    async def _credential(self) -> tuple[str, str]:
        """The current user's id and credential type."""
        user = (await self.read_text("am", "get-current-user")).strip()
        if not user.isdigit():
            raise ToolFailed(f"am get-current-user on {self.serial} printed {user!r}, not a user id")
        kind = credential_type(await self.read_text("dumpsys", "lock_settings"), user)
        if kind is None:
            raise ToolFailed(
                f"dumpsys lock_settings on {self.serial} names no CredentialType for user {user} (Android 11+ does)"
            )
        return user, kind

    async def _lock_settings(self, verb: str, *, current: str | None, new: str | None = None) -> ProcessResult:
        """One `cmd lock_settings` command, written to the device shell's standard input so that no credential
        appears in the argument list of adb on this host (readable by its every user) nor of `adb shell`."""
        words = ["cmd", "lock_settings", verb]
        if current is not None:
            words += ["--old", current]
        if new is not None:
            words.append(new)
        line = " ".join(remote_command(*words)) + "\n"
        with password_hidden(current), password_hidden(new):
            return await process.run(self.argv("shell", DEVICE_SHELL), timeout=self.tool_timeout, stdin=line.encode())

    def _refused(self, verb: str, result: ProcessResult, *secrets: str | None) -> ToolFailed:
        """The failure of `cmd lock_settings VERB`, in words of its own: the tool's lines quote the credentials."""
        output = result.stdout_tail + result.stderr_tail
        reason = next((reason for words, reason in _LOCK_SETTINGS_REFUSALS.items() if words in output), None)
        if reason is None and _POLICY_REFUSAL in output:
            policy = last_line(output.split(_POLICY_REFUSAL, 1)[1].split("\n", 1)[0])
            reason = f"the new credential does not satisfy the device's password policy ({policy or 'no detail'})"
        if reason is None:
            line = last_line(result.stderr_tail) or last_line(result.stdout_tail)
            reason = result.exit_description + (f": {line}" if line else "")
        for secret in secrets:
            if secret:
                reason = reason.replace(secret, REDACTED)
        return ToolFailed(f"cmd lock_settings {verb} on {self.serial} failed: {reason}")


def _succeeded(verb: str, result: ProcessResult) -> bool:
    """Exit 0 and the line `cmd lock_settings` prints only once it has changed the credential.

    Not a search for error words: the success line echoes the new credential, which may hold any word.
    """
    done = _SUCCESS_LINES[verb]
    return result.returncode == 0 and any(line.startswith(done) for line in result.stdout_tail.splitlines())
