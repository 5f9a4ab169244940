"""Shared fixtures: real brokers on free ports (tests/fixtures_brokers.py)."""

pytest_plugins = ["tests.fixtures_brokers"]
