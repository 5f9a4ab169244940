"""Fixtures the attack modules share."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.attacks.amqtt_logins import AmqttLogins
from tests.e2e.harness import Controller, tether


@pytest.fixture
def amqtt_logins(tmp_path: Path) -> Iterator[AmqttLogins]:
    """`tether serve --embedded-broker amqtt --broker-auth` with logins for dev-a and dev-b."""
    auth = tmp_path / "auth"
    printed = tether("broker", "acl", "--dir", str(auth), "--device", "dev-a", "--device", "dev-b")
    credentials = dict(line.split(" ", 1) for line in printed.splitlines())
    controller = Controller(tmp_path, None, "--embedded-broker", "amqtt", "--broker-auth", str(auth))
    try:
        yield AmqttLogins(controller, credentials)
    finally:
        controller.stop()
