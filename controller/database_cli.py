"""`--db` for every `tether` command that uses the database, and `tether db status|upgrade` for its schema."""

import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import click
from click.core import ParameterSource

from agent.command_line import directories_or_missing
from controller.errors import StartupError, StorageUnavailable
from controller.store import Store
from controller.store.connection import open_database
from controller.store.database import Database, is_url
from controller.store.migrations import LATEST, SchemaStatus, status, upgrade
from controller.store.space import unopenable

log = logging.getLogger(__name__)


def default_state_dir() -> Path:
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "tether"


def default_db_path() -> Path:
    return default_state_dir() / "tether.db"


@dataclass(frozen=True, slots=True)
class DatabaseChoice:
    """The database `--db` names, and the directory of what the controller keeps beside it in files: its signing
    keys, uploaded artifacts and the embedded broker's data."""

    target: str
    """A SQLite file's path, or a postgresql:// URL."""
    state_dir: Path
    """The SQLite file's own directory; for PostgreSQL, $TETHER_STATE_DIR or $XDG_STATE_HOME/tether."""

    @property
    def sqlite_file(self) -> Path | None:
        return None if is_url(self.target) else Path(self.target)


DB_PASSWORD_WARNING = (
    "the database password in --db is visible to every local user in ps: put it in PGPASSWORD or a ~/.pgpass file "
    "(PGPASSFILE), or give the whole URL in TETHER_DB"
)


def _database(ctx: click.Context, param: click.Parameter, value: str) -> DatabaseChoice:
    if is_url(value):
        if not value.startswith(("postgresql://", "postgres://")):
            raise click.BadParameter("is a URL of no database Tether knows: give a file or a postgresql:// URL")
        if ctx.get_parameter_source("db") is ParameterSource.COMMANDLINE and urlsplit(value).password is not None:
            log.warning(DB_PASSWORD_WARNING)
        return DatabaseChoice(value, Path(os.environ.get("TETHER_STATE_DIR") or default_state_dir()))
    path = directories_or_missing(ctx, param, Path(value))
    assert path is not None
    return DatabaseChoice(str(path), path.parent)


db_option = click.option(
    "--db",
    "db",
    callback=_database,
    default=lambda: str(default_db_path()),
    envvar="TETHER_DB",
    show_default="$XDG_STATE_HOME/tether/tether.db",
    help="SQLite database file, or a postgresql://user@host/name URL (its password from PGPASSWORD or ~/.pgpass).",
)


def open_store(db: DatabaseChoice) -> Store:
    """The database, made with its directory if missing and brought to the newest schema; StartupError in one line if
    it cannot be used (a path under a file, a file that is not a SQLite database, one from a newer Tether, a server
    that cannot be reached)."""
    try:
        return Store(db.target)
    except (sqlite3.Error, OSError) as err:
        raise StartupError(unopenable(Path(db.target), err)) from err
    except StorageUnavailable as err:
        raise StartupError(str(err)) from err


@click.group(name="db")
def db_group() -> None:
    """The database's schema: the numbered migrations it has, and applying the rest (`tether serve` applies them
    itself when it starts)."""


@db_group.command(name="status")
@db_option
def status_command(db: DatabaseChoice) -> None:
    """Print the schema the database is at and each migration it still needs; changes nothing."""
    current = _status(db)
    if current is None:
        click.echo(f"no database at {db.target}: it is made at schema {LATEST} when first used")
        return
    newer = " (newer than this Tether)" if current.applied > LATEST else ""
    click.echo(f"{_shown(db)}: schema {current.applied} of {LATEST}{newer}")
    for migration in current.pending:
        click.echo(f"pending {migration.number}: {migration.title}")


def _status(db: DatabaseChoice) -> SchemaStatus | None:
    """None for a SQLite file that does not exist yet (which is not made to answer)."""
    path = db.sqlite_file
    if path is None:
        with _unmigrated(db) as database, closing(database.connect()) as conn:
            return status(conn, database.dialect)
    if not path.exists():
        return None
    try:
        with closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)) as conn:
            return status(conn)
    except sqlite3.Error as err:
        raise StartupError(unopenable(path, err)) from err


@db_group.command(name="upgrade")
@db_option
def upgrade_command(db: DatabaseChoice) -> None:
    """Apply the migrations the database still needs, each once, and say which."""
    path = db.sqlite_file
    if path is None:
        with _unmigrated(db) as database, closing(database.connect()) as conn:
            applied = upgrade(conn, database.dialect, where=database.shown)
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with closing(open_database(str(path))) as conn:
                applied = upgrade(conn, where=str(path))
        except (sqlite3.Error, OSError) as err:
            raise StartupError(unopenable(path, err)) from err
    for migration in applied:
        click.echo(f"applied {migration.number}: {migration.title}")
    click.echo(f"{_shown(db)}: schema {LATEST}, up to date")


@contextmanager
def _unmigrated(db: DatabaseChoice) -> Iterator[Database]:
    """The PostgreSQL database, its schema as it is; StartupError in one line if it cannot be reached."""
    try:
        database = Database(db.target, migrate=False)
    except StorageUnavailable as err:
        raise StartupError(str(err)) from err
    try:
        yield database
    finally:
        database.close()


def _shown(db: DatabaseChoice) -> str:
    from controller.store.postgres import redacted

    return db.target if db.sqlite_file is not None else redacted(db.target)
