"""The private PostgreSQL of tests/fixtures_postgres.py, over real psycopg connections."""

import psycopg
import pytest

from tests.fixtures_postgres import PASSWORD_ROLE, SUPERUSER, PostgresDatabase


def test_a_table_written_is_read_back(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE devices (id text PRIMARY KEY, seen integer NOT NULL)")
        conn.execute("INSERT INTO devices VALUES (%s, %s), (%s, %s)", ("d1", 1, "d2", 2))
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT id, seen FROM devices ORDER BY id").fetchall()
        user = conn.execute("SELECT current_user").fetchone()
    assert rows == [("d1", 1), ("d2", 2)]
    assert user == (SUPERUSER,)


def test_each_test_gets_an_empty_database_of_its_own(postgres_database: PostgresDatabase) -> None:
    with psycopg.connect(postgres_database.url) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        ).fetchone()
    assert tables == (0,)
    assert owner == (PASSWORD_ROLE,)


def test_the_password_role_logs_in_with_its_password_and_not_without(postgres_database: PostgresDatabase) -> None:
    with psycopg.connect(postgres_database.password_url) as conn:
        conn.execute("CREATE TABLE t (x integer)")  # it owns the database, so it may create in it
        assert conn.execute("SELECT current_user").fetchone() == (PASSWORD_ROLE,)
    wrong = postgres_database.server.url(postgres_database.name, role=PASSWORD_ROLE, password="wrong")
    with pytest.raises(psycopg.OperationalError, match=f'password authentication failed for user "{PASSWORD_ROLE}"'):
        psycopg.connect(wrong)
    missing = postgres_database.server.url(postgres_database.name, role=PASSWORD_ROLE)
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(missing)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_data_outlives_a_stop_and_start(postgres_database: PostgresDatabase, mode: str) -> None:
    server = postgres_database.server
    with psycopg.connect(postgres_database.url) as conn:
        conn.execute("CREATE TABLE kept (x integer)")
        conn.execute("INSERT INTO kept VALUES (42)")
    server.stop("immediate" if mode == "immediate" else "fast")
    assert not server.running
    with pytest.raises(psycopg.OperationalError, match="Connection refused"):
        psycopg.connect(postgres_database.url, connect_timeout=2)
    server.start()
    with psycopg.connect(postgres_database.url) as conn:
        assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]


def test_a_connection_open_across_a_restart_fails_and_a_new_one_works(postgres_database: PostgresDatabase) -> None:
    with psycopg.connect(postgres_database.url, autocommit=True) as conn:
        postgres_database.server.restart("immediate")
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    with psycopg.connect(postgres_database.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
