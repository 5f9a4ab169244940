"""Pytest fixtures that run a private PostgreSQL on a free port: one server per session, a fresh database per test."""

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import psycopg
import pytest

from tests.fixtures_brokers import free_port
from tests.prerequisites import executable, unavailable

SUPERUSER = "tether"
"""The role initdb creates; it logs in without a password (trust), as most tests want."""
PASSWORD_ROLE = "tether_password"
"""A role that must give its password (scram-sha-256), for tests of bad credentials; it owns every test database."""
PASSWORD = "tether-test-secret"
_PG_CTL_TIMEOUT_S = 30


def postgres_bindir() -> Path:
    """The directory of `initdb` and `pg_ctl`: from PATH, else Debian's newest /usr/lib/postgresql/<version>/bin."""
    versions = sorted(
        (path for path in Path("/usr/lib/postgresql").glob("*/bin") if path.parent.name.isdigit()),
        key=lambda path: int(path.parent.name),
        reverse=True,
    )
    initdb = executable("initdb", *(path / "initdb" for path in versions))
    # pg_ctl and postgres must be the same version as initdb: take them from where a PATH symlink really points.
    bindir = initdb.resolve().parent
    if not os.access(bindir / "pg_ctl", os.X_OK):
        unavailable(f"{bindir} has initdb but no pg_ctl")
    return bindir


def server_account() -> pwd.struct_passwd | None:
    """Whom to run PostgreSQL as, since it refuses root: None when we are not root, else `postgres` or `nobody`."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    unavailable("running as root, and neither a postgres nor a nobody account exists to run PostgreSQL as")


class PostgresServer:
    """A throwaway PostgreSQL cluster in its own directory, listening on 127.0.0.1 only; never the system's 5432."""

    def __init__(self, bindir: Path, root: Path, account: pwd.struct_passwd | None) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.port = free_port()
        self._account = account
        self._names = itertools.count(1)

    def _run(self, *argv: str) -> None:
        """Run a PostgreSQL tool as the server's account; its output goes to the log, which a failure shows."""
        identity: dict[str, Any] = {}
        if self._account is not None:
            identity = {"user": self._account.pw_uid, "group": self._account.pw_gid, "extra_groups": []}
        # To a file, not a pipe: the postmaster pg_ctl starts would hold a pipe open long after pg_ctl returns.
        with self.log.open("a") as log:
            done = subprocess.run(
                [str(self.bindir / argv[0]), *argv[1:]],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=_PG_CTL_TIMEOUT_S + 10,
                check=False,
                **identity,
            )
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited {done.returncode}:\n{self.log.read_text()[-4000:]}")

    def initialise(self, *, durable: bool = False) -> None:
        """initdb, then settings for tests: loopback only, a socket of its own, no flushes (unless `durable`, as a
        benchmark wants the server as production runs it), a password role."""
        self.log.touch()
        if self._account is not None:  # the server writes to both, and its tools' output joins its own log
            for path in (self.root, self.log):
                shutil.chown(path, self._account.pw_uid, self._account.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C", "-N")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            # Throwaway data: flushing to disk only protects against the machine itself crashing, never against a
            # killed or immediately stopped server, whose WAL is already with the OS (synchronous_commit stays on, so
            # "a restart loses nothing" is still really tested). Skipping the flushes makes CREATE DATABASE and
            # every commit several times faster.
            "fsync": "on" if durable else "off",
            "full_page_writes": "on" if durable else "off",
            # Several controller replicas, each with a pool, share one server in later tests.
            "max_connections": "200",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        # First match wins: the password role must authenticate; everyone else is trusted, over TCP and the socket.
        (self.data / "pg_hba.conf").write_text(
            f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n"
            "local all all trust\n"
        )
        self.start()
        with self.connect() as admin:
            admin.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._run("pg_ctl", "start", "-w", "-t", str(_PG_CTL_TIMEOUT_S), "-D", str(self.data), "-l", str(self.log))

    def stop(self, mode: Literal["fast", "immediate"] = "fast") -> None:
        """Stop the server: `fast` shuts down cleanly; `immediate` is as abrupt as a crash (recovery runs on start)."""
        self._run("pg_ctl", "stop", "-w", "-t", str(_PG_CTL_TIMEOUT_S), "-D", str(self.data), "-m", mode)

    def restart(self, mode: Literal["fast", "immediate"] = "fast") -> None:
        self.stop(mode)
        self.start()

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str, *, role: str = SUPERUSER, password: str | None = None) -> str:
        secret = "" if password is None else f":{quote(password, safe='')}"
        return f"postgresql://{role}{secret}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[tuple[Any, ...]]:
        """An autocommit connection as the superuser, for set-up the tests themselves do not do."""
        return psycopg.connect(self.url(database), autocommit=True)

    def create_database(self) -> "PostgresDatabase":
        # template0, not template1: nothing a test put in template1 leaks into another test's database.
        name = f"test_{next(self._names)}"
        with self.connect() as admin:
            admin.execute(f"CREATE DATABASE {name} TEMPLATE template0 OWNER {PASSWORD_ROLE}")
        return PostgresDatabase(self, name)

    def drop_database(self, name: str) -> None:
        if not self.running:  # the test stopped the server and left it so
            self.start()
        with self.connect() as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")  # FORCE: a test may leave a pool connected


@dataclass(frozen=True)
class PostgresDatabase:
    """One test's own database on the session's server."""

    server: PostgresServer
    name: str

    @property
    def url(self) -> str:
        """As the superuser, without a password."""
        return self.server.url(self.name)

    @property
    def password_url(self) -> str:
        """As PASSWORD_ROLE with its password; the same URL with another password is refused."""
        return self.server.url(self.name, role=PASSWORD_ROLE, password=PASSWORD)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL for the whole session, in a temporary directory; skipped (failed under CI) without one."""
    bindir = postgres_bindir()
    account = server_account()
    # Not pytest's tmp_path: its parents are root's alone (0700), where an unprivileged server cannot reach its files.
    root = Path(tempfile.mkdtemp(prefix="tether-pg-"))
    server = PostgresServer(bindir, root, account)
    try:
        server.initialise()
        yield server
    finally:
        if server.running:
            server.stop("immediate")  # nothing in it is worth a checkpoint
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[PostgresDatabase]:
    """A fresh, empty database for one test; the server is running when the test starts."""
    if not postgres_server.running:
        postgres_server.start()
    database = postgres_server.create_database()
    try:
        yield database
    finally:
        postgres_server.drop_database(database.name)


@pytest.fixture
def postgres_url(postgres_database: PostgresDatabase) -> str:
    """URL of a fresh database on the private server, as a trusted superuser: `postgresql://tether@127.0.0.1:…/…`."""
    return postgres_database.url
