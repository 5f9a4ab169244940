"""`tether serve`: broker (embedded or external), store, MQTT link, dispatcher, ingest and REST API in one process."""

import asyncio
import contextlib
import gc
import logging
import shutil
import signal
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import uvicorn

from controller.api.app import create_app
from controller.api.database import READERS, ApiDatabase
from controller.api.deps import DEFAULT_MAX_ARTIFACT_BYTES, DEFAULT_MAX_BODY_BYTES, ApiServices
from controller.api.http_protocol import DeadlinedHttpToolsProtocol
from controller.api_thread import on_main_loop, serve_in_thread
from controller.broker import ListenAddress, MosquittoBroker, ServerTls, ensure_port_free, make_broker
from controller.broker_auth import BrokerAuth
from controller.database_cli import DatabaseChoice
from controller.dispatcher import ArtifactSettings, Dispatcher
from controller.errors import StartupError, StorageUnavailable
from controller.events import OperationEvents
from controller.fleet_keys import trusted_signer
from controller.ingest import Ingest
from controller.leadership import Alone, Leadership, PostgresLeadership
from controller.leading import Lead, Term
from controller.metrics import Metrics
from controller.mqtt_link import MqttLink
from controller.scheduler import Resolver, Scheduler
from controller.serve_lock import PostgresServeLock, ServeLock, Serving
from controller.signing_keys import SigningKeys
from controller.signing_worker import SigningFailed, SigningWorker
from controller.store import Store
from controller.store.database import Database
from controller.store.space import unopenable
from controller.store_thread import StoreThread
from controller.supervisor import Supervisor
from shared.sd_notify import notify, ping_watchdog
from shared.signing import Signer
from shared.topics import TopicKind, Topics
from shared.transport import BrokerUrl, TlsFiles

log = logging.getLogger(__name__)

GC_YOUNG_THRESHOLD = 10_000
"""Allocations between young collections (Python's default is 700): a batch's objects die before one runs."""


@dataclass(frozen=True, slots=True)
class ServeSettings:
    http_listen: ListenAddress
    mqtt_listen: ListenAddress
    db: DatabaseChoice
    external_broker: BrokerUrl | None = None
    broker_failover: tuple[BrokerUrl, ...] = ()
    """The other nodes of external_broker's cluster, tried in turn when a connection fails or is lost."""
    broker_tls: TlsFiles = field(default_factory=TlsFiles)
    """For an mqtts:// external broker."""
    embedded_broker: Literal["amqtt", "mosquitto"] | None = None
    """None: the managed Mosquitto where mosquitto is installed, amqtt otherwise (default_embedded_broker)."""
    embedded_broker_tls: ServerTls | None = None
    """The embedded broker serves TLS only, with this certificate (the controller verifies it with broker_tls)."""
    embedded_broker_auth: Path | None = None
    """What `tether broker acl` wrote: the embedded broker then admits only its logins and applies its rules."""
    topic_prefix: str = "tether/v1"
    client_id: str = "tether-controller"
    public_url: str | None = None
    """Base URL of artifact uploads and of the API's links; defaults to the HTTP listen address."""
    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    @property
    def device_facing_url(self) -> str:
        if self.public_url:
            return self.public_url
        host = self.http_listen.host
        if host in ("0.0.0.0", "::"):
            host = socket.getfqdn()
        return f"http://{f'[{host}]' if ':' in host else host}:{self.http_listen.port}"


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The controller handles SIGINT and SIGTERM itself so that the broker and store shut down cleanly too.
        yield


class _Stopped(Exception):
    pass


def _broker_auth(directory: Path | None, topics: Topics) -> BrokerAuth | None:
    if directory is None:
        return None
    try:
        return BrokerAuth.load(directory, topics)
    except (OSError, ValueError) as err:
        raise StartupError(f"cannot use the broker logins in {directory} (made by tether broker acl): {err}") from err


def default_embedded_broker() -> tuple[Literal["amqtt", "mosquitto"], str]:
    """The managed Mosquitto where it is installed: it serves tens of thousands of devices, where amqtt slows down
    past about 2,000 (docs/brokers.md); amqtt otherwise, which needs nothing installed. With the reason, for the log."""
    found = shutil.which("mosquitto")
    if found is not None:
        return "mosquitto", f" (the default, as {found} is installed; --embedded-broker amqtt runs amqtt in-process)"
    return "amqtt", " (the default, as mosquitto is not installed; install it for more than about 2,000 devices)"


async def _notify_ready(server: uvicorn.Server, host: str, port: int) -> None:
    """READY=1 for a Type=notify unit once the REST API answers (it starts on its own thread)."""
    while not server.started:  # noqa: ASYNC110 -- uvicorn sets a plain flag, on another thread
        await asyncio.sleep(0.05)
    notify("READY=1", f"STATUS=REST API on {host}:{port}")


def bind_http(address: ListenAddress) -> socket.socket:
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets, and without it every request on a
    # kept-alive connection waited ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address.host, address.port))
    except OSError as err:
        sock.close()
        raise StartupError(
            f"HTTP port {address.host}:{address.port} is not available ({err.strerror}); "
            "choose another with --http-listen HOST:PORT"
        ) from err
    sock.listen(1024)
    sock.setblocking(False)
    return sock


@dataclass(frozen=True, slots=True)
class _Connections:
    """The controller's connections to its database: its own (the main loop's), the REST API's (READERS to read and
    the last to write, controller/api/database.py), one for ingest's and dispatch's writes, one for the operations
    the API creates and one for the leader's resolving of large queries; each but the first on a thread of its own."""

    database: Database
    store: Store
    api: list[StoreThread]
    writes: StoreThread
    creating: StoreThread
    resolving: StoreThread

    def close(self) -> None:
        for thread in (self.resolving, self.creating, self.writes, *self.api):
            thread.close()
        self.store.close()
        self.database.close()


def _open_database(location: Path | str) -> _Connections:
    """StartupError, in one line, if the database cannot be opened: a full disk (SQLite then fails to open its WAL,
    as "disk I/O error"), a file that is not a database, a directory it may not write, a PostgreSQL server that
    cannot be reached or refuses the login."""
    with contextlib.ExitStack() as opened:  # closes those opened before one that fails
        try:
            database = opened.enter_context(contextlib.closing(Database(location)))
            store = opened.enter_context(contextlib.closing(Store(database)))
            threads = [opened.enter_context(contextlib.closing(StoreThread(database))) for _ in range(READERS + 4)]
        except (sqlite3.Error, OSError) as err:
            raise StartupError(unopenable(Path(location), err)) from err
        except (StorageUnavailable, ValueError) as err:
            raise StartupError(str(err)) from err
        opened.pop_all()
    *api, writes, creating, resolving = threads
    return _Connections(database, store, api, writes, creating, resolving)


def _replicas(settings: ServeSettings) -> bool:
    """Whether other `tether serve` may share this one's database: on PostgreSQL with an external broker. The
    embedded broker is this process's alone, so the devices of a second controller with one would never reach it."""
    return settings.db.sqlite_file is None and settings.external_broker is not None


def _serve_lock(settings: ServeSettings) -> Serving:
    if settings.db.sqlite_file is not None:
        return ServeLock.acquire(settings.db.sqlite_file)
    return PostgresServeLock.acquire(settings.db.target, replica=_replicas(settings))


def _leadership(settings: ServeSettings) -> Leadership:
    return PostgresLeadership(settings.db.target) if _replicas(settings) else Alone()


async def serve(settings: ServeSettings) -> None:
    http_socket = bind_http(settings.http_listen)
    topics = Topics(settings.topic_prefix)
    try:
        if settings.external_broker is None:  # before the database: a failed start leaves no file behind
            await ensure_port_free(settings.mqtt_listen)
        serving = _serve_lock(settings)
    except StartupError:
        http_socket.close()
        raise
    try:
        connections = _open_database(settings.db.target)
    except StartupError:
        serving.release()
        http_socket.close()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        # The embedded broker's logins are read first: a start that fails on them records no signing key.
        auth = None if settings.external_broker is not None else _broker_auth(settings.embedded_broker_auth, topics)
        # Before the broker starts and before this process may lead: a key the fleet was never given is refused.
        signer = trusted_signer(SigningKeys.in_state_dir(settings.db.state_dir), connections.store)
        async with AsyncExitStack() as stack:
            broker_url = settings.external_broker
            managed: MosquittoBroker | None = None
            if broker_url is None:
                data_dir = settings.db.state_dir / "broker"
                kind, why = (
                    default_embedded_broker() if settings.embedded_broker is None else (settings.embedded_broker, "")
                )
                broker = make_broker(kind, settings.mqtt_listen, data_dir, auth, settings.embedded_broker_tls)
                await stack.enter_async_context(broker)
                if isinstance(broker, MosquittoBroker):
                    managed = broker
                broker_url = BrokerUrl.parse(broker.url)
                secured = "" if auth is None else f", logins and ACL from {auth.directory}"
                log.info("embedded %s broker listening on %s%s%s", kind, broker_url, secured, why)
            await _run(settings, connections, signer, topics, broker_url, http_socket, stop, managed)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        http_socket.close()
        connections.close()
        serving.release()


def _subscribed(supervisor: Supervisor, dispatcher: Dispatcher, managed: MosquittoBroker | None) -> None:
    """The link is (again) connected and subscribed: the supervisor moves deadlines on by the outage at once, before
    devices' statuses bring new ones; a managed Mosquitto saves the session, and if it was restarted meanwhile, what
    is outstanding is published again."""
    supervisor.wake()
    if managed is not None and managed.save():
        dispatcher.broker_lost_messages("mosquitto restarted, without what it held since its last save")


async def _run(
    settings: ServeSettings,
    connections: _Connections,
    signer: Signer,
    topics: Topics,
    broker_url: BrokerUrl,
    http_socket: socket.socket,
    stop: asyncio.Event,
    managed: MosquittoBroker | None,
) -> None:
    """Everything but the REST API runs on this loop with the first store, handing its batched writes to the store
    thread; the API runs on its own thread and loop, its SQL on the store threads `api`, and creates operations on
    `creating`. The broker link, ingest, dispatch, supervision and the resolving of large queries run while this
    process leads (always, but for replicas: controller/leadership.py). `signer` holds a key the fleet was given
    (controller/fleet_keys.py); `managed` is the embedded Mosquitto, if that is the broker."""
    store, api, writes = connections.store, connections.api, connections.writes
    artifacts = ArtifactSettings(public_url=settings.device_facing_url, max_bytes=settings.max_artifact_bytes)
    log.info("signing commands with key %s (tether keys public prints it)", signer.key_id)
    metrics = Metrics()
    signing = SigningWorker(signer)
    loop = asyncio.get_running_loop()

    def new_term() -> Term:
        ingest: Ingest
        supervisor: Supervisor
        link = MqttLink(
            broker_url,
            identifier=settings.client_id,
            subscriptions=[
                topics.fleet_filter(kind) for kind in (TopicKind.STATUS, TopicKind.ANNOUNCE, TopicKind.PRESENCE)
            ],
            on_message=lambda message: ingest.on_message(message),
            on_subscribed=lambda: _subscribed(supervisor, dispatcher, managed),
            tls=settings.broker_tls,
            failover=settings.broker_failover,
        )
        dispatcher = Dispatcher(store, writes, link, topics, artifacts, signing, metrics)
        ingest = Ingest(writes, topics, dispatcher, link, metrics)
        supervisor = Supervisor(store, link, topics, dispatcher, signer)
        return Term(link, dispatcher, ingest, supervisor, Resolver(connections.resolving, dispatcher.wake))

    leadership = _leadership(settings)
    scheduler = Scheduler(connections.creating, on_main_loop(loop, lambda: lead.wake_dispatcher()))
    lead = Lead(leadership, new_term)
    metrics.watch(lead.broker_connected)
    events = OperationEvents(store, topics, lead.publish)
    app = create_app(
        ApiServices(
            database=ApiDatabase(readers=api[:READERS], writer=api[READERS]),
            space=store.space,
            scheduler=scheduler,
            wake_supervisor=on_main_loop(loop, lead.wake_supervisor),
            artifact_dir=settings.db.state_dir / "artifacts",
            events=events,
            metrics=metrics,
            broker_connected=lead.broker_connected,
            max_artifact_bytes=settings.max_artifact_bytes,
            max_body_bytes=settings.max_body_bytes,
            public_url=settings.device_facing_url,
        )
    )
    # Open event streams end when the controller stops (events.close()); the timeout is the backstop for the rest.
    # httptools parses HTTP in C: h11, uvicorn's pure-Python fallback, was a quarter of a GET's CPU.
    config = uvicorn.Config(
        app,
        http=DeadlinedHttpToolsProtocol,
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = _Server(config)
    host, port = settings.http_listen.host, settings.http_listen.port
    log.info("REST API on http://%s:%d (MQTT broker %s, database %s)", host, port, broker_url, store.database.shown)
    # What start-up built (modules, the app, its schemas) lives as long as the process: out of the collector's way,
    # a full collection no longer walks it, and no longer holds both threads up for tens of milliseconds.
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD)
    try:
        try:
            await signing.start()
        except SigningFailed as err:
            raise StartupError(str(err)) from err
        async with asyncio.TaskGroup() as group:
            for job in (lead.run(), events.run()):
                group.create_task(job)
            web = group.create_task(serve_in_thread(server, http_socket))
            group.create_task(ping_watchdog())
            group.create_task(_notify_ready(server, host, port))
            await stop.wait()
            log.info("stopping")
            events.close()
            server.should_exit = True
            await web
            raise _Stopped
    except* _Stopped:
        pass
    finally:
        await leadership.close()
        await signing.close()
