"""`GET /healthz` while `POST /v0/operations/` resolves `{"all": true}` for a large fleet: does the API keep answering?

Registers `--devices` devices through the controller's own store (as `bench.listing` fills its database), starts a
real `tether serve` on it (embedded broker unless `--broker mosquitto`), then POSTs a LOCK to every device while a
second client asks `/healthz` every `--interval-ms`. It prints how long the POST took to answer (at once, in state
CREATED, for a fleet larger than the scheduler's LARGE_QUERY) and the operation to read RESOLVED, and the latency of
the health checks sent until then: p50, p99, max and how many. `--store postgresql` runs it on a private, durable
PostgreSQL.

    python -m bench.healthz_during_resolve                    # 100,000 devices
    python -m bench.healthz_during_resolve --devices 10000 --runs 3
    python -m bench.healthz_during_resolve --store postgresql
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.fleet import broker, database, percentile
from bench.fleet_store import announce
from controller.store import Store
from tests.e2e.harness import Controller, HealthProbe

BATCH = 10_000
"""Devices announced per transaction while filling the database."""


def register(db: Path | str, devices: int) -> None:
    store = Store(db)
    try:
        for start in range(0, devices, BATCH):
            announce(store, [f"dev-{n:07d}" for n in range(start, min(start + BATCH, devices))])
    finally:
        store.close()


def measure(controller: Controller, interval_s: float) -> tuple[float, float, list[float], int]:
    """The POST's seconds, the seconds until the operation read RESOLVED, the health checks' latencies meanwhile,
    and how many devices it resolved to."""
    probe = HealthProbe(controller, interval_s)
    probe.start()
    time.sleep(0.5)  # the probe's connection is open and warm before the POST
    started = time.monotonic()
    response = controller.http.post(
        "/v0/operations/", json={"operation_type": "LOCK", "operation_device_query": {"all": True}}, timeout=600
    )
    answered = time.monotonic()
    assert response.status_code == 201, response.text
    operation = response.json()["content"]
    while operation["state"] in ("CREATED", "RESOLVING"):
        time.sleep(0.05)
        operation = controller.get(f"/v0/operations/{operation['id']}/")
    ended = time.monotonic()
    probe.stop()
    assert operation["state"] in ("RESOLVED", "DISPATCHING"), operation["state"]
    resolved = operation["operation_stats"]["device_operation_statuses_count"]["resolved_device_count"]
    latencies = [latency * 1000 for latency in probe.latencies_between(started, ended)]
    return answered - started, ended - started, latencies, resolved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1, help="Operations created one after another.")
    parser.add_argument("--interval-ms", type=float, default=10.0)
    parser.add_argument("--broker", choices=["amqtt", "mosquitto"], default="amqtt")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        broker(args.broker, Path(tmp)) as url,
        database(args.store, Path(tmp)) as server,
    ):
        work = Path(tmp)
        db_url = None if server is None else server.create_database().url
        started = time.perf_counter()
        register(db_url or work / "tether.db", args.devices)
        print(f"registered {args.devices:,} devices in {time.perf_counter() - started:.1f} s")
        controller = Controller(work, url, database=db_url)
        try:
            for run in range(1, args.runs + 1):
                answer_s, resolve_s, latencies, resolved = measure(controller, args.interval_ms / 1000)
                print(
                    f"run {run}: POST {{'all': true}} answered in {answer_s:.2f} s, "
                    f"resolved {resolved:,} devices in {resolve_s:.2f} s | "
                    f"/healthz meanwhile: p50 {statistics.median(latencies):.1f} ms"
                    f" p99 {percentile(latencies, 0.99):.1f} ms max {max(latencies):.1f} ms ({len(latencies)} checks)",
                    flush=True,
                )
        finally:
            controller.stop()


if __name__ == "__main__":
    main()
