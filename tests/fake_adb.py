"""A recording fake `adb` first on PATH, driven by a JSON state file that tests rewrite to attach and detach devices."""

import fcntl
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeTools

PNG = b"\x89PNG\r\n\x1a\n" + b"fake screen"

_SCRIPT = r"""
import json, os, subprocess, sys, time

STATE, CALLS = sys.argv.pop(1), sys.argv.pop(1)
args = sys.argv[1:]
with open(STATE) as file:
    state = json.load(file)
# Logged after the state is read: a test that sees the call can detach the device without changing this call's answer.
with open(CALLS, "a") as log:
    log.write(json.dumps(["adb", *args]) + "\n")


def out(text="", code=0, err=""):
    sys.stdout.write(text)
    sys.stderr.write(err)
    sys.exit(code)


def save():
    # Write back this call's device only, under a lock: calls to two devices at once (one operation reaching a phone
    # and a tablet) must not undo each other's change.
    import fcntl
    with open(STATE + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(STATE) as file:
            fresh = json.load(file)
        fresh["devices"][serial] = device
        temporary = f"{STATE}.{os.getpid()}.tmp"
        with open(temporary, "w") as file:
            json.dump(fresh, file)
        os.replace(temporary, STATE)


devices = state["devices"]
if args[:1] == ["devices"]:
    lines = [f"{serial:<22} {d['state']} {d['details'] if d['state'] == 'device' else ''}".rstrip()
             for serial, d in devices.items()]
    out("List of devices attached\n" + "".join(line + "\n" for line in lines) + "\n")
if args[:1] != ["-s"]:
    out()
serial, rest = args[1], args[2:]
device = devices.get(serial)
if device is None:
    out(code=1, err=f"error: device '{serial}' not found\n")
if device["state"] != "device":
    out(code=1, err=f"error: device {device['state']}\n")
for response in device["responses"]:
    if rest[: len(response["match"])] == response["match"]:
        time.sleep(response["sleep"])
        out(response["stdout"], response["exit"], response["stderr"])
shell = rest[1:] if rest[:1] == ["shell"] else None
if shell == ["getprop"]:
    out("".join(f"[{key}]: [{value}]\n" for key, value in device["props"].items()))
if shell is not None and shell[:1] == ["getprop"] and len(shell) == 2:
    out(device["props"].get(shell[1], "") + "\n")
if shell is not None and shell[:2] == ["settings", "put"] and len(shell) == 5:
    device["settings"]["/".join(shell[2:4])] = shell[4]
    save()
    out()
if shell is not None and shell[:2] == ["settings", "get"] and len(shell) == 4:
    out(device["settings"].get("/".join(shell[2:4]), "null") + "\n")
if shell is not None and shell[:2] == ["input", "keyevent"] and shell[2:] in (["KEYCODE_SLEEP"], ["KEYCODE_WAKEUP"]):
    device["awake"] = shell[2] == "KEYCODE_WAKEUP"
    save()
    out()
if shell == ["dumpsys", "power"]:
    wakefulness, display = ("Awake", "ON") if device["awake"] else ("Asleep", "OFF")
    out(f"POWER MANAGER (dumpsys power)\n\nPower Manager State:\n  mWakefulness={wakefulness}\n"
        f"  mWakefulnessChanging=false\n\nDisplay Power: state={display}\n")
if shell == ["am", "get-current-user"]:
    out("0\n")
if shell == ["dumpsys", "lock_settings"]:
    out("Current lock settings service state:\n\nUser State:\n  User 0\n    SID: 0\n    Quality: 0\n"
        f"    CredentialType: {device['credential']}\n    SeparateChallenge: false\n\n")
PM_STATES = {
    "enable": "new state: enabled",
    "disable-user": "new state: disabled-user",
    "suspend": "new suspended state: true",
    "unsuspend": "new suspended state: false",
}
if shell is not None and len(shell) == 3 and shell[0] == "pm" and shell[1] in PM_STATES:
    out(f"Package {shell[2]} {PM_STATES[shell[1]]}\n")
if shell is not None and shell[:1] == ["pm"] and shell[1:2] in (["grant"], ["revoke"]) and len(shell) == 4:
    device["grants"].setdefault(shell[2], {})[shell[3]] = shell[1] == "grant"
    save()
    out()
if shell is not None and shell[:2] == ["dumpsys", "package"] and len(shell) == 3:
    grants = device["grants"].get(shell[2], {})
    permission = "android.permission.POST_NOTIFICATIONS"
    out(f"Packages:\n  Package [{shell[2]}] (1a2b3c):\n    requested permissions:\n      {permission}\n"
        f"    User 0: ceDataInode=1 installed=true hidden=false suspended=false\n      runtime permissions:\n"
        f"        {permission}: granted={str(grants.get(permission, False)).lower()}, flags=[ USER_SET ]\n")
if shell == ["dumpsys", "battery"]:
    battery = device["battery"]
    out("Current Battery Service state:\n" + "".join(f"  {key}: {value}\n" for key, value in battery.items()))
if shell == ["pm", "list", "packages", "--show-versioncode"]:
    out("".join(f"package:{name} versionCode:{version}\n" for name, version in device["packages"].items()))
if shell == ["cat", "/proc/sys/kernel/random/boot_id"]:
    out(device["boot_id"] + "\n")
if shell is not None and shell[:3] == ["cmd", "media_session", "volume"] and shell[-1:] == ["--get"]:
    out("volume is 5 in range [0..15]\n")
if shell == ["/system/bin/sh"]:  # the device's shell is this host's, so scripts really run
    sys.exit(subprocess.run(["/bin/sh"], check=False).returncode)
if rest == ["exec-out", "screencap", "-p"]:
    sys.stdout.buffer.write(bytes.fromhex(state["png"]))
    out()
if rest[:2] == ["logcat", "-d"]:
    out("".join(f"01-01 00:00:{n % 60:02d}.000  100  100 I Fake: line {n}\n" for n in range(device["log_lines"])))
if rest[:2] == ["install", "-r"] and len(rest) == 3:
    out("Performing Streamed Install\nSuccess\n")
if rest[:1] == ["uninstall"] and len(rest) == 2:
    if device["packages"].pop(rest[1], None) is None:
        out("Failure [DELETE_FAILED_INTERNAL_ERROR]\n", 1)
    save()
    out("Success\n")
if rest[:1] == ["bugreport"] and len(rest) == 2:
    with open(rest[1], "wb") as file:
        file.write(b"PK\x03\x04fake bugreport")
    out(f"Bug report copied to {rest[1]}\n")
out()
"""


_SET_CREDENTIAL = r"""
import json, os, sys

state_path, serial, credential = sys.argv[1:]
with open(state_path) as file:
    state = json.load(file)
state["devices"][serial]["credential"] = credential
with open(state_path + ".tmp", "w") as file:
    json.dump(state, file)
os.replace(state_path + ".tmp", state_path)
"""


class FakeAdb:
    """The fake `adb` and its state: `attach` and `detach` take effect at the next adb call, as with a USB cable."""

    @classmethod
    def on_path(cls, directory: Path, monkeypatch: pytest.MonkeyPatch) -> "FakeAdb":
        """The fake in `directory`, first on PATH, next to succeeding fakes of the FakeTools.DANGEROUS tools."""
        FakeTools.on_path(directory, monkeypatch)
        return cls(directory)

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "adb"
        self.state_path = directory / "adb-state.json"
        self.calls_path = directory / "adb-calls.jsonl"
        self._state: dict[str, Any] = {"devices": {}, "png": PNG.hex()}
        self._save()
        # The state and log paths ride in argv, so the fake works whatever environment adb is run with.
        self.path.write_text(
            f"#!/bin/sh\nexec {sys.executable} -c {shlex.quote(_SCRIPT)} "
            f'{shlex.quote(str(self.state_path))} {shlex.quote(str(self.calls_path))} "$@"\n'
        )
        self.path.chmod(0o755)

    def attach(
        self,
        serial: str,
        *,
        state: str = "device",
        props: dict[str, str] | None = None,
        packages: dict[str, str] | None = None,
        boot_id: str = "boot-1",
        log_lines: int = 5,
        credential: str = "None",
    ) -> None:
        """Plug in a device; `props` are added to (or replace) a Pixel 7 on Android 14 in Europe/Berlin.

        `credential` is the lock screen's CredentialType in `dumpsys lock_settings`: None, Pattern, Pin or Password.
        """
        self._state["devices"][serial] = {
            "state": state,
            "details": f"usb:1-{len(self._state['devices']) + 1} product:panther model:Pixel_7 device:panther",
            "props": {
                "ro.product.model": "Pixel 7",
                "ro.product.manufacturer": "Google",
                "ro.build.version.release": "14",
                "ro.build.version.sdk": "34",
                "ro.serialno": serial,
                "persist.sys.timezone": "Europe/Berlin",
                **(props or {}),
            },
            "battery": {"AC powered": "false", "USB powered": "true", "status": 2, "level": 85, "scale": 100},
            "packages": packages if packages is not None else {"com.android.chrome": "631208033"},
            "boot_id": boot_id,
            "log_lines": log_lines,
            "credential": credential,
            "awake": True,
            "settings": {},
            "grants": {},
            "responses": [],
        }
        self._save()

    def detach(self, serial: str) -> None:
        self._load()
        del self._state["devices"][serial]
        self._save()

    def set_state(self, serial: str, state: str) -> None:
        """`unauthorized`, `offline` or back to `device`."""
        self._update(serial, state=state)

    def set_boot_id(self, serial: str, boot_id: str) -> None:
        self._update(serial, boot_id=boot_id)

    def set_credential(self, serial: str, credential: str) -> None:
        """What `dumpsys lock_settings` reports from now on (`cmd lock_settings` runs in the host's shell, not here)."""
        self._update(serial, credential=credential)

    def credential_change(self, serial: str, credential: str) -> str:
        """A shell command making the device report `credential` from then on, for a fake `cmd lock_settings`."""
        return shlex.join([sys.executable, "-c", _SET_CREDENTIAL, str(self.state_path), serial, credential])

    def device(self, serial: str) -> dict[str, Any]:
        """The device's state as the fake keeps it: `settings`, `awake`, `grants`, ..."""
        self._load()
        return dict(self._state["devices"][serial])

    def respond(
        self, serial: str, match: list[str], *, exit: int = 0, stdout: str = "", stderr: str = "", sleep: float = 0
    ) -> None:
        """Answer each `adb -s SERIAL` call whose arguments start with `match` so, ahead of the built-in answers."""
        self._load()
        response = {"match": match, "exit": exit, "stdout": stdout, "stderr": stderr, "sleep": sleep}
        self._state["devices"][serial]["responses"].append(response)
        self._save()

    def packages(self, serial: str) -> dict[str, str]:
        self._load()
        return dict(self._state["devices"][serial]["packages"])

    def calls(self, serial: str | None = None) -> list[list[str]]:
        """Every argv adb was run with, oldest first, as `["adb", ...]`; with `serial`, only `adb -s SERIAL ...`."""
        if not self.calls_path.exists():
            return []
        calls = [json.loads(line) for line in self.calls_path.read_text().splitlines()]
        return [argv for argv in calls if serial is None or argv[1:3] == ["-s", serial]]

    def clear_calls(self) -> None:
        self.calls_path.unlink(missing_ok=True)

    def _update(self, serial: str, **changes: Any) -> None:
        with self.state_path.with_name(self.state_path.name + ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the fake's own calls write back under the same lock
            self._load()
            self._state["devices"][serial].update(changes)
            self._save()

    def _load(self) -> None:
        # The fake rewrites the state itself (uninstall), so read it back before changing it.
        self._state = json.loads(self.state_path.read_text())

    def _save(self) -> None:
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self._state))
        os.replace(temporary, self.state_path)
