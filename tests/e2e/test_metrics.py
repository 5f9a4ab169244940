"""/healthz, /readyz and /metrics on a running controller with a real agent and broker."""

from pathlib import Path

import httpx

from tests.e2e.harness import Agent, Controller, PersistentMosquitto, wait_for


def samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value, from a Prometheus text exposition."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def test_metrics_count_what_happened_and_readiness_follows_the_broker(tmp_path: Path) -> None:
    broker = PersistentMosquitto(tmp_path / "mosquitto").start()
    controller = Controller(tmp_path, broker.url)
    agent = Agent(tmp_path, broker.url, "metered")
    plain = httpx.Client(base_url=f"http://127.0.0.1:{controller.http_port}")  # no key
    try:
        controller.wait_online("metered")
        assert plain.get("/healthz").json() == {"status": "ok"}
        assert plain.get("/readyz").status_code == 200
        assert plain.get("/metrics").status_code == 401  # a read key, as for every other read

        for _ in range(2):
            created = controller.create({"operation_type": "LOCK", "operation_device_query": {"device_id": "metered"}})
            assert controller.wait_finished(created["id"])["state"] == "COMPLETED"
        answer = controller.http.get("/metrics")
        assert answer.headers["content-type"].startswith("text/plain")
        found = samples(answer.text)
        assert found['tether_operations{state="COMPLETED"}'] == 2
        assert found['tether_operations{state="FAILED"}'] == 0
        assert found["tether_commands_published_total"] == 2
        assert found['tether_statuses_ingested_total{status="SUCCESSFUL"}'] == 2
        assert found['tether_statuses_ingested_total{status="PENDING"}'] >= 1  # merged with EXECUTING at times
        assert found["tether_command_latency_seconds_count"] == 2
        assert found['tether_command_latency_seconds_bucket{le="+Inf"}'] == 2
        assert found["tether_devices"] == 1
        assert found["tether_devices_online"] == 1
        assert found["tether_broker_connected"] == 1
        assert found['tether_device_commands{status="executing"}'] == 0

        broker.stop()
        wait_for("/readyz to say the broker is gone", lambda: plain.get("/readyz").status_code == 503)
        assert plain.get("/readyz").json() == {"status": "not connected to the MQTT broker"}
        assert plain.get("/healthz").status_code == 200
        broker.start()
        wait_for("/readyz to recover", lambda: plain.get("/readyz").status_code == 200, timeout=30)
    finally:
        plain.close()
        agent.stop()
        controller.stop()
        broker.stop()
