"""What a Linux device says about itself in its announcement: hardware, OS, network and time zone."""

import contextlib
import os
import platform
import socket
from pathlib import Path
from typing import Any

import psutil

from shared.schedule import valid_zone

ZONEINFO_ROOTS = ("/usr/share/zoneinfo/", "/usr/lib/zoneinfo/")


def os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return {key: value.strip().strip('"') for key, value in pairs}


def linux_inventory() -> dict[str, Any]:
    release = os_release()
    addresses = sorted(
        {
            address.address
            for name, entries in psutil.net_if_addrs().items()
            if name != "lo"
            for address in entries
            if address.family in (socket.AF_INET, socket.AF_INET6)
        }
    )
    return {
        "hostname": socket.gethostname(),
        "os": {
            "name": release.get("NAME", platform.system()),
            "id": release.get("ID"),
            "version": release.get("VERSION_ID"),
            "pretty_name": release.get("PRETTY_NAME"),
        },
        "kernel": platform.release(),
        "architecture": platform.machine(),
        "cpu_count": psutil.cpu_count() or 0,
        "memory_total_bytes": psutil.virtual_memory().total,
        "disk_total_bytes": psutil.disk_usage("/").total,
        "boot_time": int(psutil.boot_time()),
        "ip_addresses": addresses,
    }


def local_time_zone(etc: Path = Path("/etc")) -> str | None:
    """The device's IANA zone from $TZ, the /etc/localtime link or /etc/timezone; None if unknown.

    The link comes before /etc/timezone: it is what `timedatectl set-timezone` changes and what the C library reads,
    while /etc/timezone is a copy only Debian keeps, which may be stale. Files only: no tool runs.
    """
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        target = os.readlink(etc / "localtime")
        candidates.extend(target.split(root, 1)[1] for root in ZONEINFO_ROOTS if root in target)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        candidates.append((etc / "timezone").read_text().strip())
    for name in candidates:
        if not name.startswith("/") and valid_zone(name):
            return name
    return None
