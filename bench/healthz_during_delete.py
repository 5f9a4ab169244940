"""`GET /healthz` and a small GET while one request does long database work: does the API keep answering?

Registers `--devices` devices (as `bench.healthz_during_resolve` does), starts a real `tether serve`, creates a LOCK
for every device in a window that opens tomorrow (one device operation each, resolved, none dispatched), then times
a long request while two probes ask every `--interval-ms`: `/healthz` (no key, no database) and
`GET /v0/devices/<one>/` (a key looked up, one row read). The long request is, in turn:

- `read`: `GET /devicecontrol/operations?pageSize=2000&withTotalElements=true`, the largest page, counted;
- `delete`: `DELETE /devicecontrol/operations`, which ends every one of the device operations.

    python -m bench.healthz_during_delete                     # 100,000 devices
"""

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.fleet import broker, percentile
from bench.healthz_during_resolve import register
from tests.e2e.harness import Controller, HealthProbe

LONG = {
    "read": ("GET", "/devicecontrol/operations?pageSize=2000&withTotalElements=true&currentPage=40"),
    "delete": ("DELETE", "/devicecontrol/operations"),
}


def summary(name: str, latencies_s: list[float]) -> str:
    ms = [latency * 1000 for latency in latencies_s]
    return (
        f"{name} p50 {statistics.median(ms):.1f} ms p99 {percentile(ms, 0.99):.1f} ms max {max(ms):.1f} ms "
        f"({len(ms)} checks)"
    )


def measure(controller: Controller, kind: str, interval_s: float) -> str:
    method, path = LONG[kind]
    health = HealthProbe(controller, interval_s)
    device = HealthProbe(controller, interval_s, path="/v0/devices/dev-0000000/")
    health.start()
    device.start()
    time.sleep(0.5)  # both probes' connections open and warm
    started = time.monotonic()
    response = controller.http.request(method, path, timeout=600)
    ended = time.monotonic()
    health.stop()
    device.stop()
    assert response.status_code in (200, 204), response.text
    return (
        f"{kind}: {method} {path} took {ended - started:.2f} s | meanwhile "
        f"{summary('/healthz', health.latencies_between(started, ended))}; "
        f"{summary('GET device', device.latencies_between(started, ended))}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--interval-ms", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, broker("amqtt", Path(tmp)) as url:
        work = Path(tmp)
        register(work / "tether.db", args.devices)
        controller = Controller(work, url)
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        later = tomorrow + timedelta(hours=1)
        try:
            created = controller.http.post(
                "/v0/operations/",
                json={
                    "operation_type": "LOCK",
                    "operation_device_query": {"all": True},
                    "schedule_type": "WINDOW",
                    "schedule_args": {"start_datetime": tomorrow.isoformat(), "end_datetime": later.isoformat()},
                },
                timeout=600,
            )
            assert created.status_code == 201, created.text
            for kind in ("read", "delete"):
                print(measure(controller, kind, args.interval_ms / 1000), flush=True)
        finally:
            controller.stop()


if __name__ == "__main__":
    main()
