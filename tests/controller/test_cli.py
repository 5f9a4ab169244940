"""`tether serve`'s start-up decisions that need no process: which listen addresses count as loopback."""

import pytest

from controller.cli import _is_loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_addresses_may_serve_an_anonymous_broker(host: str) -> None:
    assert _is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "fe80::1", "broker.example", "localhost.evil"])
def test_wildcards_other_addresses_and_host_names_count_as_beyond_loopback(host: str) -> None:
    assert not _is_loopback(host)
