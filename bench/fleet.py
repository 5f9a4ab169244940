"""Fleet-scale benchmark: one operation to N simulated devices, Tether against the raw floor, on a fresh broker.

For each broker and N it starts the broker, a `tether simulate` process with N devices, runs the floor
(bench/floor.py) once, then a real `tether serve` with its own database: the devices register, `POST
/v0/operations/` targets all of them, and the run ends when the operation reads COMPLETED. It prints, per run: the
time to register the devices, from POST to every command acknowledged by the broker and to COMPLETED, commands/s,
statuses/s, the controller's CPU seconds and peak RSS, the ratio Tether/floor, and (for the largest N) the latency
of POST and GET /v0/operations/{id}/ while the operation runs.

With `--store postgresql` the controller runs on a private PostgreSQL (initdb on a free port, durable: fsync on),
and with `--replicas N` as N replicas of it on Mosquitto; it then also prints each replica's CPU seconds, and the
controllers' CPU seconds per 1,000 devices, which says how many cores a fleet needs.

    python -m bench.fleet                          # 1,000, 10,000 and 100,000 on Mosquitto; amqtt up to 2,000
    python -m bench.fleet --sizes 1000,10000 --brokers mosquitto
    python -m bench.fleet --sizes 10000,100000 --brokers mosquitto --store postgresql --replicas 2
"""

import argparse
import asyncio
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from bench.floor import run_floor
from controller.broker import ListenAddress, MosquittoBroker
from controller.remote.client import no_delay_transport
from shared.topics import Topics
from shared.transport import BrokerUrl
from tests.e2e.harness import Controller, Simulator, wait_for
from tests.fixtures_brokers import broker_in_thread, free_port
from tests.fixtures_postgres import PostgresServer, postgres_bindir, server_account

REQUEST_TIMEOUT_S = 5.0
SAMPLE_INTERVAL_S = 0.1
"""Often enough for percentiles over a run of seconds, rarely enough not to be the load itself."""
AMQTT_MAX_DEVICES = 2000
"""The embedded broker's safe size (docs/brokers.md): larger runs on it are skipped."""


@dataclass(slots=True)
class Run:
    broker: str
    devices: int
    store: str = "sqlite"
    replicas: int = 1
    replica_cpu_s: list[float] = field(default_factory=list)
    """Each replica's CPU seconds while the operation ran, the leader's first."""
    register_s: float = 0.0
    floor_acked_s: float = 0.0
    floor_done_s: float = 0.0
    dispatched_s: float = 0.0
    completed_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    broker_peak_rss_mb: float = 0.0
    """Mosquitto's, when the bench started it; the embedded amqtt is the controller's own."""
    baseline_rss_mb: float = 0.0
    after_rss_mb: float = 0.0
    floor_cpu_s: dict[str, float] = field(default_factory=dict)
    """CPU seconds of the simulator and the broker while the floor ran (the floor client's own: "floor")."""
    tether_cpu_s: dict[str, float] = field(default_factory=dict)
    """CPU seconds of the simulator, the broker and the controller's signing worker while the operation ran."""
    post_ms: list[float] = field(default_factory=list)
    get_ms: list[float] = field(default_factory=list)
    timed_out: int = 0
    """The sampler's requests that had no answer within REQUEST_TIMEOUT_S."""

    @property
    def ratio(self) -> float:
        return self.completed_s / self.floor_done_s if self.floor_done_s else float("nan")


class CpuMeter:
    """CPU seconds each named process used between `start` and `stop`; processes may be gone by then."""

    def __init__(self, processes: dict[str, psutil.Process]) -> None:
        self._processes = processes
        self._before: dict[str, float] = {}

    def start(self) -> None:
        self._before = {name: _cpu(process) for name, process in self._processes.items()}

    def stop(self) -> dict[str, float]:
        return {name: _cpu(process) - self._before[name] for name, process in self._processes.items()}


def _cpu(process: psutil.Process) -> float:
    try:
        return float(sum(process.cpu_times()[:2]))
    except psutil.NoSuchProcess:
        return 0.0


def neighbours(fleet: Simulator) -> dict[str, psutil.Process]:
    """The simulator and, when it is one, the Mosquitto process this benchmark started."""
    found = {"simulator": psutil.Process(fleet.process.popen.pid)}
    for child in psutil.Process().children(recursive=True):
        if child.name() == "mosquitto":
            found["broker"] = child
    return found


@contextmanager
def broker(kind: str, work: Path) -> Iterator[str | None]:
    """None: the controller's embedded amqtt; otherwise a private Mosquitto (the managed configuration)."""
    if kind == "amqtt":
        yield None
        return
    with broker_in_thread(lambda: MosquittoBroker(ListenAddress("127.0.0.1", free_port()), work / "mosquitto")) as url:
        yield url


class Sampler(threading.Thread):
    """Polls the controller's and the broker's RSS, and with `latency` on times a POST and a GET, every
    SAMPLE_INTERVAL_S; a request unanswered within REQUEST_TIMEOUT_S is counted, and sampling goes on."""

    def __init__(
        self, controller: Controller, operation_id: str | None, run: Run, latency: bool, broker: psutil.Process | None
    ) -> None:
        super().__init__(daemon=True)
        self._process = psutil.Process(controller.process.popen.pid)
        self._broker = broker
        self._controller = controller
        self._operation_id = operation_id
        self._run = run
        self._latency = latency
        self.stop = threading.Event()

    def run(self) -> None:
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{self._controller.http_port}",
            headers=self._headers(),
            timeout=REQUEST_TIMEOUT_S,
            transport=no_delay_transport(),  # as curl and `tether` itself: the server's latency, not Nagle's
        )
        body = {"operation_type": "LOCK", "operation_device_query": {"device_id": "no-such-device"}}
        while not self.stop.is_set():
            self._run.peak_rss_mb = max(self._run.peak_rss_mb, self._process.memory_info().rss / 2**20)
            if self._broker is not None:
                broker_rss = self._broker.memory_info().rss / 2**20
                self._run.broker_peak_rss_mb = max(self._run.broker_peak_rss_mb, broker_rss)
            if self._latency and self._operation_id is not None:
                self._time(self._run.get_ms, lambda: client.get(f"/v0/operations/{self._operation_id}/"))
                self._time(self._run.post_ms, lambda: client.post("/v0/operations/", json=body))
            self.stop.wait(SAMPLE_INTERVAL_S)
        client.close()

    def _time(self, latencies: list[float], request: Callable[[], httpx.Response]) -> None:
        started = time.perf_counter()
        try:
            request()
        except httpx.TimeoutException:
            self._run.timed_out += 1
            return
        latencies.append((time.perf_counter() - started) * 1000)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._controller.key}"}


@contextmanager
def database(store: str, work: Path) -> Iterator[PostgresServer | None]:
    """None: a SQLite file beside the controller; otherwise a private, durable PostgreSQL server."""
    if store == "sqlite":
        yield None
        return
    server = PostgresServer(postgres_bindir(), Path(tempfile.mkdtemp(prefix="tether-pg-bench-")), server_account())
    server.initialise(durable=True)
    try:
        yield server
    finally:
        server.stop("fast")
        shutil.rmtree(server.root, ignore_errors=True)


def start_replicas(work: Path, url: str, database_url: str | None, count: int) -> list[Controller]:
    """The controller, or `count` replicas of it sharing the database, signing keys and API key."""
    if database_url is None:
        return [Controller(work, broker_url=url)]
    replicas: list[Controller] = []
    for n in range(count):
        (work / f"replica-{n}").mkdir()
        key = replicas[0].key if replicas else None
        replicas.append(
            Controller(work / f"replica-{n}", url, database=database_url, state_dir=work / "state", key=key)
        )
    # The leader first: it says so once it has waited out its grace (controller/leadership.py).
    wait_for("a replica to lead", lambda: any("leading:" in c.process.output() for c in replicas), timeout=60)
    return sorted(replicas, key=lambda c: "leading:" not in c.process.output())


def measure(kind: str, devices: int, latency: bool, store: str = "sqlite", replicas: int = 1) -> Run:
    """On Mosquitto the floor runs before the controller starts, so nothing else loads the broker; the embedded
    amqtt broker lives in the controller, so there the floor runs beside an idle controller."""
    run = Run(kind, devices, store, replicas)
    device_ids = [f"sim-{n:06d}" for n in range(devices)]
    simulate = ("--latency-ms", "0", "--tag", "bench")
    with tempfile.TemporaryDirectory() as tmp, broker(kind, Path(tmp)) as url, database(store, Path(tmp)) as server:
        work = Path(tmp)
        db_url = None if server is None else server.create_database().url
        if url is not None:
            fleet = Simulator(work, url, devices, *simulate)
            meter = CpuMeter({**neighbours(fleet), "floor": psutil.Process()})
            meter.start()
            floor = asyncio.run(run_floor(BrokerUrl.parse(url), device_ids, Topics()))
            run.floor_cpu_s = meter.stop()
            started = time.perf_counter()
            controllers = start_replicas(work, url, db_url, replicas)
            controller = controllers[0]
        else:
            started = time.perf_counter()
            controller = Controller(work)
            controllers = [controller]
            fleet = Simulator(work, controller.broker_url, devices, *simulate)
        try:
            wait_for(
                f"{devices} devices registered",
                lambda: controller.get("/v0/devices/", online="true", limit=1)["count"] == devices,
                timeout=600,
                interval=0.2,
            )
            run.register_s = time.perf_counter() - started
            if url is None:
                meter = CpuMeter({**neighbours(fleet), "floor": psutil.Process()})
                meter.start()
                floor = asyncio.run(run_floor(BrokerUrl.parse(controller.broker_url), device_ids, Topics()))
                run.floor_cpu_s = meter.stop()
            run.floor_acked_s, run.floor_done_s = floor.commands_acked_s, floor.done_s
            others = neighbours(fleet)
            tether(controllers, run, latency, CpuMeter(others | postgres_processes(server)), others.get("broker"))
        finally:
            fleet.process.stop()  # a failed run too: a million simulated devices must not outlive it
            for each in controllers:
                each.stop()
    return run


def postgres_processes(server: PostgresServer | None) -> dict[str, psutil.Process]:
    """The benchmark's PostgreSQL server's processes, one entry each, when the store is PostgreSQL: its postmaster
    and what it started, not another server on the machine (the system's, another benchmark's)."""
    if server is None:
        return {}
    postmaster = psutil.Process(int((server.data / "postmaster.pid").read_text().split()[0]))
    return {f"postgres {process.pid}": process for process in [postmaster, *postmaster.children()]}


def tether(
    controllers: list[Controller], run: Run, latency: bool, others: CpuMeter, broker: psutil.Process | None
) -> None:
    """`controllers[0]` leads; with several, the operation is created on another replica, as a load balancer may."""
    controller = controllers[0]
    process = psutil.Process(controller.process.popen.pid)
    replicas = [psutil.Process(each.process.popen.pid) for each in controllers]
    time.sleep(1)
    run.baseline_rss_mb = process.memory_info().rss / 2**20
    cpu_before = [_cpu(each) for each in replicas]
    others.start()
    started = time.perf_counter()
    operation = controllers[-1].create({"operation_type": "LOCK", "operation_device_query": {"tags": "bench"}})
    sampler = Sampler(controller, operation["id"], run, latency, broker)
    sampler.start()
    dispatched = None
    while True:
        current = controller.get(f"/v0/operations/{operation['id']}/")
        if dispatched is None and any(a["operation_state"] == "DISPATCHED" for a in current["operation_activity"]):
            dispatched = time.perf_counter() - started
        if current["state"] in ("COMPLETED", "FAILED"):
            break
        time.sleep(0.05)
    run.completed_s = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    run.replica_cpu_s = [_cpu(each) - before for each, before in zip(replicas, cpu_before, strict=True)]
    run.cpu_s = sum(run.replica_cpu_s)
    stopped = others.stop()
    postgres = sum(cpu for name, cpu in stopped.items() if name.startswith("postgres "))
    run.tether_cpu_s = {name: cpu for name, cpu in stopped.items() if not name.startswith("postgres ")}
    if postgres:
        run.tether_cpu_s["postgresql"] = postgres
    for child in process.children():  # the signing worker, started with the operation's first batch
        run.tether_cpu_s["signing worker"] = _cpu(child)
    run.dispatched_s = dispatched or run.completed_s
    assert current["devices"]["successful"] == run.devices, current["devices"]
    time.sleep(3)
    run.after_rss_mb = process.memory_info().rss / 2**20


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def report(run: Run) -> str:
    statuses = 3 * run.devices
    parts = [
        f"{run.broker:9} {run.store} x{run.replicas} N={run.devices:>7,}  register {run.register_s:6.2f} s",
        f"floor: acked {run.floor_acked_s:6.2f} s, done {run.floor_done_s:6.2f} s",
        f"tether: dispatched {run.dispatched_s:6.2f} s, COMPLETED {run.completed_s:6.2f} s",
        f"{run.devices / run.dispatched_s:8,.0f} commands/s, {statuses / run.completed_s:8,.0f} statuses/s",
        f"ratio {run.ratio:5.2f}",
        f"controller CPU {run.cpu_s:5.1f} s, RSS {run.baseline_rss_mb:.0f} -> peak {run.peak_rss_mb:.0f}"
        f" -> {run.after_rss_mb:.0f} MB",
    ]
    if run.broker_peak_rss_mb:
        parts.append(f"broker RSS peak {run.broker_peak_rss_mb:.0f} MB")
    lines = [" | ".join(parts)]
    if run.replicas > 1:
        lines.append(
            f"{'':9} CPU per replica: "
            + ", ".join(f"{cpu:.1f} s" for cpu in run.replica_cpu_s)
            + f" (leader first); {1000 * run.cpu_s / run.devices:.2f} controller CPU-s per 1,000 devices"
        )
    for phase, cpu in (("floor", run.floor_cpu_s), ("tether", run.tether_cpu_s)):
        lines.append(f"{'':9} CPU during the {phase}: " + ", ".join(f"{name} {s:.1f} s" for name, s in cpu.items()))
    if run.get_ms:
        post, get = run.post_ms, run.get_ms
        lines.append(
            f"{'':9} in flight: POST p50 {statistics.median(post):.1f} ms p99 {percentile(post, 0.99):.1f} ms,"
            f" GET p50 {statistics.median(get):.1f} ms p99 {percentile(get, 0.99):.1f} ms ({len(get)} samples)"
            + (f"; {run.timed_out} request(s) unanswered within {REQUEST_TIMEOUT_S:.0f} s" if run.timed_out else "")
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="Comma-separated device counts.")
    parser.add_argument("--brokers", default="mosquitto,amqtt", help="mosquitto, amqtt or both.")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--replicas", type=int, default=1, help="Controllers sharing the work (postgresql only).")
    args = parser.parse_args()
    if args.replicas > 1 and (args.store != "postgresql" or args.brokers != "mosquitto"):
        parser.error("--replicas needs --store postgresql --brokers mosquitto: replicas share a database and a broker")
    sizes = [int(size) for size in args.sizes.split(",")]
    for kind in args.brokers.split(","):
        for devices in sizes:
            if kind == "amqtt" and devices > AMQTT_MAX_DEVICES:
                print(
                    f"{kind:9} N={devices:>7,}  skipped: over the embedded broker's safe size ({AMQTT_MAX_DEVICES:,})"
                )
                continue
            if kind == "amqtt" and args.store == "postgresql":
                print(f"{kind:9} N={devices:>7,}  skipped: the bench runs PostgreSQL with Mosquitto")
                continue
            run = measure(kind, devices, devices == max(sizes), args.store, args.replicas)
            print(report(run), flush=True)


if __name__ == "__main__":
    main()
