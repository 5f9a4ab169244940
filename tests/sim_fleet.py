"""Many simulated devices on one MQTT connection, speaking the real device contract, for tests that need a fleet.

Each device announces itself and is present; each command it receives (retained, QoS 1) is answered with PENDING,
EXECUTING and SUCCESSFUL statuses on that device's own topics, after `latency_s`. Devices listed in `failing` end
FAILED instead; those in `silent` never answer (a device that is offline, or hangs).
"""

import threading
import time
from collections import Counter

import paho.mqtt.client as mqtt

from shared.errors import TetherProtocolError
from shared.messages import Announcement, Command, Presence, StatusReport, decode, encode, utc_now
from shared.operations import DeviceStatus, OperationType, Platform, PresenceState
from shared.topics import TopicKind, Topics


class SimulatedFleet:
    def __init__(
        self,
        broker_url: str,
        device_ids: list[str],
        *,
        tags: tuple[str, ...] = (),
        latency_s: float = 0.0,
        failing: frozenset[str] = frozenset(),
        silent: frozenset[str] = frozenset(),
    ) -> None:
        self.device_ids = device_ids
        self._known = frozenset(device_ids)
        self.latency_s = latency_s
        self.failing = failing
        self.silent = silent
        self.runs: Counter[str] = Counter()
        """How many times each device ran a command: the exactly-once measure."""
        self._topics = Topics()
        self._lock = threading.Lock()
        host, port = broker_url.removeprefix("mqtt://").rsplit(":", 1)
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sim-fleet-{time.monotonic_ns()}")
        self._client.max_inflight_messages_set(1000)
        self._client.on_message = self._on_message
        self._client.connect(host, int(port))
        self._client.loop_start()
        self._client.subscribe(self._topics.fleet_filter(TopicKind.COMMAND), qos=1)
        for device_id in device_ids:
            announcement = Announcement(
                device_id=device_id,
                platform=Platform.LINUX,
                agent_version="sim",
                capabilities=[OperationType.RUN_SHELL_SCRIPT, OperationType.LOCK, OperationType.REBOOT],
                tags=list(tags),
                announced_at=utc_now(),
            )
            self._publish(self._topics.announce(device_id), encode(announcement), retain=True)
            presence = Presence(device_id=device_id, state=PresenceState.ONLINE)
            self._publish(self._topics.presence(device_id), encode(presence), retain=True)

    def _publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=1, retain=retain)

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        if not message.payload:
            return  # a cleared command
        try:
            parsed = self._topics.parse(message.topic)
            command = decode(Command, message.payload)
        except TetherProtocolError:
            return
        if command.device_id != parsed.device_id or parsed.device_id not in self._known:
            return
        if parsed.device_id in self.silent:
            return
        with self._lock:
            if self.runs[command.command_id]:
                return  # redelivered: a device runs a command id once
            self.runs[command.command_id] += 1
        threading.Thread(target=self._run, args=(command,), daemon=True).start()

    def _run(self, command: Command) -> None:
        self._report(command, DeviceStatus.PENDING)
        self._report(command, DeviceStatus.EXECUTING)
        time.sleep(self.latency_s)
        if command.device_id in self.failing:
            self._report(command, DeviceStatus.FAILED, reason="simulated failure")
        else:
            self._report(command, DeviceStatus.SUCCESSFUL)

    def _report(self, command: Command, status: DeviceStatus, reason: str | None = None) -> None:
        report = StatusReport(
            command_id=command.command_id,
            device_id=command.device_id,
            status=status,
            timestamp=utc_now(),
            result={"exit_code": 0, "stdout": "simulated\n"} if status is DeviceStatus.SUCCESSFUL else None,
            failure_reason=reason,
        )
        self._publish(self._topics.status(command.device_id, command.command_id), encode(report))

    def stop(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()
