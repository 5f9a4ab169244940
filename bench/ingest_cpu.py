"""CPU cost of ingesting one status, without the broker: what bounds statuses/s when the controller is CPU-bound.

Builds a fresh store with one LOCK operation to `--devices` devices, dispatched, then feeds each device's PENDING,
EXECUTING and SUCCESSFUL status (the simulator's payloads, in its order) through the two stages ingest runs:
parsing (`parse_received`, on the event loop) and storing (`store_received`, a batch at a time, as on the store
thread), and prints the CPU microseconds per status of each. Run by hand: `python -m bench.ingest_cpu`
(`--devices 30000 --rounds 3`).
"""

import argparse
import tempfile
import time
from pathlib import Path

from bench.fleet_store import announce, dispatching_lock
from controller.fastmqtt.codec import Publish
from controller.ingest import MAX_BATCH, parse_received, store_received
from controller.simulator import result_of, status_payload
from controller.store import Store
from controller.store.commands import delivery_deadline
from shared.messages import StatusReport
from shared.operations import DeviceStatus
from shared.topics import Topics


def dispatched_operation(store: Store, devices: int) -> list[tuple[str, str]]:
    """(device id, command id) of a LOCK operation to `devices` announced devices, every command dispatched."""
    device_ids = [f"sim-{n:06d}" for n in range(devices)]
    announce(store, device_ids)
    _, commands = dispatching_lock(store, device_ids)
    deadline = delivery_deadline(600, None)  # as dispatch records it: no status is late during the measurement
    store.commands.mark_dispatched([(command_id, deadline) for _, command_id in commands])
    return commands


def status_messages(topics: Topics, commands: list[tuple[str, str]]) -> list[Publish]:
    """What the simulator publishes for `commands`: every device's PENDING, EXECUTING and SUCCESSFUL, in that order."""
    lifecycle = ((DeviceStatus.PENDING, None), (DeviceStatus.EXECUTING, None), (DeviceStatus.SUCCESSFUL, "LOCK"))
    return [
        Publish(
            topics.status(device_id, command_id),
            status_payload(device_id, command_id, status, result=None if kind is None else result_of(kind, {}, 0.01)),
            1,
            False,
            False,
            packet_id,
        )
        for packet_id, (status, kind) in enumerate(lifecycle, start=1)
        for device_id, command_id in commands
    ]


def measure(devices: int) -> tuple[float, float]:
    """CPU µs per status to parse and to store, on one fresh store."""
    topics = Topics()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "tether.db")
        messages = status_messages(topics, dispatched_operation(store, devices))
        started = time.process_time()
        received = [parse_received(topics, message) for message in messages]
        parse_s = time.process_time() - started
        statuses = [(item[0], item[1]) for item in received if item is not None and isinstance(item[1], StatusReport)]
        assert len(statuses) == len(messages), "every status parses"
        started = time.process_time()
        for start in range(0, len(statuses), MAX_BATCH):
            store_received(store, statuses[start : start + MAX_BATCH], [], [])
        store_s = time.process_time() - started
        successful = store.conn.execute("SELECT count(*) FROM device_operations WHERE status = 'SUCCESSFUL'")
        assert successful.fetchone()[0] == devices, "every device's final status is stored"
        store.close()
    return parse_s / len(messages) * 1e6, store_s / len(messages) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for round_number in range(1, args.rounds + 1):
        parse_us, store_us = measure(args.devices)
        print(
            f"round {round_number}: {3 * args.devices:,} statuses: parse {parse_us:5.1f} µs, store {store_us:5.1f} µs,"
            f" total {parse_us + store_us:5.1f} µs of CPU per status ({1e6 / (parse_us + store_us):,.0f}/s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
