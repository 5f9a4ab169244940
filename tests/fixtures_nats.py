"""Pytest fixture that runs a private three-node NATS cluster, JetStream and an MQTT listener on each, on free ports."""

import json
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from controller.fastmqtt.codec import DISCONNECT, Connack, Decoder, Packet, encode_connect
from tests.prerequisites import executable

NODES = 3
CLUSTER = "tether"
_READY_TIMEOUT_S = 30.0
_KILL_TIMEOUT_S = 10.0
_CONNACK_TIMEOUT_S = 10.0
"""A node's first MQTT client waits while it creates its JetStream streams: about 2 s here."""


def free_ports(count: int) -> list[int]:
    """`count` different free TCP ports on 127.0.0.1: all held open while drawn, so no two can be the same."""
    with ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]


@dataclass
class NatsNode:
    """One nats-server of the cluster: its ports, its files, and its process while it runs."""

    name: str
    directory: Path
    client_port: int
    route_port: int
    mqtt_port: int
    monitor_port: int
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    @property
    def config(self) -> Path:
        return self.directory / "nats.conf"

    @property
    def log(self) -> Path:
        return self.directory / "nats.log"

    def write_config(self, routes: list[int]) -> None:
        # MQTT in nats-server keeps sessions, retained messages and QoS 1 messages in JetStream streams, which need
        # JetStream, a server_name per node and a named cluster. stream_replicas and consumer_replicas 3: every
        # stream and consumer on all three nodes, so any one of them may die without losing a session or a message.
        route_urls = ", ".join(f"nats-route://127.0.0.1:{port}" for port in routes)
        self.config.write_text(
            f"server_name: {self.name}\n"
            f"listen: 127.0.0.1:{self.client_port}\n"
            f"http: 127.0.0.1:{self.monitor_port}\n"
            f'jetstream {{ store_dir: "{self.directory / "jetstream"}", '
            "max_memory_store: 64MB, max_file_store: 1GB }\n"
            f"cluster {{ name: {CLUSTER}, listen: 127.0.0.1:{self.route_port}, routes: [{route_urls}] }}\n"
            f"mqtt {{ listen: 127.0.0.1:{self.mqtt_port}, stream_replicas: {NODES}, consumer_replicas: {NODES} }}\n"
        )

    def monitor(self, endpoint: str) -> dict[str, object] | None:
        """A monitoring endpoint's JSON, or None while the node cannot answer it (not up, JetStream not current)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/{endpoint}", timeout=1) as response:
                answer: dict[str, object] = json.load(response)
                return answer
        except (OSError, json.JSONDecodeError):  # HTTPError (503 while not ready) is an OSError too
            return None

    def accepts_mqtt(self) -> bool:
        """Whether an MQTT 3.1.1 CONNECT gets an accepting CONNACK, which needs this node's JetStream ready."""
        try:
            with socket.create_connection(("127.0.0.1", self.mqtt_port), timeout=_CONNACK_TIMEOUT_S) as conn:
                conn.sendall(encode_connect(f"probe-{self.name}-{time.monotonic_ns()}"))
                decoder = Decoder()
                packets: list[Packet] = []
                while not packets:
                    data = conn.recv(64)
                    if not data:
                        return False
                    packets = decoder.feed(data)
                conn.sendall(DISCONNECT)
        except OSError:
            return False
        return isinstance(packets[0], Connack) and packets[0].return_code == 0


class NatsCluster:
    """Three nats-server processes routed to each other; a test may SIGKILL a node and start it again."""

    def __init__(self, binary: Path, directory: Path) -> None:
        self.binary = binary
        ports = free_ports(4 * NODES)
        self.nodes = [
            NatsNode(f"n{index + 1}", directory / f"n{index + 1}", *ports[4 * index : 4 * index + 4])
            for index in range(NODES)
        ]
        routes = [node.route_port for node in self.nodes]
        for node in self.nodes:
            node.directory.mkdir(parents=True)
            node.write_config(routes)

    @property
    def mqtt_urls(self) -> list[str]:
        return [node.mqtt_url for node in self.nodes]

    def start(self, index: int) -> None:
        """Start node `index` (0-based), on the ports and JetStream store it had; wait with `wait_ready`."""
        node = self.nodes[index]
        assert node.process is None, f"{node.name} is already running"
        with node.log.open("ab") as log:
            node.process = subprocess.Popen(
                [str(self.binary), "-c", str(node.config)], stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )

    def kill(self, index: int) -> None:
        """SIGKILL node `index`: no goodbye to its routes or clients, as when a machine dies."""
        node = self.nodes[index]
        assert node.process is not None, f"{node.name} is not running"
        node.process.send_signal(signal.SIGKILL)
        node.process.wait(_KILL_TIMEOUT_S)
        node.process = None

    def restart(self, index: int) -> None:
        """SIGKILL node `index`, start it again and wait until the whole cluster is ready."""
        self.kill(index)
        self.start(index)
        self.wait_ready()

    def wait_ready(self) -> None:
        """Until every running node has its routes to the others, a live JetStream meta leader and MQTT accepted."""
        running = [node for node in self.nodes if node.process is not None]
        names = {node.name for node in running}
        deadline = time.monotonic() + _READY_TIMEOUT_S
        waiting = running
        while True:
            for node in running:
                assert node.process is not None
                if node.process.poll() is not None:
                    raise RuntimeError(f"nats-server {node.name} exited {node.process.returncode}:\n{self._logs()}")
            # The first node to accept an MQTT client has the account's MQTT streams created; the others, asked in
            # parallel then, only add their own consumers. All three at once took 1.5 to 5 s here, this 2.3 to 3.2.
            if self._ready(waiting[0], names):
                with ThreadPoolExecutor(max(len(waiting) - 1, 1)) as pool:
                    ready = list(pool.map(self._ready, waiting[1:], [names] * (len(waiting) - 1)))
                waiting = [node for node, done in zip(waiting[1:], ready, strict=True) if not done]
            if not waiting:
                return
            if time.monotonic() > deadline:
                late = ", ".join(node.name for node in waiting)
                raise RuntimeError(f"NATS nodes {late} not ready in {_READY_TIMEOUT_S:.0f} s:\n{self._logs()}")
            time.sleep(0.05)

    @staticmethod
    def _ready(node: NatsNode, running: set[str]) -> bool:
        # Not /healthz: in 2.9 it can keep failing for a consumer replica "not current" long after a restarted node
        # serves MQTT again. Routes to the others, a JetStream meta leader that is alive (a killed leader is still
        # named until the survivors elect another, some seconds later) and an accepted MQTT CONNECT are what count.
        routes = node.monitor("routez")
        jetstream = node.monitor("jsz")
        meta = jetstream.get("meta_cluster") if jetstream is not None else None
        return (
            routes is not None
            and routes.get("num_routes") == len(running) - 1
            and isinstance(meta, dict)
            and meta.get("leader") in running
            and node.accepts_mqtt()
        )

    def stop(self) -> None:
        """Kill every node still running: their stores are thrown away, so a clean shutdown would only cost time."""
        for index, node in enumerate(self.nodes):
            if node.process is not None:
                self.kill(index)

    def _logs(self) -> str:
        return "\n".join(f"--- {node.name}\n{node.log.read_text()[-2000:]}" for node in self.nodes if node.log.exists())


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """A fresh three-node NATS cluster for one test (its nodes are killed); skipped (failed under CI) without one."""
    binary = executable("nats-server", Path("/usr/sbin/nats-server"))
    cluster = NatsCluster(binary, tmp_path / "nats")
    try:
        for index in range(NODES):
            cluster.start(index)
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.stop()
