"""Fixtures several end-to-end modules share: a controller with the agent `alpha`, and a Mosquitto under the ACL."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Agent, Controller, PersistentMosquitto, tether


@pytest.fixture
def alpha(tmp_path: Path, mosquitto_url: str) -> Iterator[tuple[Controller, Agent]]:
    """A controller and the agent `alpha` on a private Mosquitto, both up and `alpha` online."""
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    agent = Agent(tmp_path, mosquitto_url, "alpha")
    try:
        controller.wait_online("alpha")
        yield controller, agent
    finally:
        agent.stop()
        controller.stop()


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[PersistentMosquitto, dict[str, str]]]:
    """A private Mosquitto under the ACL and passwords `tether broker acl` wrote for dev-a and dev-b."""
    auth = tmp_path / "auth"
    printed = tether("broker", "acl", "--dir", str(auth), "--device", "dev-a", "--device", "dev-b")
    credentials = dict(line.split(" ", 1) for line in printed.splitlines())
    settings = (auth / "mosquitto-tether.conf").read_text().splitlines()
    broker = PersistentMosquitto(tmp_path / "mosquitto", extra_config=tuple(settings), anonymous=False).start()
    try:
        yield broker, credentials
    finally:
        broker.stop()
