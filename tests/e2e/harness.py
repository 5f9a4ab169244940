"""Real `tether serve` and `tetherd run` processes for end-to-end tests, and a client for the REST API."""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from controller.remote.client import no_delay_transport
from tests.fakes import DANGEROUS, FakeSession, FakeTools, logind
from tests.fixtures_brokers import free_port

T = TypeVar("T")
BIN = Path(sys.executable).parent


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.05) -> T:
    """Poll `check` until it returns something truthy; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Process:
    """A child process whose output goes to a log file that a failing test can show."""

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self._log = log_path.open("ab")
        self.popen = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode

    def kill(self) -> None:
        self.popen.kill()
        self.popen.wait()
        self._log.close()


class Controller:
    """`tether serve` with its own database, on free ports; embedded amqtt unless `broker_url` is given.

    The database (and what the controller keeps beside it) is in `work` unless `data_dir` names another directory;
    the log stays in `work`."""

    def __init__(
        self,
        work: Path,
        broker_url: str | None = None,
        *extra: str,
        data_dir: Path | None = None,
        database: str | None = None,
        state_dir: Path | None = None,
        key: str | None = None,
    ) -> None:
        """`database`: a postgresql:// URL instead of the SQLite file; what is kept beside it then goes in
        `state_dir` (replicas share one: their signing keys), else in `work`. `key`: an API key made already (by
        another replica), instead of a new one."""
        self.work = work
        self.db = (data_dir or work) / "tether.db"
        self.database = database or str(self.db)
        self.state_dir = state_dir or work / "state"
        env = {**os.environ, "TETHER_STATE_DIR": str(self.state_dir)} if database else None
        self.http_port = free_port()
        self.mqtt_port = free_port()
        self.broker_url = broker_url or f"mqtt://127.0.0.1:{self.mqtt_port}"
        self.key = key or tether("keys", "create", "--name", "ops", "--role", "admin", "--db", self.database).strip()
        argv = [
            str(BIN / "tether"),
            "serve",
            "--http-listen",
            f"127.0.0.1:{self.http_port}",
            "--mqtt-listen",
            f"127.0.0.1:{self.mqtt_port}",
            "--db",
            self.database,
        ]
        if broker_url:
            argv += ["--broker", broker_url]
        elif "--embedded-broker" not in extra:
            argv += ["--embedded-broker", "amqtt"]  # not the default where mosquitto is installed
        argv += extra
        self.process = Process(argv, work / "controller.log", env)
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.http_port}",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=10,
            transport=no_delay_transport(),
        )
        wait_for("the controller's REST API", self._ready, timeout=20)

    @classmethod
    def adopt(cls, process: Process, http_port: int, key: str) -> "Controller":
        """The REST helpers for a `tether serve` the test started with a command line of its own (a unit's)."""
        controller = cls.__new__(cls)
        controller.process = process
        controller.http = httpx.Client(
            base_url=f"http://127.0.0.1:{http_port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
            transport=no_delay_transport(),
        )
        try:
            wait_for("the controller's REST API", controller._ready, timeout=20)
        except AssertionError:
            controller.stop()
            raise
        return controller

    def _ready(self) -> bool:
        if self.process.popen.poll() is not None:
            raise AssertionError(f"tether serve exited early:\n{self.process.output()}")
        try:
            return self.http.get("/v0/operations/").status_code == 200
        except httpx.TransportError:
            return False

    def get(self, path: str, **params: Any) -> Any:
        response = self.http.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()["content"]

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post("/v0/operations/", json=body)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()["content"]
        return result

    def wait_online(self, *device_ids: str) -> None:
        def online() -> bool:
            devices = {d["device_id"]: d for d in self.get("/v0/devices/")["results"]}
            return all(d in devices and devices[d]["online"] and devices[d]["platform"] for d in device_ids)

        wait_for(f"devices {device_ids} online", online)

    def wait_resolved(self, operation_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """The operation once its query is resolved: one that may select more than 20,000 devices is answered
        CREATED and resolved after (controller/scheduler.py)."""

        def resolved() -> dict[str, Any] | None:
            operation: dict[str, Any] = self.get(f"/v0/operations/{operation_id}/")
            return None if operation["state"] in ("CREATED", "RESOLVING") else operation

        return wait_for(f"operation {operation_id} resolved", resolved, timeout=timeout)

    def wait_finished(self, operation_id: str, timeout: float = 30.0) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            operation: dict[str, Any] = self.get(f"/v0/operations/{operation_id}/")
            return operation if operation["state"] in ("COMPLETED", "FAILED") else None

        return wait_for(f"operation {operation_id} to finish", finished, timeout=timeout)

    def device_results(self, operation_id: str) -> dict[str, dict[str, Any]]:
        page = self.get(f"/v0/operations/{operation_id}/devices/", limit=1000)
        return {d["device_id"]: d for d in page["results"]}

    def stop(self) -> int:
        self.http.close()
        return self.process.stop()


class Agent:
    """`tetherd run` for one device, with recording fake OS tools first on its PATH and a fake boot id file."""

    def __init__(self, work: Path, broker_url: str | list[str], device_id: str, *extra: str) -> None:
        """`broker_url`: one URL, or the nodes of a broker cluster in the order the agent tries them."""
        self.device_id = device_id
        self.work = work / device_id
        self.tools = FakeTools(self.work / "bin")
        for name in DANGEROUS:
            self.tools.add(name)
        self.tools.add("loginctl", script=logind(FakeSession("2")))  # a kiosk session whose screen LOCK locks
        self.boot_id = self.work / "boot_id"
        if not self.boot_id.exists():
            self.boot_id.write_text("boot-1\n")
        self.broker_url = broker_url
        self.extra = extra
        self.process = self.start()

    def start(self) -> Process:
        env = {**os.environ, "PATH": f"{self.tools.directory}{os.pathsep}{os.environ['PATH']}"}
        argv = [
            str(BIN / "tetherd"),
            "run",
            *(
                argument
                for url in ([self.broker_url] if isinstance(self.broker_url, str) else self.broker_url)
                for argument in ("--broker", url)
            ),
            "--device-id",
            self.device_id,
            "--state-dir",
            str(self.work / "state"),
            "--boot-id-path",
            str(self.boot_id),
            *self.extra,
        ]
        return Process(argv, self.work / "agent.log", env=env)

    def restart(self) -> None:
        self.process.stop()
        self.process = self.start()

    def stop(self) -> int:
        return self.process.stop()

    def locks(self) -> list[list[str]]:
        """The times LOCK ran its tool (the session look-ups around it left out)."""
        return [argv for argv in self.tools.calls("loginctl") if argv[1:] == ["lock-sessions"]]


def assert_lock_runs(controller: Controller, agent: Agent) -> None:
    """A LOCK to the agent's device completes, and the agent ran its (fake) loginctl for it exactly once."""
    before = len(agent.locks())
    created = controller.create({"operation_type": "LOCK", "operation_device_query": {"device_id": agent.device_id}})
    assert controller.wait_finished(created["id"])["state"] == "COMPLETED"
    assert len(agent.locks()) == before + 1


def run_cli(program: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """`tether` or `tetherd` of this environment, its output captured, whatever its exit."""
    return subprocess.run([str(BIN / program), *args], capture_output=True, text=True, timeout=timeout, check=False)


def tether(*args: str) -> str:
    done = run_cli("tether", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def retained(broker_url: str, topic_filter: str, settle: float = 1.0) -> dict[str, bytes]:
    """Every retained message the broker holds under `topic_filter`, read by a fresh clean-session client."""
    host, port = broker_url.removeprefix("mqtt://").rsplit(":", 1)
    found: dict[str, bytes] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{time.monotonic_ns()}")

    def on_message(_client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.retain:
            found[message.topic] = bytes(message.payload)

    client.on_message = on_message
    client.connect(host, int(port))
    client.subscribe(topic_filter, qos=1)
    client.loop_start()
    time.sleep(settle)
    client.loop_stop()
    client.disconnect()
    return {topic: payload for topic, payload in found.items() if payload}


# --- Fault-test helpers (tests/e2e/test_faults.py) ---------------------------------------------------------------


def restart_controller(controller: Controller) -> None:
    """Start `tether serve` again with the same database, ports and broker, after it stopped or was killed."""
    controller.process = Process(controller.process.argv, controller.process.log_path, controller.process.env)
    wait_for("the restarted controller's REST API", controller._ready, timeout=20)


class PersistentMosquitto:
    """A Mosquitto of the test's own, with `persistence true` in `data_dir`, that can restart on the same port."""

    def __init__(
        self, data_dir: Path, port: int | None = None, extra_config: tuple[str, ...] = (), *, anonymous: bool = True
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.config = data_dir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            *(["allow_anonymous true"] if anonymous else []),
            "persistence true",
            f"persistence_location {data_dir}/",
            "persistence_file mosquitto.db",
            "max_queued_messages 0",
            f"log_dest file {data_dir / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            *extra_config,
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # Mosquitto 2 run as root switches to `mosquitto`, which cannot write data_dir
        self.config.write_text("\n".join(lines) + "\n")
        self.process: Process | None = None

    def start(self) -> "PersistentMosquitto":
        executable = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        process = Process([executable, "-c", str(self.config)], self.data_dir / "mosquitto.stdout")
        self.process = process

        def listening() -> bool:
            if process.popen.poll() is not None:
                raise AssertionError(f"mosquitto exited early:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                return False
            return True

        wait_for(f"mosquitto listening on port {self.port}", listening, timeout=10)
        return self

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves its retained messages and sessions to disk and exits."""
        if self.process is not None:
            self.process.stop()
            self.process = None

    def log(self) -> str:
        path = self.data_dir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


def line_count(path: Path) -> int:
    """Lines in a file a test script appends to; 0 if it was never created."""
    return len(path.read_text().splitlines()) if path.exists() else 0


class Simulator:
    """`tether simulate` as a real process; `stop()` ends it with SIGTERM and returns the counts it wrote."""

    def __init__(self, work: Path, broker_url: str, devices: int, *extra: str) -> None:
        self.stats_file = work / f"simulator-{time.monotonic_ns()}.json"
        argv = [
            str(BIN / "tether"),
            "simulate",
            "--devices",
            str(devices),
            "--broker",
            broker_url,
            "--stats-file",
            str(self.stats_file),
            *extra,
        ]
        self.process = Process(argv, work / f"simulator-{devices}.log")
        # A million devices took the simulator 3 minutes to bring online on a quiet machine, more than 200 s on a
        # busy one (bench.fleet's largest run): 500 devices a second is the floor it is given.
        wait_for("the simulated devices online", self._started, timeout=max(60.0, devices / 500))

    def _started(self) -> bool:
        if self.process.popen.poll() is not None:
            raise AssertionError(f"tether simulate exited early:\n{self.process.output()}")
        return "simulated device(s) online" in self.process.output()

    def stop(self) -> dict[str, Any]:
        code = self.process.stop()
        assert code == 0, self.process.output()
        counts: dict[str, Any] = json.loads(self.stats_file.read_text())
        return counts


class HealthProbe(threading.Thread):
    """Asks a controller's /healthz (or `path`, with its key) every `interval_s` until `stop`; each answer is kept
    with when it was asked.

    A check that fails or takes over `timeout_s` counts as never answered (an infinite latency).
    """

    def __init__(
        self, controller: Controller, interval_s: float = 0.01, timeout_s: float = 30.0, path: str = "/healthz"
    ) -> None:
        super().__init__(name="health-probe", daemon=True)
        self._client = httpx.Client(
            base_url=f"http://127.0.0.1:{controller.http_port}",
            headers={} if path == "/healthz" else {"Authorization": f"Bearer {controller.key}"},
            timeout=timeout_s,
            transport=no_delay_transport(),
        )
        self._path = path
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self.checks: list[tuple[float, float]] = []
        """(asked, latency in seconds) of each check, in order; asked on the `time.monotonic()` clock."""

    def run(self) -> None:
        with self._client:
            while not self._stopping.is_set():
                asked = time.monotonic()
                try:
                    ok = self._client.get(self._path).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.checks.append((asked, time.monotonic() - asked if ok else float("inf")))
                self._stopping.wait(self._interval_s)

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=60)

    def latencies_between(self, start: float, end: float) -> list[float]:
        """Latencies in seconds of the checks under way at some moment between `start` and `end`."""
        return [latency for asked, latency in self.checks if asked < end and asked + latency > start]
