"""Listing latency on a large store: `GET /v0/operations/` and friends with 1,000,000 stored device results.

Fills a fresh database through the controller's own store (devices announced, operations resolved, every device's
SUCCESSFUL status applied as ingest would), then starts a real `tether serve` on it and times each listing
`--requests` times, sequentially. Run by hand: `python -m bench.listing` (`--operations 10 --devices 100000`).
"""

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.fleet import percentile
from bench.fleet_store import announce, dispatching_lock
from controller.completion import finish_if_done
from controller.store import Store
from shared.messages import StatusReport, utc_now
from shared.operations import DeviceStatus
from tests.e2e.harness import Controller

STATUS_BATCH = 10_000


def fill(store: Store, operations: int, devices: int) -> list[str]:
    """`operations` LOCK operations to the same `devices` devices, each finished with every device SUCCESSFUL."""
    now = utc_now()
    device_ids = [f"dev-{n:07d}" for n in range(devices)]
    announce(store, device_ids)
    created = []
    for _ in range(operations):
        operation_id, commands = dispatching_lock(store, device_ids)
        for start in range(0, len(commands), STATUS_BATCH):
            reports = [
                (
                    device_id,
                    StatusReport(
                        command_id=command_id, device_id=device_id, status=DeviceStatus.SUCCESSFUL, timestamp=now
                    ),
                )
                for device_id, command_id in commands[start : start + STATUS_BATCH]
            ]
            outcome = store.commands.apply_statuses(reports)
            # Never published here, so there is nothing to clear: left uncleared, the controller would spend the
            # measurement clearing a million retained messages.
            store.commands.mark_cleared([command_id for _, command_id in outcome.to_clear])
        assert finish_if_done(store, operation_id), operation_id
        created.append(operation_id)
    return created


def timed(requests: int, call: Callable[[], None]) -> list[float]:
    latencies = []
    for _ in range(requests):
        started = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--operations", type=int, default=10)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        store = Store(work / "tether.db")
        operation_ids = fill(store, args.operations, args.devices)
        store.close()
        stored = args.operations * args.devices
        print(f"stored {stored:,} device results in {time.perf_counter() - started:.1f} s")
        controller = Controller(work)
        try:
            last = operation_ids[-1]
            middle = args.devices // 2
            listings: dict[str, tuple[str, dict[str, int]]] = {
                "GET /v0/operations/": ("/v0/operations/", {}),
                "GET /v0/operations/{id}/": (f"/v0/operations/{last}/", {}),
                "GET /v0/operations/{id}/devices/ (first page)": (f"/v0/operations/{last}/devices/", {}),
                f"GET /v0/operations/{{id}}/devices/ (offset {middle:,})": (
                    f"/v0/operations/{last}/devices/",
                    {"offset": middle},
                ),
                "GET /devicecontrol/operations (first page)": ("/devicecontrol/operations", {}),
            }
            for name, (path, params) in listings.items():

                def call(path: str = path, params: dict[str, int] = params) -> None:
                    controller.http.get(path, params=params).raise_for_status()

                latencies = timed(args.requests, call)
                print(
                    f"{name:50} p50 {statistics.median(latencies):6.1f} ms  p99 {percentile(latencies, 0.99):6.1f} ms"
                    f"  max {max(latencies):6.1f} ms"
                )
        finally:
            controller.stop()


if __name__ == "__main__":
    main()
