"""Disallowing Bluetooth or the camera on Linux: a modprobe.d file that stops their kernel drivers from loading."""

import asyncio
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import HandlerError, ToolFailed
from agent.files import write_atomically
from agent.platforms.linux_network import switch_bluetooth_radios
from agent.platforms.linux_tools import LinuxTools, remove_file
from shared.arguments.restrictions import Restriction

PROC_MODULES = Path("/proc/modules")
BUILTIN_MODULES = Path("/lib/modules") / os.uname().release / "modules.builtin"
"""The drivers compiled into the running kernel, which no modprobe.d file can keep out."""
MODULE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
LOADED_MARK = "# loaded when disallowed:"
"""The block file's line naming the drivers it unloaded, which allowing the feature again loads back."""


@dataclass(frozen=True, slots=True)
class Drivers:
    """The kernel modules behind a feature. Blocking `modules` also blocks every driver that needs one of them:
    modprobe runs a dependency's `install` command too, so `install bluetooth /bin/false` fails every Bluetooth
    driver's load; the common drivers are named as well, so the file says what it stops."""

    operation: str
    title: str
    modules: tuple[str, ...]


DRIVERS: Mapping[Restriction, Drivers] = {
    Restriction.BLUETOOTH: Drivers(
        "ALLOW_BLUETOOTH",
        "Bluetooth",
        # The stack's core, then USB, SDIO and UART adapters and the protocols on top (rfcomm, bnep, hidp).
        (
            "bluetooth",
            "btusb",
            "btrtl",
            "btintel",
            "btbcm",
            "btmtk",
            "btsdio",
            "hci_uart",
            "rfcomm",
            "bnep",
            "hidp",
        ),
    ),
    Restriction.CAMERA: Drivers(
        "ALLOW_CAMERA",
        "the camera",
        # USB webcams: the UVC class driver (almost every webcam since 2010) and the core of the older gspca ones.
        # A camera on a board's own CSI port (e.g. a Raspberry Pi camera module) has board-specific drivers.
        ("uvcvideo", "gspca_main"),
    ),
}


class LinuxRestrictions(LinuxTools):
    """Blocks a feature's drivers in `<etc_dir>/modprobe.d/tether-<feature>.conf` and unloads those loaded now."""

    def __init__(
        self, *args: Any, proc_modules: Path = PROC_MODULES, builtin_modules: Path = BUILTIN_MODULES, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.proc_modules = proc_modules
        self.builtin_modules = builtin_modules

    def restriction_file(self, restriction: Restriction) -> Path:
        return self.etc_dir / "modprobe.d" / f"tether-{restriction}.conf"

    async def set_allowed(self, restriction: Restriction, allowed: bool) -> dict[str, Any]:
        if allowed:
            return await self._allow(restriction)
        return await self._disallow(restriction)

    async def _disallow(self, restriction: Restriction) -> dict[str, Any]:
        """Write the block file first, so udev cannot load a driver back while the others are unloaded.

        A driver still in use (bluetoothd holding the stack, an app with the camera open) stays loaded; the result
        lists it under `still_loaded` with `effective_now: false`, and the block takes effect at the next boot.
        """
        drivers = DRIVERS[restriction]
        path = self.restriction_file(restriction)
        compiled_in = await asyncio.to_thread(self._builtin_modules)
        if compiled_in is None:
            raise HandlerError(
                f"cannot tell whether {drivers.title}'s drivers are built into this kernel: {self.builtin_modules} "
                "is missing (a kernel without loadable modules, or /lib/modules hidden from tetherd, as "
                "ProtectKernelModules=yes does); nothing was changed"
            )
        builtin = sorted(set(drivers.modules) & compiled_in)
        if builtin:
            raise HandlerError(
                f"{drivers.title} cannot be disallowed here: {', '.join(builtin)} "
                f"{'is' if len(builtin) == 1 else 'are'} built into this kernel "
                f"({self.builtin_modules}), so no modprobe.d file keeps it out; nothing was changed"
            )
        loaded = self._loaded_modules()
        targets = dependants_first([name for name in drivers.modules if name in loaded], loaded)
        # A block renewed after a reboot finds nothing loaded: keep what the first one unloaded, to load it back.
        earlier = [name for name in recorded_modules(await self._read_block(path)) if name not in targets]
        await asyncio.to_thread(write_atomically, path, block_file(drivers, [*targets, *earlier]).encode())
        if restriction is Restriction.BLUETOOTH and targets:
            await switch_bluetooth_radios(self, False)  # radios silent at once, even if a driver cannot go
        reasons: dict[str, str] = {}
        for name in targets:
            removal = await self.probe(["modprobe", "-r", name])
            if removal.returncode != 0:
                # Often just "not loaded" after an earlier removal took it along as an unused dependency.
                reasons[name] = last_line(removal.stderr_tail or removal.stdout_tail)
        remaining = self._loaded_modules()
        still_loaded = [name for name in targets if name in remaining]
        result: dict[str, Any] = {
            "allowed": False,
            "file": str(path),
            "unloaded": [name for name in targets if name not in remaining],
            "still_loaded": still_loaded,
            "effective_now": not still_loaded,
            "effective_after_reboot": True,
        }
        if still_loaded:
            result["unload_errors"] = {name: reasons.get(name, "") for name in still_loaded}
        return result

    async def _allow(self, restriction: Restriction) -> dict[str, Any]:
        """Remove the block file, then load back the drivers it unloaded (nothing else: other hardware's drivers
        load at the next boot or when it is plugged in), and unblock the Bluetooth radios."""
        drivers = DRIVERS[restriction]
        path = self.restriction_file(restriction)
        unloaded = recorded_modules(await self._read_block(path))
        removed = await asyncio.to_thread(remove_file, path)
        if unloaded:
            try:
                # Reversed: a driver's dependencies first, as they were unloaded last.
                await self.tool("modprobe", "-a", *reversed(unloaded))
            except ToolFailed as err:
                raise HandlerError(
                    f"{drivers.title} is allowed again ({path} removed), but loading its drivers back failed: {err}"
                ) from err
        radios = restriction is Restriction.BLUETOOTH and await switch_bluetooth_radios(self, True)
        result: dict[str, Any] = {
            "allowed": True,
            "file": str(path),
            "file_removed": removed,
            "loaded": [name for name in unloaded if name in self._loaded_modules()],
        }
        if restriction is Restriction.BLUETOOTH:
            result["radios_unblocked"] = radios
        return result

    async def _read_block(self, path: Path) -> str:
        """The block file's text, "" if there is none."""
        try:
            return await asyncio.to_thread(path.read_text)
        except FileNotFoundError:
            return ""
        except OSError as err:
            raise HandlerError(f"cannot read {path}: {err.strerror or err}") from err

    def _builtin_modules(self) -> set[str] | None:
        """Names of the drivers built into the kernel: `kernel/drivers/bluetooth/btusb.ko` lines, `-` read as `_`;
        None without the list, which depmod writes for every kernel that has loadable modules."""
        try:
            text = self.builtin_modules.read_text()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise HandlerError(f"cannot read {self.builtin_modules}: {err.strerror or err}") from err
        return {line.rsplit("/", 1)[-1].removesuffix(".ko").replace("-", "_") for line in text.split()}

    def _loaded_modules(self) -> dict[str, list[str]]:
        """Each loaded module -> the loaded modules that use it, from /proc/modules (none without module support)."""
        try:
            text = self.proc_modules.read_text()
        except FileNotFoundError:
            return {}
        except OSError as err:
            raise HandlerError(f"cannot read {self.proc_modules}: {err.strerror or err}") from err
        return parse_proc_modules(text)


def parse_proc_modules(text: str) -> dict[str, list[str]]:
    """`btusb 65536 0 - Live 0x0` lines: name, size, use count, users ("-" or `a,b,`), state, address."""
    modules: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        users = fields[3] if len(fields) > 3 else "-"
        modules[fields[0]] = [] if users == "-" else [user for user in users.split(",") if user]
    return modules


def dependants_first(names: Sequence[str], loaded: Mapping[str, Sequence[str]]) -> list[str]:
    """`names` and every loaded module that uses one of them, each after all the modules that use it."""
    order: list[str] = []

    def visit(name: str, path: frozenset[str]) -> None:
        if name in order or name in path:
            return
        for user in loaded.get(name, ()):
            visit(user, path | {name})
        order.append(name)

    for name in names:
        visit(name, frozenset())
    return order


def block_file(drivers: Drivers, unloaded: Sequence[str]) -> str:
    lines = [
        f"# Managed by Tether ({drivers.operation}): {drivers.title} is disallowed on this device.",
        f'# {drivers.operation} with {{"allowed": true}} removes this file; changes made here are overwritten.',
        f"{LOADED_MARK} {' '.join(unloaded)}".rstrip(),
    ]
    for name in drivers.modules:
        lines += [f"blacklist {name}", f"install {name} /bin/false"]
    return "\n".join(lines) + "\n"


def recorded_modules(text: str) -> list[str]:
    """The modules the block file says it unloaded, in that order; a word that is not a module name is ignored, so
    an edited file cannot hand modprobe an option."""
    for line in text.splitlines():
        if line.startswith(LOADED_MARK):
            return [name for name in line.removeprefix(LOADED_MARK).split() if MODULE_NAME.fullmatch(name)]
    return []


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""
