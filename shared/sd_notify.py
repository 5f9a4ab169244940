"""systemd's notification protocol, for `Type=notify` units: READY=1, STATUS=, and watchdog pings.

A datagram to the socket in $NOTIFY_SOCKET (an abstract one when it starts with '@'); outside systemd there is no
such socket and every call does nothing.
"""

import asyncio
import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(*assignments: str) -> bool:
    """Send `READY=1`, `STATUS=...`, `WATCHDOG=1`...; False when not run by systemd (or the socket is gone)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(assignments).encode(), target)
    except OSError as err:
        log.warning("could not notify systemd at %s: %s", address, err)
        return False
    return True


def watchdog_interval_s() -> float | None:
    """Half the unit's WatchdogSec, if systemd asked this process for pings; None otherwise."""
    usec, pid = os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None


async def ping_watchdog() -> None:
    """Ping systemd's watchdog while the event loop runs; a wedged loop stops the pings and systemd restarts us."""
    interval = watchdog_interval_s()
    if interval is None:
        return
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)
