"""Prometheus metrics of a running controller (`GET /metrics`).

Rates are counters the dispatcher and ingest increment as they go (Prometheus computes the rates); the state of
the fleet and of its operations is read off the store at scrape time, on one of the REST API's reading
connections, so a scrape never waits for the main loop nor holds up the API's.
"""

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.store import Store

LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class Metrics:
    """The controller's counters and histogram, in a registry of their own (one per controller)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._connected: Callable[[], bool] | None = None
        self.commands_published = Counter(
            "tether_commands_published", "Commands the broker acknowledged.", registry=self.registry
        )
        self.statuses_ingested = Counter(
            "tether_statuses_ingested", "Device statuses stored, by status.", ["status"], registry=self.registry
        )
        self.statuses_rejected = Counter(
            "tether_statuses_rejected",
            "Device statuses refused (unknown command, wrong device, regression).",
            registry=self.registry,
        )
        self.command_latency = Histogram(
            "tether_command_latency_seconds",
            "From a command's dispatch to its device's final status, as the controller saw both.",
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )

    def watch(self, connected: Callable[[], bool]) -> None:
        """Also report the store's state, read at scrape time, and whether the broker connection is up."""
        self._connected = connected

    def exposition(self, store: Store) -> bytes:
        """The counters and histogram; once watched, also the fleet's state read from `store` now."""
        if self._connected is None:
            return generate_latest(self.registry)
        # A registry per scrape: the collector reads through the connection of the thread the scrape runs on.
        fleet = CollectorRegistry(auto_describe=True)
        fleet.register(_StoreCollector(store, self._connected))
        return generate_latest(self.registry) + generate_latest(fleet)


class _StoreCollector(Collector):
    def __init__(self, store: Store, connected: Callable[[], bool]) -> None:
        self._store = store
        self._connected = connected

    def collect(self) -> Iterator[Metric]:
        snapshot = self._store.operations.fleet_snapshot()
        operations = GaugeMetricFamily("tether_operations", "Operations by state.", labels=["state"])
        for state, count in sorted(snapshot.operations_by_state.items()):
            operations.add_metric([state], count)
        yield operations
        devices = GaugeMetricFamily(
            "tether_device_commands", "Device commands of unfinished operations, by status.", labels=["status"]
        )
        for status, count in sorted(snapshot.unfinished_commands.items()):
            devices.add_metric([status], count)
        yield devices
        yield GaugeMetricFamily("tether_devices", "Registered devices.", value=snapshot.devices)
        yield GaugeMetricFamily("tether_devices_online", "Devices whose presence is online.", value=snapshot.online)
        yield GaugeMetricFamily(
            "tether_broker_connected",
            "1 while the controller is connected to the broker.",
            value=1 if self._connected() else 0,
        )
