"""`--db` for every `tether` command that uses the database, and `tether db status|upgrade` for its schema."""

import os
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import click

from controller.errors import StartupError
from controller.store import Store
from controller.store.connection import open_database
from controller.store.migrations import LATEST, status, upgrade
from controller.store.space import unopenable
from shared.command_line import directories_or_missing


def default_db_path() -> Path:
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "tether" / "tether.db"


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/")


def _database_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    # Taken for a path, `postgresql://host/db` made a folder named `postgresql:` and ran on SQLite without a word
    # (a Path has made its `//` one `/` by now).
    if value is not None and _URL.match(str(value)):
        raise click.BadParameter("is a SQLite file's path; database URLs are not supported yet", param=param)
    return directories_or_missing(ctx, param, value)


db_option = click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_database_file,
    default=default_db_path,
    envvar="TETHER_DB",
    show_default="$XDG_STATE_HOME/tether/tether.db",
    help="SQLite database file.",
)


def open_store(db_path: Path) -> Store:
    """The database, made with its directory if missing and brought to the newest schema; StartupError in one line if
    it cannot be used (a path under a file, a file that is not a SQLite database, one from a newer Tether)."""
    try:
        return Store(db_path)
    except (sqlite3.Error, OSError) as err:
        raise StartupError(unopenable(db_path, err)) from err


@click.group()
def db() -> None:
    """The database's schema: the numbered migrations it has, and applying the rest (`tether serve` applies them
    itself when it starts)."""


@db.command(name="status")
@db_option
def status_command(db_path: Path) -> None:
    """Print the schema the database is at and each migration it still needs; changes nothing."""
    if not db_path.exists():
        click.echo(f"no database at {db_path}: it is made at schema {LATEST} when first used")
        return
    try:
        with closing(sqlite3.connect(f"{db_path.absolute().as_uri()}?mode=ro", uri=True)) as conn:
            current = status(conn)
    except sqlite3.Error as err:
        raise StartupError(unopenable(db_path, err)) from err
    newer = " (newer than this Tether)" if current.applied > LATEST else ""
    click.echo(f"{db_path}: schema {current.applied} of {LATEST}{newer}")
    for migration in current.pending:
        click.echo(f"pending {migration.number}: {migration.title}")


@db.command(name="upgrade")
@db_option
def upgrade_command(db_path: Path) -> None:
    """Apply the migrations the database still needs, each once, and say which."""
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        with closing(open_database(str(db_path))) as conn:
            applied = upgrade(conn, where=str(db_path))
    except (sqlite3.Error, OSError) as err:
        raise StartupError(unopenable(db_path, err)) from err
    for migration in applied:
        click.echo(f"applied {migration.number}: {migration.title}")
    click.echo(f"{db_path}: schema {LATEST}, up to date")
