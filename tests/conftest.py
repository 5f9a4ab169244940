"""Shared fixtures: real brokers and PostgreSQL on free ports (tests/fixtures_*.py)."""

pytest_plugins = ["tests.fixtures_brokers", "tests.fixtures_postgres"]
