"""One-device LOCK from POST to COMPLETED, sequentially: the latency an operator feels for a single command.

Runs `tether serve` and one `tetherd` (with a recording fake `loginctl`, never the real one) as real processes on a
private broker on 127.0.0.1, then prints p50/p90/p99/max. Run by hand: `python -m bench.lock_latency --count 1000`.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.fleet import broker
from tests.e2e.harness import Agent, Controller


def measure(count: int, kind: str) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp, broker(kind, Path(tmp)) as url:
        work = Path(tmp)
        controller = Controller(work, broker_url=url)
        agent = Agent(work, controller.broker_url, "bench-1")
        try:
            controller.wait_online("bench-1")
            body = {"operation_type": "LOCK", "operation_device_query": {"device_id": "bench-1"}}
            latencies = []
            for _ in range(count):
                started = time.perf_counter()
                operation_id = controller.create(body)["id"]
                while True:
                    state = controller.http.get(f"/v0/operations/{operation_id}/").json()["content"]["state"]
                    if state in ("COMPLETED", "FAILED"):
                        break
                    time.sleep(0.001)
                latencies.append((time.perf_counter() - started) * 1000)
                assert state == "COMPLETED", operation_id
            assert len(agent.tools.calls("loginctl")) == count
            return latencies
        finally:
            agent.stop()
            controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--broker", choices=["mosquitto", "amqtt"], action="append")
    args = parser.parse_args()
    for kind in args.broker or ["mosquitto", "amqtt"]:
        latencies = sorted(measure(args.count, kind))

        def at(share: float, values: list[float] = latencies) -> float:
            return values[min(len(values) - 1, int(share * len(values)))]

        print(
            f"{kind:9} n={len(latencies)} p50={statistics.median(latencies):.1f} ms p90={at(0.9):.1f} ms "
            f"p99={at(0.99):.1f} ms max={latencies[-1]:.1f} ms"
        )


if __name__ == "__main__":
    main()
