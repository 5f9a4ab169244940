"""Shared fixtures: real brokers, a NATS cluster and PostgreSQL on free ports (tests/fixtures_*.py)."""

pytest_plugins = ["tests.fixtures_brokers", "tests.fixtures_nats", "tests.fixtures_postgres"]
