"""A device's kiosk state on Android: the app allowlist, multi-app mode, and what Tether changed to enforce them.

Kept as `kiosk.json` in the device's state directory (one per Android device, as `profile.json` is), so that turning
multi-app mode off unsuspends exactly the apps Tether suspended, and SET_KIOSK_APP `enabled: false` can give back the
home screen the device had before.
"""

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from agent.errors import HandlerError
from agent.files import write_atomically
from agent.platforms.contract import AppSuspension

NEVER_SUSPEND = frozenset(
    {
        "android",
        "com.android.systemui",
        "com.android.shell",
        "com.android.settings",
        "com.android.packageinstaller",
        "com.google.android.packageinstaller",
        "com.android.permissioncontroller",
        "com.google.android.permissioncontroller",
    }
)
"""Never suspended, whatever the allowlist says: the system UI, the shell adb runs as, and what a person on the device
needs to recover it (Settings, the package installer, the permission controller). The kiosk app and the current home
app are kept as well."""


class KioskState(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    allowlist: list[str] = []
    multi_app: bool = False
    kiosk_component: str | None = None
    """The home activity SET_KIOSK_APP set."""
    home_before: str | None = None
    """The home activity before SET_KIOSK_APP first set one, which `enabled: false` gives back."""
    suspended: list[str] = []
    """The packages Tether suspended and has not unsuspended since."""


class KioskStore:
    """One JSON file per device, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> KioskState:
        """The stored state; none is the default. An unreadable file fails the command: without it, Tether would not
        know which apps it suspended."""
        try:
            return KioskState.model_validate_json(self.path.read_bytes())
        except FileNotFoundError:
            return KioskState()
        except (OSError, ValidationError) as err:
            raise HandlerError(f"cannot read the kiosk state in {self.path}: {err}") from err

    async def save(self, state: KioskState) -> None:
        await asyncio.to_thread(write_atomically, self.path, state.model_dump_json().encode())


@dataclass
class Enforcement:
    """What enforcing the allowlist changed on the device, and what it could not."""

    suspended: list[str] = field(default_factory=list)
    unsuspended: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def result(self, state: KioskState) -> dict[str, Any]:
        return {
            "allowlist": state.allowlist,
            "multi_app": state.multi_app,
            "suspended": self.suspended,
            "unsuspended": self.unsuspended,
            "suspended_by_tether": state.suspended,
        }


async def enforce(
    platform: AppSuspension, state: KioskState, *, keep: frozenset[str], also_unsuspend: frozenset[str] = frozenset()
) -> tuple[KioskState, Enforcement]:
    """Bring the device in line with `state`.

    In multi-app mode every launchable app outside the allowlist, NEVER_SUSPEND and `keep` is suspended; every app
    Tether suspended that is now allowed (or multi-app mode is off) is unsuspended, and so is each launchable one of
    `also_unsuspend`. Every package is tried even when another fails.
    """
    launchable = set(await platform.launchable_packages()) if state.multi_app else set()
    allowed = set(state.allowlist) | NEVER_SUSPEND | keep
    wanted = launchable - allowed
    suspended = set(state.suspended)
    done = Enforcement()
    unsuspend = (suspended - wanted) | (also_unsuspend & launchable)
    for package in sorted(unsuspend):
        if await _try(platform, package, False, done.failures):
            done.unsuspended.append(package)
            suspended.discard(package)
    for package in sorted(wanted - suspended):
        if await _try(platform, package, True, done.failures):
            done.suspended.append(package)
            suspended.add(package)
    return state.model_copy(update={"suspended": sorted(suspended)}), done


async def _try(platform: AppSuspension, package: str, suspend: bool, failures: list[str]) -> bool:
    try:
        await platform.set_suspended(package, suspend)
    except HandlerError as err:
        failures.append(str(err))
        return False
    return True
