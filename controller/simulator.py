"""`tether simulate`: a fleet of simulated devices speaking the real device contract, for load and for trying Tether.

Every device has its own topics, announcement and presence, and answers each command it is sent (once per command
id, as an agent does) with PENDING, EXECUTING and, after a latency, SUCCESSFUL with a result of the command's kind
or FAILED. Devices share a few connections so that one process can simulate 100,000 of them; with
`connection_per_device` each has its own, with its presence as the last will, as real agents do.
"""

import asyncio
import contextlib
import dataclasses
import json
import logging
import resource
import signal
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from controller.clock import now_iso
from controller.errors import StartupError
from controller.fastmqtt.client import ConnectionLost, FastClient
from controller.fastmqtt.codec import Publish, Will
from shared.errors import TopicError
from shared.messages import Announcement, Presence, encode
from shared.operations import DeviceStatus, OperationType, Platform, PresenceState
from shared.topics import TopicKind, Topics, agent_client_id
from shared.transport import BrokerUrl

log = logging.getLogger(__name__)

AGENT_VERSION = "simulated"
CAPABILITIES = (
    OperationType.REBOOT,
    OperationType.LOCK,
    OperationType.RUN_SHELL_SCRIPT,
    OperationType.SET_WIFI_STATE,
    OperationType.SET_TIMEZONE,
    OperationType.UPDATE_DEVICE_CONFIG,
    OperationType.RUN_CUSTOM_ACTION,
)


@dataclass(frozen=True, slots=True)
class FleetSpec:
    devices: int
    id_prefix: str = "sim-"
    tags: tuple[str, ...] = ()
    latency_s: float = 0.0
    failure_share: float = 0.0
    seed: int = 0
    connections: int = 1
    connection_per_device: bool = False

    def device_ids(self) -> list[str]:
        width = max(6, len(str(self.devices - 1)))
        return [f"{self.id_prefix}{n:0{width}d}" for n in range(self.devices)]

    def fails(self, command_id: str) -> bool:
        """Whether this command fails: a fixed share of commands, the same ones for the same seed."""
        return zlib.crc32(f"{self.seed}/{command_id}".encode()) / 2**32 < self.failure_share


@dataclass(slots=True)
class FleetCounts:
    commands: int = 0
    duplicates: int = 0
    cancelled: int = 0
    statuses: int = 0
    malformed: int = 0
    runs_per_device: Counter[str] = field(default_factory=Counter)
    """Distinct commands each device ran: a controller that sends a command twice shows up here as 2."""


def result_of(operation_type: str, arguments: dict[str, object], duration_s: float) -> dict[str, object]:
    """A plausible SUCCESSFUL result for a simulated command of `operation_type`."""
    if operation_type == OperationType.RUN_SHELL_SCRIPT:
        return {
            "exit_code": 0,
            "stdout": "simulated\n",
            "stderr": "",
            "stdout_truncated": False,
            "stderr_truncated": False,
            "duration_s": round(duration_s, 3),
        }
    if operation_type == OperationType.RUN_CUSTOM_ACTION:
        return {"action": arguments.get("action"), "exit_code": 0, "stdout": "simulated\n", "stderr": ""}
    return {"simulated": True}


def status_payload(
    device_id: str,
    command_id: str,
    status: DeviceStatus,
    *,
    result: dict[str, object] | None = None,
    reason: str | None = None,
) -> bytes:
    """A StatusReport as the simulator publishes it, timestamped now."""
    # Built with json, not pydantic: at 300,000 statuses a run the model's cost would make this the bottleneck.
    report: dict[str, object] = {
        "command_id": command_id,
        "device_id": device_id,
        "status": status,
        "timestamp": now_iso(),
    }
    if result is not None:
        report["result"] = result
    if reason is not None:
        report["failure_reason"] = reason
    return json.dumps(report).encode()


class SimulatedFleet:
    def __init__(self, url: BrokerUrl, spec: FleetSpec, topics: Topics) -> None:
        self._url = url
        self._spec = spec
        self._topics = topics
        self._device_ids = spec.device_ids()
        self._known = frozenset(self._device_ids)
        self._clients: list[FastClient] = []
        self._client_of: dict[str, FastClient] = {}
        self._seen: set[str] = set()
        self._running: dict[str, asyncio.TimerHandle] = {}
        self.counts = FleetCounts()

    @property
    def connections(self) -> int:
        return len(self._clients)

    async def start(self) -> None:
        """Connect, subscribe each device to its own commands and cancellations, announce and go online."""
        if self._spec.connection_per_device:
            for device_id in self._device_ids:
                client = await self._connect(agent_client_id(device_id), [device_id])
                self._client_of[device_id] = client
        else:
            count = max(1, min(self._spec.connections, len(self._device_ids)))
            for index in range(count):
                mine = self._device_ids[index::count]
                client = await self._connect(f"tether-simulator-{self._spec.id_prefix}{index}", mine)
                self._client_of.update(dict.fromkeys(mine, client))
        for device_id in self._device_ids:
            client = self._client_of[device_id]
            await client.publish(self._topics.announce(device_id), encode(self._announcement(device_id)), retain=True)
            await client.publish(self._topics.presence(device_id), self._presence(device_id, True), retain=True)
        for client in self._clients:
            await client.flush()

    async def _connect(self, client_id: str, device_ids: list[str]) -> FastClient:
        will = None
        if self._spec.connection_per_device:
            (device_id,) = device_ids
            will = Will(self._topics.presence(device_id), self._presence(device_id, False), qos=1, retain=True)
        client = await FastClient.connect(
            self._url.host,
            self._url.port,
            client_id,
            on_message=self._on_message,
            username=self._url.username,
            password=self._url.password,
            will=will,
        )
        self._clients.append(client)
        await client.subscribe([topic for d in device_ids for topic in self._topics.device_filters(d)])
        return client

    def _announcement(self, device_id: str) -> Announcement:
        return Announcement(
            device_id=device_id,
            platform=Platform.LINUX,
            agent_version=AGENT_VERSION,
            inventory={"hostname": device_id, "simulated": True},
            time_zone="UTC",
            capabilities=list(CAPABILITIES),
            tags=list(self._spec.tags),
            announced_at=datetime.now(UTC),
        )

    @staticmethod
    def _presence(device_id: str, online: bool) -> bytes:
        return encode(Presence(device_id=device_id, state=PresenceState.ONLINE if online else PresenceState.OFFLINE))

    async def stop(self) -> None:
        """Go offline (clean disconnects leave no will, so say it) and disconnect."""
        for handle in self._running.values():
            handle.cancel()
        for device_id in self._device_ids:
            client = self._client_of[device_id]
            if not client.closed.done():
                await client.publish(self._topics.presence(device_id), self._presence(device_id, False), retain=True)
        for client in self._clients:
            if not client.closed.done():
                await client.flush()
                await client.close()

    # -- the device side of the contract --------------------------------------------------------------------------

    def _on_message(self, message: Publish) -> None:
        if not message.payload:
            return  # a cleared command
        try:
            parsed = self._topics.parse(message.topic)
            body = json.loads(message.payload)
            command_id, device_id = body["command_id"], body["device_id"]
        except (TopicError, ValueError, KeyError, TypeError):
            self.counts.malformed += 1
            return
        if device_id != parsed.device_id or command_id != parsed.command_id or device_id not in self._known:
            self.counts.malformed += 1
        elif parsed.kind is TopicKind.COMMAND:
            self._run(device_id, command_id, body)
        elif parsed.kind is TopicKind.CANCEL:
            self._cancel(device_id, command_id, str(body.get("reason") or "cancelled"))

    def _run(self, device_id: str, command_id: str, body: dict[str, object]) -> None:
        if command_id in self._seen:
            self.counts.duplicates += 1  # a redelivered or retained command: a command id runs once
            return
        self._seen.add(command_id)
        self.counts.commands += 1
        self.counts.runs_per_device[device_id] += 1
        self._report(device_id, command_id, DeviceStatus.PENDING)
        self._report(device_id, command_id, DeviceStatus.EXECUTING)
        started = time.monotonic()
        arguments = body.get("arguments")
        details = (str(body.get("operation_type")), arguments if isinstance(arguments, dict) else {}, started)
        self._running[command_id] = asyncio.get_running_loop().call_later(
            self._spec.latency_s, self._finish, device_id, command_id, details
        )

    def _finish(self, device_id: str, command_id: str, details: tuple[str, dict[str, object], float]) -> None:
        self._running.pop(command_id, None)
        operation_type, arguments, started = details
        if self._spec.fails(command_id):
            self._report(device_id, command_id, DeviceStatus.FAILED, reason=f"simulated failure of {operation_type}")
        else:
            result = result_of(operation_type, arguments, time.monotonic() - started)
            self._report(device_id, command_id, DeviceStatus.SUCCESSFUL, result=result)

    def _cancel(self, device_id: str, command_id: str, reason: str) -> None:
        handle = self._running.pop(command_id, None)
        if handle is not None:
            handle.cancel()
            self.counts.cancelled += 1
            self._report(device_id, command_id, DeviceStatus.FAILED, reason=reason)

    def _report(
        self,
        device_id: str,
        command_id: str,
        status: DeviceStatus,
        *,
        result: dict[str, object] | None = None,
        reason: str | None = None,
    ) -> None:
        client = self._client_of[device_id]
        if not client.closed.done():
            self.counts.statuses += 1
            payload = status_payload(device_id, command_id, status, result=result, reason=reason)
            client.publish_soon(self._topics.status(device_id, command_id), payload)


async def simulate(
    url: BrokerUrl,
    spec: FleetSpec,
    topics: Topics,
    *,
    stop: asyncio.Event,
    report: Callable[[FleetCounts], None],
    report_every_s: float = 5.0,
) -> FleetCounts:
    """Run the fleet until `stop` is set, calling `report` every `report_every_s` and once at the end."""
    fleet = SimulatedFleet(url, spec, topics)
    await fleet.start()
    log.info("%d simulated device(s) online on %d connection(s)", spec.devices, fleet.connections)
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(report_every_s):
                    await stop.wait()
            report(fleet.counts)
    finally:
        await fleet.stop()
    return fleet.counts


def run_simulation(
    url: BrokerUrl, spec: FleetSpec, topic_prefix: str, duration_s: float | None, stats_file: Path | None
) -> None:
    """`tether simulate`: until SIGINT, SIGTERM or `duration_s`; the counts go to the log and to `stats_file`."""

    async def main() -> FleetCounts:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        if duration_s is not None:
            loop.call_later(duration_s, stop.set)
        return await simulate(url, spec, Topics(topic_prefix), stop=stop, report=_log_counts)

    _raise_open_files_limit(spec)
    try:
        counts = asyncio.run(main())
    except ConnectionLost as err:
        raise StartupError(f"simulator: {err}") from err
    _log_counts(counts)
    if stats_file is not None:
        # Not dataclasses.asdict: it would rebuild the Counter from (key, value) pairs and count the pairs.
        written = {f.name: getattr(counts, f.name) for f in dataclasses.fields(counts)}
        stats_file.write_text(json.dumps(written, indent=2, sort_keys=True) + "\n")


def _log_counts(counts: FleetCounts) -> None:
    log.info(
        "%d command(s) run, %d status(es) sent, %d duplicate(s) ignored, %d cancelled, %d malformed",
        counts.commands,
        counts.statuses,
        counts.duplicates,
        counts.cancelled,
        counts.malformed,
    )


def _raise_open_files_limit(spec: FleetSpec) -> None:
    """A connection per device needs a descriptor each: raise the soft limit to the hard one if that is short."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = spec.devices + 100 if spec.connection_per_device else spec.connections + 100
    if needed > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(needed, soft)), hard))
