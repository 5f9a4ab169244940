"""Runs every Android device attached over adb as a Tether device of its own, for as long as it stays attached.

Each device in state `device` gets what `tetherd run` gives the host: a journal, a Runner and a Session with its own
MQTT connection, last will and announcement. With `android_logins` set, each connects with its own broker login from
that file, and one without a login is named once and left alone; without it, each connects with the host's login,
which only a broker without per-device ACLs accepts. Detaching cancels them (the Session publishes presence offline
on its way out); attaching again starts them anew on the same journal, so a command cut off by the detach (a REBOOT)
is decided from the boot id, and one never started still runs. Devices run concurrently; one device's commands in
order.
"""

import asyncio
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from agent import __version__, process
from agent.android.logins import LoginsFile
from agent.config import AgentSettings
from agent.device import run_device
from agent.errors import HandlerError
from agent.handlers import capabilities
from agent.handlers.base import AnyHandler
from agent.platforms.android import AndroidPlatform
from shared.errors import TopicError
from shared.logs import about
from shared.messages import Announcement, utc_now
from shared.operations import OperationType, Platform
from shared.topics import validate_id
from shared.transport import BrokerUrl

log = logging.getLogger(__name__)

READY = "device"
"""The `adb devices` state of a device that accepts commands; `unauthorized`, `offline` and others do not."""
DEVICES_TIMEOUT_S = 10.0
"""The limit of one `adb devices -l`; the first one also starts the adb server, which takes about a second."""
RETRY_S = 30.0
"""How long a device that failed to start (getprop or the boot id failed) waits before it is tried again."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")


@dataclass(frozen=True, slots=True)
class AttachedDevice:
    """One line of `adb devices -l`: `SERIAL device usb:1-1 product:panther model:Pixel_7 transport_id:3`."""

    serial: str
    state: str
    details: Mapping[str, str] = field(default_factory=dict)


def parse_devices(text: str) -> list[AttachedDevice]:
    """The devices `adb devices -l` lists, skipping its header and the adb server's `* daemon ...` messages."""
    devices = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or line.startswith(("*", "List of devices")):
            continue
        serial, state = words[0], words[1]
        if state == "no":  # `no permissions (user not in plugdev group); see [URL]`
            state = "no permissions"
        details = {}
        if state == READY:
            details = dict(word.split(":", 1) for word in words[2:] if ":" in word)
        devices.append(AttachedDevice(serial, state, details))
    return devices


def device_id_for(serial: str, prefix: str) -> str:
    """`prefix` + the serial with every character a topic id cannot hold replaced by `_`; TopicError if still invalid.

    USB serials are letters and digits; `adb connect` serials (`192.168.1.5:5555`) and emulators (`emulator-5554`)
    are valid ids as they are.
    """
    return validate_id((prefix + _UNSAFE.sub("_", serial))[:128], "Android device id")


class AndroidBridge:
    def __init__(self, settings: AgentSettings, registry: Mapping[OperationType, AnyHandler]) -> None:
        self._settings = settings
        self._registry = registry
        self._running: dict[str, asyncio.Task[None]] = {}
        """Serial -> the task serving it, while attached."""
        self._stopping: dict[str, asyncio.Task[None]] = {}
        """Serial -> a cancelled task still saying goodbye; the serial is not started again before it has ended."""
        self._retry_at: dict[str, float] = {}
        self._noted: dict[str, str] = {}
        """What was last logged per serial (a state, or a problem), so that each is logged once, not every poll."""
        self._adb_problem: str | None = None
        self._logins = LoginsFile(settings.android_logins) if settings.android_logins else None
        self._passwords: dict[str, str] = {}
        """Serial -> the password from android_logins its running task logged in with."""

    async def run(self) -> None:
        """Poll `adb devices -l` forever; cancelling this stops every device (each publishes offline) first.

        Device tasks are kept here rather than in a TaskGroup: they come and go with the devices, and `_serve` never
        lets an exception out, so there is nothing a group would have to propagate.
        """
        log.info("managing Android devices attached over adb (%s)", self._settings.adb_path)
        host_login = self._settings.broker_url.username
        if self._logins is None and host_login is not None:
            log.warning(
                "Android devices connect with the host's broker login %s, which a broker with per-device logins "
                "(`tether broker acl`) refuses for them: give each device its own in an android_logins file",
                host_login,
            )
        try:
            while True:
                attached = await self._list_devices()
                if attached is not None:
                    self._update(attached)
                await asyncio.sleep(self._settings.android_poll_interval_s)
        finally:
            for serial in list(self._running):
                self._stop(serial)
            if self._stopping:
                await asyncio.wait(self._stopping.values())

    def _stop(self, serial: str) -> None:
        self._passwords.pop(serial, None)
        task = self._running.pop(serial)
        task.cancel()
        self._stopping[serial] = task

    async def _list_devices(self) -> list[AttachedDevice] | None:
        """The attached devices; None (change nothing) when adb itself fails, which is logged once per problem."""
        try:
            result = await process.check([self._settings.adb_path, "devices", "-l"], timeout=DEVICES_TIMEOUT_S)
        except HandlerError as err:
            if str(err) != self._adb_problem:
                log.warning("cannot list Android devices: %s", err)
                self._adb_problem = str(err)
            return None
        if self._adb_problem is not None:
            log.info("adb devices works again")
            self._adb_problem = None
        return parse_devices(result.stdout_tail)

    def _update(self, attached: list[AttachedDevice]) -> None:
        ready = {device.serial for device in attached if device.state == READY}
        present = {device.serial for device in attached}
        self._noted = {serial: what for serial, what in self._noted.items() if serial in present}
        for device in attached:
            if device.state != READY:
                message = f"Android device {device.serial} is {device.state}: not managed until it is `device`"
                self._note(device.serial, device.state, message)
        for serial in [serial for serial in self._running if serial not in ready]:
            log.info("Android device %s detached", serial)
            self._stop(serial)
        self._stop_changed_logins()
        self._stopping = {serial: task for serial, task in self._stopping.items() if not task.done()}
        now = time.monotonic()
        for serial, task in list(self._running.items()):
            if task.done():  # it failed to start, and said why
                del self._running[serial]
                self._passwords.pop(serial, None)
                self._retry_at[serial] = now + RETRY_S
        for serial in sorted(ready - self._running.keys() - self._stopping.keys()):
            if self._retry_at.get(serial, 0.0) > now:
                continue
            try:
                device_id = device_id_for(serial, self._settings.android_device_prefix)
            except TopicError as err:
                self._note(serial, "invalid id", f"Android device {serial} cannot be managed: {err}")
                continue
            if device_id in {task.get_name() for task in self._running.values()}:
                self._note(serial, "duplicate id", f"Android device {serial} would also be {device_id}: not managed")
                continue
            urls = self._broker_urls_for(serial, device_id)
            if urls is None:
                continue
            self._noted.pop(serial, None)
            self._retry_at.pop(serial, None)
            self._running[serial] = asyncio.create_task(self._serve(serial, device_id, urls), name=device_id)
            if urls[0].password is not None and self._logins is not None:
                self._passwords[serial] = urls[0].password

    def _stop_changed_logins(self) -> None:
        """Stop each device whose line in android_logins changed or went: it starts again (next poll) with its new
        login, or not at all, so a login taken out of the file takes its device offline."""
        if self._logins is None:
            return
        for serial, task in list(self._running.items()):
            password = self._logins.password(task.get_name())
            if password != self._passwords.get(serial):
                change = "changed" if password else "was removed"
                log.warning(
                    "the broker login of %s %s in %s: disconnecting it", task.get_name(), change, self._logins.path
                )
                self._stop(serial)

    def _broker_urls_for(self, serial: str, device_id: str) -> list[BrokerUrl] | None:
        """The broker's nodes and the login `device_id` connects with: its own from android_logins or, with no such
        file, the host's; None (named once) for a device the file has no login for."""
        urls = self._settings.broker_urls
        if self._logins is None:
            return urls
        password = self._logins.password(device_id)
        if password is None:
            message = (
                f"no broker login for {device_id} (Android device {serial}): run `tether broker acl --device "
                f"{device_id}` on the controller and add its `{device_id} <password>` line to {self._logins.path}"
            )
            self._note(serial, "no login", message)
            return None
        return [replace(url, username=device_id, password=password) for url in urls]

    def _note(self, serial: str, what: str, message: str) -> None:
        if self._noted.get(serial) != what:
            log.warning("%s", message)
            self._noted[serial] = what

    async def _serve(self, serial: str, device_id: str, urls: list[BrokerUrl]) -> None:
        """Run one device until cancelled; a failure to start is logged and ends the task (it is retried later)."""
        try:
            with about(device_id=device_id):
                await self._run_device(serial, device_id, urls)
        except HandlerError as err:
            log.warning("Android device %s (%s) could not start: %s; retrying in %g s", serial, device_id, err, RETRY_S)
        except Exception:  # one device's bug must not stop the bridge and every other device
            log.exception("Android device %s (%s) stopped unexpectedly", serial, device_id)

    async def _run_device(self, serial: str, device_id: str, urls: list[BrokerUrl]) -> None:
        settings = self._settings
        platform = AndroidPlatform(
            serial=serial, adb=settings.adb_path, tool_timeout=settings.tool_timeout_s, agent_unit=settings.agent_unit
        )
        survey = await platform.survey()
        announcement = Announcement(
            device_id=device_id,
            platform=Platform.ANDROID,
            agent_version=__version__,
            inventory=survey.inventory,
            time_zone=survey.time_zone,
            capabilities=capabilities(platform, self._registry),
            tags=settings.tags,
            groups=settings.groups,
            announced_at=utc_now(),
        )
        log.info("Android device %s attached as %s", serial, device_id)
        root = settings.state_dir / "android" / device_id
        await run_device(
            settings=settings,
            broker_urls=urls,
            platform=platform,
            announcement=announcement,
            root=root,
            registry=self._registry,
        )
