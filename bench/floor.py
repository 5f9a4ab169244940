"""The floor: the least a controller can do for one operation, with a raw fast client and nothing else.

It publishes one retained QoS 1 command per device (a payload shaped like Tether's), reads the devices' statuses and
clears each device's command once its final status arrives: exactly the messages Tether's protocol moves, with no
store, no validation and no API. The devices are the same `tether simulate` process the Tether run uses.
"""

import asyncio
import json
import time
import uuid
from dataclasses import dataclass

from controller.fastmqtt.client import FastClient
from controller.fastmqtt.codec import Publish
from shared.topics import TopicKind, Topics
from shared.transport import BrokerUrl

FINAL = (b'"SUCCESSFUL"', b'"FAILED"')


@dataclass(frozen=True, slots=True)
class FloorTimes:
    commands_acked_s: float
    """From the first publish until the broker acknowledged every command."""
    done_s: float
    """Until every device's final status arrived and every command was cleared."""
    statuses: int


def command_payload(device_id: str, command_id: str, operation_id: str) -> bytes:
    return json.dumps(
        {
            "command_id": command_id,
            "operation_id": operation_id,
            "device_id": device_id,
            "operation_type": "LOCK",
            "arguments": {},
            "issued_at": "2026-12-01T10:00:00.000Z",
            "start_before": "2026-12-02T10:00:00.000Z",
        }
    ).encode()


async def run_floor(url: BrokerUrl, device_ids: list[str], topics: Topics, timeout_s: float = 600) -> FloorTimes:
    operation_id = str(uuid.uuid4())
    finished: set[str] = set()
    statuses = 0
    all_final = asyncio.Event()
    client: FastClient | None = None

    def on_status(message: Publish) -> None:
        nonlocal statuses
        statuses += 1
        if client is None or not message.payload.endswith(b"}") or not any(f in message.payload for f in FINAL):
            return
        parsed = topics.parse(message.topic)
        if parsed.device_id not in finished and parsed.command_id is not None:
            finished.add(parsed.device_id)
            client.publish_soon(topics.command(parsed.device_id, parsed.command_id), b"", retain=True)
            if len(finished) == len(device_ids):
                all_final.set()

    client = await FastClient.connect(url.host, url.port, f"floor-{operation_id}", on_message=on_status)
    try:
        await client.subscribe([topics.fleet_filter(TopicKind.STATUS)])
        commands = [(d, str(uuid.uuid4())) for d in device_ids]
        payloads = [(topics.command(d, c), command_payload(d, c, operation_id)) for d, c in commands]
        async with asyncio.timeout(timeout_s):
            started = time.perf_counter()
            for topic, payload in payloads:
                await client.publish(topic, payload, retain=True)
            await client.flush()
            acked = time.perf_counter() - started
            await all_final.wait()
            await client.flush()
            done = time.perf_counter() - started
    finally:
        await client.close()
    return FloorTimes(acked, done, statuses)
