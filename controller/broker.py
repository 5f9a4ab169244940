"""The MQTT broker `tether serve` embeds: amqtt in-process (with fixes for amqtt 0.12.1) or a private Mosquitto.

The amqtt fixes live in controller/amqtt_fixes.py.

Measured on 2 cores, raw MQTT clients in another process, one retained command per device: a fleet of N devices
connecting and each receiving its command took 1.5 s / 4.5 s / 30 s for N = 1k / 2k / 5k, and sending one new command
to each connected device took 0.9 s / 2.9 s / 17 s. amqtt matches every message against every subscription, so this
grows with N squared: it serves about 2,000 devices comfortably. Mosquitto did 5k in 1.0 s and 0.25 s: use it beyond.
"""

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, Self, assert_never

from amqtt.errors import BrokerError as AmqttStartError

from controller.amqtt_fixes import MAX_INFLIGHT, FixedAmqtt, require_amqtt_version
from controller.broker_auth import BrokerAuth
from controller.errors import BrokerError

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
RESTART_BACKOFF_MIN_S = 0.5
RESTART_BACKOFF_MAX_S = 10.0
STABLE_RUN_S = 30.0
"""A Mosquitto that ran this long before it exited is restarted after the shortest wait again."""
_PR_SET_PDEATHSIG = 1
_FLAG_HINT = "choose another with --mqtt-listen HOST:PORT"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> "ListenAddress":
        """Parse `HOST:PORT` or `[IPV6]:PORT`; raise ValueError saying what is wrong."""
        example = "expected HOST:PORT, e.g. 127.0.0.1:1883 or [::1]:1883"
        text = text.strip()
        if text.startswith("["):
            host, bracket, rest = text[1:].partition("]")
            if not bracket or not rest.startswith(":"):
                raise ValueError(f"invalid listen address {text!r}: {example}")
            port_text = rest[1:]
        else:
            host, colon, port_text = text.rpartition(":")
            if not colon:
                raise ValueError(f"invalid listen address {text!r}: {example}")
            if ":" in host:
                raise ValueError(f"invalid listen address {text!r}: put an IPv6 host in brackets, e.g. [::1]:1883")
        if not host or any(c.isspace() for c in host):
            raise ValueError(f"invalid listen address {text!r}: {example}")
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"invalid listen address {text!r}: the port must be a number from 1 to 65535")
        return cls(host, int(port_text))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The URL a client on this host connects to; a wildcard listen address is reached over loopback."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"mqtt://{ListenAddress(host, self.port)}"


class EmbeddedBroker(Protocol):
    url: str

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class ServerTls:
    """The certificate and key an embedded broker serves TLS with (and only TLS)."""

    cert_file: Path
    key_file: Path


def make_broker(
    kind: Literal["amqtt", "mosquitto"],
    listen: ListenAddress,
    data_dir: Path,
    auth: BrokerAuth | None = None,
    tls: ServerTls | None = None,
) -> EmbeddedBroker:
    """The broker `--embedded-broker` names; Mosquitto keeps its config, database and log in `data_dir`. With
    `auth` (what `tether broker acl` wrote), both admit only its logins and apply its rules; with `tls`, both
    serve TLS only."""
    if kind == "amqtt":
        return AmqttBroker(listen, auth=auth, tls=tls)
    if kind == "mosquitto":
        return MosquittoBroker(listen, data_dir, auth=auth, tls=tls)
    assert_never(kind)


def _client_url(listen: ListenAddress, auth: BrokerAuth | None, tls: ServerTls | None) -> str:
    url = listen.url if tls is None else listen.url.replace("mqtt://", "mqtts://", 1)
    return url if auth is None else auth.login_url(url)


def _port_in_use(listen: ListenAddress) -> BrokerError:
    return BrokerError(f"MQTT port {listen} is already in use; {_FLAG_HINT}")


async def ensure_port_free(listen: ListenAddress) -> None:
    """Bind the address once, as the brokers will, so a taken port fails with one clear line before anything starts."""
    loop = asyncio.get_running_loop()
    try:
        addresses = await loop.getaddrinfo(listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise BrokerError(f"cannot listen for MQTT on {listen}: {err.strerror}; {_FLAG_HINT}") from err
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            # Both brokers set SO_REUSEADDR, so connections of a previous run in TIME_WAIT do not hold the port.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as err:
                if err.errno == errno.EADDRINUSE:
                    raise _port_in_use(listen) from err
                raise BrokerError(f"cannot listen for MQTT on {listen}: {err.strerror}; {_FLAG_HINT}") from err


class AmqttBroker:
    """amqtt running in-process on the current event loop, with the fixes above."""

    def __init__(
        self,
        listen: ListenAddress,
        *,
        max_inflight: int = MAX_INFLIGHT,
        auth: BrokerAuth | None = None,
        tls: ServerTls | None = None,
    ) -> None:
        self.listen = listen
        self.url = _client_url(listen, auth, tls)
        self._max_inflight = max_inflight
        self._auth = auth
        self._tls = tls
        self._broker: FixedAmqtt | None = None

    async def __aenter__(self) -> Self:
        require_amqtt_version()
        for name in ("amqtt", "transitions"):
            # amqtt logs every connection at INFO; keep it quiet unless someone configured it on purpose.
            if logging.getLogger(name).level == logging.NOTSET:
                logging.getLogger(name).setLevel(logging.WARNING)
        await ensure_port_free(self.listen)
        tls = (
            {}
            if self._tls is None
            else {"ssl": True, "certfile": str(self._tls.cert_file), "keyfile": str(self._tls.key_file)}
        )
        config = {
            # Unbracketed: amqtt splits at the last colon and passes brackets on to getaddrinfo, which rejects them.
            "listeners": {"default": {"type": "tcp", "bind": f"{self.listen.host}:{self.listen.port}", **tls}},
            # No $SYS, packet logger or anonymous plugin (see _authenticate). asyncio sets TCP_NODELAY itself.
            "plugins": {},
        }
        broker = FixedAmqtt(config, self._max_inflight, self._auth)
        try:
            await broker.start()
        except AmqttStartError as err:
            if isinstance(err.__cause__, OSError) and err.__cause__.errno == errno.EADDRINUSE:
                raise _port_in_use(self.listen) from err
            raise BrokerError(f"the embedded MQTT broker could not start on {self.listen}: {err}") from err
        self._broker = broker
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        broker, self._broker = self._broker, None
        if broker is None:
            return
        try:
            async with asyncio.timeout(_STOP_TIMEOUT):
                await broker.shutdown()
        except TimeoutError:
            log.warning("amqtt did not stop within %.0f s; closing its listener anyway", _STOP_TIMEOUT)
            broker.close_listeners()


MOSQUITTO_MAX_INFLIGHT = 10_000
"""Unacknowledged QoS 1 messages Mosquitto sends one client. The controller acknowledges a status only once it is
stored, in batches: at 100 (or Mosquitto's default of 20) it waited on the broker between batches and ingested a few
thousand statuses a second; at 10,000 it takes them as fast as it can store them."""


def _mosquitto_config(
    listen: ListenAddress, data_dir: Path, log_path: Path, auth: BrokerAuth | None, tls: ServerTls | None
) -> str:
    served = [] if tls is None else [f"certfile {tls.cert_file.resolve()}", f"keyfile {tls.key_file.resolve()}"]
    access = (
        ["allow_anonymous true"]
        if auth is None
        else [
            "allow_anonymous false",
            f"password_file {(auth.directory / 'passwords').resolve()}",
            f"acl_file {(auth.directory / 'acl').resolve()}",
        ]
    )
    return "\n".join(
        [
            "# Written by tether on every start of its private broker; edits here are overwritten.",
            f"listener {listen.port} {listen.host}",
            *served,
            *access,
            "persistence true",
            f"persistence_location {data_dir}/",
            "persistence_file mosquitto.db",
            # The default of 1000 dropped most of a 10k retained-command burst to a reconnecting controller.
            "max_queued_messages 0",
            f"max_inflight_messages {MOSQUITTO_MAX_INFLIGHT}",
            "set_tcp_nodelay true",
            f"log_dest file {log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        # Run as root, Mosquitto 2 switches to user `mosquitto`, which cannot write data_dir; stay root.
        + (["user root"] if os.geteuid() == 0 else [])
        + [""]
    )


class MosquittoBroker:
    """A private `mosquitto -c <generated conf>` subprocess, started and stopped with this context, restarted (with
    backoff) whenever it exits on its own meanwhile, and ended by the kernel if the controller dies first."""

    def __init__(
        self,
        listen: ListenAddress,
        data_dir: Path,
        executable: str = "mosquitto",
        auth: BrokerAuth | None = None,
        tls: ServerTls | None = None,
    ) -> None:
        self.listen = listen
        self.url = _client_url(listen, auth, tls)
        self._auth = auth
        self._tls = tls
        self.data_dir = data_dir.resolve()
        self.log_path = self.data_dir / "mosquitto.log"
        self._executable = executable
        self._process: asyncio.subprocess.Process | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._restarts = self._saved_restarts = 0

    async def __aenter__(self) -> Self:
        executable = shutil.which(self._executable)
        if executable is None:
            where = "" if self._executable == "mosquitto" else f" at {self._executable}"
            raise BrokerError(f"mosquitto is not installed{where}; install it or use --embedded-broker amqtt")
        process = await self._start(executable)
        self._keeper = asyncio.create_task(self._keep_running(executable, process), name="mosquitto-keeper")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        keeper, self._keeper = self._keeper, None
        try:
            if keeper is not None:
                keeper.cancel()
                await asyncio.wait([keeper])  # its own cancellation, not this task's: that one still raises here
        finally:
            await self._stop()

    def save(self) -> bool:
        """Have Mosquitto write its database now (SIGUSR1), as it otherwise does only every half hour and on SIGTERM;
        True when it was restarted since the last call, so what it held then may be lost.

        Called once the controller has subscribed: its persistent session is then on disk, and a Mosquitto killed
        outright comes back holding it, so that statuses devices publish before the controller reconnects wait for
        it instead of reaching no subscriber. The retained commands published since the previous save it does not
        hold: the controller publishes what is outstanding again (Dispatcher.broker_lost_messages).
        """
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGUSR1)
        restarted, self._saved_restarts = self._restarts != self._saved_restarts, self._restarts
        return restarted

    async def _start(self, executable: str) -> asyncio.subprocess.Process:
        await ensure_port_free(self.listen)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "mosquitto.conf"
        config.write_text(_mosquitto_config(self.listen, self.data_dir, self.log_path, self._auth, self._tls))
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        stderr = self.data_dir / "mosquitto.stderr"
        with stderr.open("wb") as early_errors:  # what it prints before the log file is open
            process = self._process = await asyncio.create_subprocess_exec(
                executable,
                "-c",
                str(config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=early_errors,
                stderr=early_errors,
                start_new_session=True,  # a Ctrl-C in the terminal is ours to handle, not Mosquitto's
                preexec_fn=_end_with_this_process(),
            )
        try:
            await self._wait_listening(process, log_start, stderr)
        except BaseException:
            await self._stop()
            raise
        return process

    async def _keep_running(self, executable: str, process: asyncio.subprocess.Process) -> None:
        """Start Mosquitto again each time it exits, waiting twice as long after each exit that follows a short run.

        One line is logged per exit and per failed start: the controller meanwhile reports not ready (/readyz 503)
        and counts no device's deadline (docs/operations-lifecycle.md).
        """
        loop = asyncio.get_running_loop()
        backoff = RESTART_BACKOFF_MIN_S
        while True:
            started = loop.time()
            status = await process.wait()
            if loop.time() - started >= STABLE_RUN_S:
                backoff = RESTART_BACKOFF_MIN_S
            self._process = None
            log.error("mosquitto (pid %d) %s; restarting it in %.1f s", process.pid, _exit_reason(status), backoff)
            while True:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RESTART_BACKOFF_MAX_S)
                try:
                    process = await self._start(executable)
                    break
                except (BrokerError, OSError, subprocess.SubprocessError) as err:
                    one_line = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
                    log.error("mosquitto did not restart (%s); trying again in %.1f s", one_line, backoff)
            self._restarts += 1
            log.warning("mosquitto restarted (pid %d), listening on %s", process.pid, self.listen)

    async def _wait_listening(self, process: asyncio.subprocess.Process, log_start: int, stderr: Path) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _START_TIMEOUT
        while process.returncode is None:
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1):
                    _, writer = await asyncio.open_connection(self.listen.host, self.listen.port)
                writer.close()
                await writer.wait_closed()
                if process.returncode is None:
                    return
            if loop.time() > deadline:
                raise BrokerError(f"mosquitto did not listen on {self.listen} within {_START_TIMEOUT:.0f} s")
            await asyncio.sleep(0.05)
        output = self._output_since(log_start, stderr)
        if "Address already in use" in output:
            raise _port_in_use(self.listen)
        tail = "\n".join(output.strip().splitlines()[-10:]) or "(no output)"
        status = process.returncode
        raise BrokerError(f"mosquitto exited with status {status} before listening on {self.listen}:\n{tail}")

    def _output_since(self, log_start: int, stderr: Path) -> str:
        """What Mosquitto printed and logged in this run (small local files, so read synchronously)."""
        output = stderr.read_text(errors="replace")
        if self.log_path.exists():
            with self.log_path.open("rb") as log_file:
                log_file.seek(log_start)
                output += log_file.read().decode(errors="replace")
        return output

    async def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        try:
            process.send_signal(signal.SIGTERM)  # Mosquitto saves its database on SIGTERM
            async with asyncio.timeout(_STOP_TIMEOUT):
                await process.wait()
        except ProcessLookupError:
            pass
        except TimeoutError:
            log.warning("mosquitto did not stop within %.0f s of SIGTERM; killing it", _STOP_TIMEOUT)
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()


def _exit_reason(status: int) -> str:
    if status < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-status).name}"
    return f"exited with status {status}"


def _end_with_this_process() -> Callable[[], None] | None:
    """What the child runs before it execs Mosquitto, on Linux: the kernel sends it SIGTERM when this process dies.

    Without it a controller killed outright (SIGKILL, the OOM killer) left its Mosquitto holding the MQTT port, and
    the next `tether serve` could not start. SIGTERM, not SIGKILL: Mosquitto then saves its database as it exits.
    PR_SET_PDEATHSIG rather than a pipe that Mosquitto would have to watch: it needs no wrapper process, and the
    kernel acts even when nothing of the controller runs any more. It follows the thread that forked, which is the
    event loop's, alive as long as the broker is. The function runs between fork and exec, so it only calls what is
    ready before the fork (prctl, resolved here) and takes no lock; if this process died before prctl took effect,
    the child's parent is already another one, and it gives up rather than outlive it.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def in_child() -> None:
        if prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:
            raise OSError(errno.ESRCH, "tether serve exited while starting mosquitto")

    return in_child
