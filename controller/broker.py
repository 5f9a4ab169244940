"""The MQTT broker `tether serve` embeds: amqtt in-process (with fixes for amqtt 0.12.1) or a private Mosquitto.

amqtt 0.12.1 is patched here, by subclassing, in four places (details at each override):
  - on every connect it replayed the retained messages matching *any* client's subscriptions to the connecting client,
    so device A received device B's retained commands: replays now go only to the client's own subscriptions;
  - it kept every outgoing QoS 1/2 delivery in flight at once, and once 65,535 were unacknowledged to one client each
    further one scanned all packet ids, failed and was logged with a traceback: the broker sat at 100% CPU serving
    about 100 messages a second to everyone. A window of MAX_INFLIGHT deliveries per connection now bounds it;
  - its anonymous login marked every session anonymous, which dropped persistent sessions (clean_session=False) a
    second after disconnect and skipped queuing QoS 1 messages for them: everyone is admitted, not marked;
  - it ignored the keep-alive, so a device that vanished without closing its socket stayed connected and its last
    will never fired: it is now disconnected after 1.5 keep-alive periods (MQTT-3.1.2-24).

Measured on 2 cores (clients in a separate process): amqtt delivered 1k devices' retained commands, one per device,
to 1k subscribed devices in ~1.5 s and 5k in ~20 s, because each publish is matched against every subscription in
turn; it serves about 1-2k devices comfortably. Mosquitto did the same 5k in ~1 s: use it for larger fleets.
"""

import asyncio
import contextlib
import errno
import functools
import logging
import math
import os
import pwd
import shutil
import signal
import socket
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self, assert_never

from amqtt.broker import Broker
from amqtt.errors import BrokerError as AmqttStartError
from amqtt.mqtt.constants import QOS_1, QOS_2
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import OutgoingApplicationMessage

from controller.errors import BrokerError

AMQTT_VERSION = "0.12.1"
"""The amqtt release the overrides below were written against; they touch its private methods."""
MAX_INFLIGHT = 100
"""Unacknowledged QoS 1/2 deliveries per connection, for both brokers (Mosquitto's default is 20)."""
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
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


def make_broker(kind: Literal["amqtt", "mosquitto"], listen: ListenAddress, data_dir: Path) -> EmbeddedBroker:
    """The broker `--embedded-broker` names; Mosquitto keeps its config, database and log in `data_dir`."""
    if kind == "amqtt":
        return AmqttBroker(listen)
    if kind == "mosquitto":
        return MosquittoBroker(listen, data_dir)
    assert_never(kind)


def _port_in_use(listen: ListenAddress) -> BrokerError:
    return BrokerError(f"MQTT port {listen} is already in use; {_FLAG_HINT}")


async def _ensure_port_free(listen: ListenAddress) -> None:
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


class _Connection(BrokerProtocolHandler):  # type: ignore[misc]
    """amqtt's handler for one client connection, with a window on unacknowledged deliveries and keep-alive enforced."""

    def __init__(self, plugins_manager: Any, max_inflight: int) -> None:
        super().__init__(plugins_manager, loop=asyncio.get_running_loop())
        self._window = asyncio.Semaphore(max_inflight)
        self._stopped = False
        self._closing: asyncio.Future[None] | None = None

    async def mqtt_publish(
        self, topic: str, data: bytes | bytearray, qos: int | None, retain: bool, ack_timeout: int | None = None
    ) -> Any:
        # amqtt starts a delivery task per message and gives each a packet id at once (handler.py:218), so a client
        # that reads slowly collected tens of thousands in flight; past 65,535 every new one scanned all ids and
        # failed (session.py:226-233), logged with a traceback (broker.py:972): 100% CPU for the whole broker.
        if qos not in (QOS_1, QOS_2):
            return await super().mqtt_publish(topic, data, qos, retain, ack_timeout)
        async with self._window:
            if self._stopped:
                # The connection ended while this waited; amqtt would send it into the closed socket and drop it
                # after its 5 s PUBACK timeout, so drop it now. Retained commands are sent again on resubscribe.
                return OutgoingApplicationMessage(None, topic, qos, data, retain)
            return await super().mqtt_publish(topic, data, qos, retain, ack_timeout)

    def handle_read_timeout(self) -> None:
        # amqtt 0.12.1 ignores this (broker_handler.py:86-87): a device that vanished without closing its socket
        # stayed connected and its last will, Tether's offline presence, never fired. Close it as a lost connection.
        if self._closing is None:
            self._closing = asyncio.ensure_future(self.handle_connection_closed())

    async def stop(self) -> None:
        self._stopped = True
        stream = getattr(self.writer, "_writer", None)  # amqtt's StreamWriterAdapter keeps the asyncio writer here
        if isinstance(stream, asyncio.StreamWriter) and stream.transport.get_write_buffer_size() > 0:
            # The peer stopped reading: amqtt's close would wait in drain() forever, and the deliveries queued behind
            # it would hold the window and the socket. The connection is over, so drop what is still buffered.
            stream.transport.abort()
        await super().stop()


@functools.lru_cache(maxsize=65536)
def _literal_prefix(topic_filter: str) -> str:
    """The part of a topic filter before its first wildcard: every topic it matches starts with this."""
    return topic_filter.partition("+")[0].partition("#")[0]


class _SubscriptionTable(dict[str, list[tuple[Any, int]]]):
    """amqtt's table of topic filter to (session, QoS) subscribers, with a repr that does not list them.

    amqtt logs repr(table) after every SUBSCRIBE (broker.py:637), formatted even with debug logging off, which cost
    O(subscriptions) per SUBSCRIBE: about half the broker's time when a whole fleet reconnects.
    """

    def __repr__(self) -> str:
        return f"<{len(self)} topic filters>"


class _FixedAmqtt(Broker):  # type: ignore[misc]
    """amqtt's broker with the fixes the module docstring lists."""

    def __init__(self, config: dict[str, Any], max_inflight: int) -> None:
        super().__init__(config)
        self._subscriptions = _SubscriptionTable()
        self._max_inflight = max_inflight
        self._replays: set[asyncio.Task[Any]] = set()

    async def _initialize_client_session(self, reader: Any, writer: Any, address: str, port: int) -> tuple[Any, Any]:
        # amqtt has just built a bare handler for the CONNECT; use ours instead (same constructor, nothing attached).
        _, session = await super()._initialize_client_session(reader, writer, address, port)
        if session.keep_alive > 0:
            session.keep_alive = math.ceil(session.keep_alive * 1.5)
        return _Connection(self.plugins_manager, self._max_inflight), session

    async def _authenticate(self, session: Any, listener: Any) -> bool:
        # Everyone is admitted until broker authentication lands. amqtt's AnonymousAuthPlugin would also set
        # session.is_anonymous, after which amqtt drops the persistent session on disconnect (broker.py:365-366) and
        # queues nothing for it while offline (broker.py:1034-1037), unlike Mosquitto.
        return True

    async def _publish_retained_messages_for_subscription(self, subscription: tuple[str, int], session: Any) -> None:
        # On every connect amqtt calls this for each filter *any* client subscribed (broker.py:601-602), which sent
        # device B's retained commands to device A. Serve only the client's own filters, at their granted QoS.
        topic_filter = subscription[0]
        granted = None
        for owner, qos in self._subscriptions.get(topic_filter, ()):
            if owner.client_id == session.client_id:
                granted = qos
                break
        if granted is None:
            return  # kept cheap: amqtt makes this call once per filter in the whole broker on every connect
        handler = self._get_handler(session)
        if handler is None:
            return
        for topic, message in list(self._retained_messages.items()):
            if self._matches(topic, topic_filter):
                qos = granted if message.qos is None else min(granted, message.qos)
                # Not awaited: amqtt iterates its subscription table around this call, and yielding here would let
                # another client's SUBSCRIBE change that table mid-iteration.
                replay = asyncio.ensure_future(handler.mqtt_publish(topic, message.data, qos, retain=True))
                self._replays.add(replay)
                replay.add_done_callback(self._replay_done)

    def _matches(self, topic: str, a_filter: str) -> bool:
        # amqtt calls this for every subscription on every published message (broker.py:1015-1018) and splits both
        # strings each time; a topic outside the filter's literal prefix cannot match, which settles most calls.
        return topic.startswith(_literal_prefix(a_filter)) and bool(super()._matches(topic, a_filter))

    def _replay_done(self, replay: asyncio.Task[Any]) -> None:
        self._replays.discard(replay)
        if not replay.cancelled() and replay.exception() is not None:
            log.debug("retained message not acknowledged: %s", replay.exception())

    async def shutdown(self) -> None:
        await super().shutdown()
        for replay in list(self._replays):
            replay.cancel()
        await asyncio.gather(*self._replays, return_exceptions=True)

    def close_listeners(self) -> None:
        for server in self._servers.values():
            server.instance.close()


def _require_amqtt_version() -> None:
    installed = metadata.version("amqtt")
    if installed != AMQTT_VERSION:
        raise BrokerError(
            f"the embedded amqtt broker is patched for amqtt {AMQTT_VERSION} but {installed} is installed;"
            f" install amqtt=={AMQTT_VERSION} or use --embedded-broker mosquitto"
        )


class AmqttBroker:
    """amqtt running in-process on the current event loop, with the fixes above."""

    def __init__(self, listen: ListenAddress, *, max_inflight: int = MAX_INFLIGHT) -> None:
        self.listen = listen
        self.url = listen.url
        self._max_inflight = max_inflight
        self._broker: _FixedAmqtt | None = None

    async def __aenter__(self) -> Self:
        _require_amqtt_version()
        for name in ("amqtt", "transitions"):
            # amqtt logs every connection at INFO; keep it quiet unless someone configured it on purpose.
            if logging.getLogger(name).level == logging.NOTSET:
                logging.getLogger(name).setLevel(logging.WARNING)
        await _ensure_port_free(self.listen)
        config = {
            # Unbracketed: amqtt splits at the last colon and passes brackets on to getaddrinfo, which rejects them.
            "listeners": {"default": {"type": "tcp", "bind": f"{self.listen.host}:{self.listen.port}"}},
            # No $SYS, packet logger or anonymous plugin (see _authenticate). asyncio sets TCP_NODELAY itself.
            "plugins": {},
        }
        broker = _FixedAmqtt(config, self._max_inflight)
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


def _mosquitto_config(listen: ListenAddress, data_dir: Path, log_path: Path) -> str:
    return "\n".join(
        [
            "# Written by tether on every start of its private broker; edits here are overwritten.",
            f"listener {listen.port} {listen.host}",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {data_dir}/",
            "persistence_file mosquitto.db",
            # The default of 1000 dropped most of a 10k retained-command burst to a reconnecting controller.
            "max_queued_messages 0",
            f"max_inflight_messages {MAX_INFLIGHT}",
            "set_tcp_nodelay true",
            f"log_dest file {log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            # Run as root, Mosquitto 2 switches to user `mosquitto`, which cannot write data_dir; stay who we are.
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
            "",
        ]
    )


class MosquittoBroker:
    """A private `mosquitto -c <generated conf>` subprocess, started and stopped with this context."""

    def __init__(self, listen: ListenAddress, data_dir: Path, executable: str = "mosquitto") -> None:
        self.listen = listen
        self.url = listen.url
        self.data_dir = data_dir.resolve()
        self.log_path = self.data_dir / "mosquitto.log"
        self._executable = executable
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Self:
        executable = shutil.which(self._executable)
        if executable is None:
            where = "" if self._executable == "mosquitto" else f" at {self._executable}"
            raise BrokerError(f"mosquitto is not installed{where}; install it or use --embedded-broker amqtt")
        await _ensure_port_free(self.listen)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "mosquitto.conf"
        config.write_text(_mosquitto_config(self.listen, self.data_dir, self.log_path))
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        stderr = self.data_dir / "mosquitto.stderr"
        with stderr.open("wb") as early_errors:  # what it prints before the log file is open
            self._process = await asyncio.create_subprocess_exec(
                executable,
                "-c",
                str(config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=early_errors,
                stderr=early_errors,
                start_new_session=True,  # a Ctrl-C in the terminal is ours to handle, not Mosquitto's
            )
        try:
            await self._wait_listening(self._process, log_start, stderr)
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop()

    async def _wait_listening(self, process: asyncio.subprocess.Process, log_start: int, stderr: Path) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _START_TIMEOUT
        while process.returncode is None:
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1):
                    _, writer = await asyncio.open_connection(self.listen.host, self.listen.port)
                writer.close()
                await writer.wait_closed()
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
                process.kill()
                await process.wait()
