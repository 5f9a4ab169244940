"""The database from the operator's side: `tether db status|upgrade`, one `tether serve` per SQLite file, and a
database URL that is not taken for a path."""

import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest

from controller.store.migrations import LATEST, MIGRATIONS
from tests.e2e.harness import BIN, Controller, Process
from tests.e2e.test_cli import assert_one_line_error, run
from tests.fixtures_brokers import free_port


def tether(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "tether"), *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


def said(done: subprocess.CompletedProcess[str]) -> tuple[int, str]:
    return done.returncode, done.stdout


def test_status_and_upgrade_say_where_the_schema_is_and_apply_each_migration_once(tmp_path: Path) -> None:
    db = tmp_path / "state" / "tether.db"
    assert said(tether("db", "status", "--db", str(db))) == (
        0,
        f"no database at {db}: it is made at schema {LATEST} when first used\n",
    )
    assert not db.exists()

    applied = "".join(f"applied {m.number}: {m.title}\n" for m in MIGRATIONS)
    assert said(tether("db", "upgrade", "--db", str(db))) == (0, f"{applied}{db}: schema {LATEST}, up to date\n")
    assert said(tether("db", "upgrade", "--db", str(db))) == (0, f"{db}: schema {LATEST}, up to date\n")
    assert said(tether("db", "status", "--db", str(db))) == (0, f"{db}: schema {LATEST} of {LATEST}\n")


def test_a_database_from_a_newer_tether_is_shown_and_refused_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "tether.db"
    assert tether("db", "upgrade", "--db", str(db)).returncode == 0
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("INSERT INTO schema_migrations VALUES (99, 'from the future', '2030-01-01T00:00:00.000Z')")

    assert said(tether("db", "status", "--db", str(db))) == (
        0,
        f"{db}: schema 99 of {LATEST} (newer than this Tether)\n",
    )
    for args in (("db", "upgrade"), ("keys", "create", "--name", "ops", "--role", "admin")):
        done = tether(*args, "--db", str(db))
        assert done.returncode == 1
        assert_one_line_error(done, f"{db} is at schema 99, newer than this Tether knows ({LATEST})")


@pytest.mark.parametrize(
    "command", [["serve"], ["keys", "create", "--name", "ops", "--role", "admin"], ["db", "upgrade"]]
)
def test_a_url_of_another_database_is_refused_not_made_into_a_folder(tmp_path: Path, command: list[str]) -> None:
    done = tether(*command, "--db", "mysql://tether@127.0.0.1/tether", cwd=tmp_path)
    assert done.returncode == 2
    assert_one_line_error(done, "'--db'", "no database Tether knows: give a file or a postgresql:// URL")
    assert list(tmp_path.iterdir()) == []


def test_a_second_serve_on_the_same_file_is_refused_and_the_first_keeps_serving(tmp_path: Path) -> None:
    first = Controller(tmp_path)
    try:
        second = run(
            str(BIN / "tether"),
            "serve",
            "--db",
            str(first.db),
            "--http-listen",
            f"127.0.0.1:{free_port()}",
            "--mqtt-listen",
            f"127.0.0.1:{free_port()}",
            "--embedded-broker",
            "amqtt",
            timeout=60,
        )
        assert second.returncode == 1
        assert_one_line_error(
            second, f"another tether serve (pid {first.process.popen.pid}) is serving {first.db}: one controller"
        )
        assert first.get("/v0/operations/")["count"] == 0
        # The CLI's own commands still work beside it (WAL).
        assert tether("keys", "create", "--name", "reader", "--role", "read", "--db", str(first.db)).returncode == 0
    finally:
        first.process.kill()  # SIGKILL: the kernel lets go of the lock, no stale file to clear by hand
        first.http.close()
    # The same command line again, once the first is gone: nothing left behind refuses it.
    again = Controller.adopt(Process(first.process.argv, tmp_path / "again.log"), first.http_port, first.key)
    try:
        assert again.get("/v0/operations/")["count"] == 0
    finally:
        again.stop()
