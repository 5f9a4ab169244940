"""shared/failover.py: the order nodes are tried in and the waits between rounds."""

import pytest

from shared.failover import Failover
from shared.transport import BrokerUrl

A, B, C = BrokerUrl("a"), BrokerUrl("b"), BrokerUrl("c")


def attempts(failover: Failover, count: int) -> list[tuple[str, float]]:
    """(node tried, wait before the next attempt) for `count` failures in a row."""
    tried = []
    for _ in range(count):
        node = failover.current.host
        tried.append((node, failover.failed()))
    return tried


def test_one_url_waits_after_every_failure_doubling_to_the_limit() -> None:
    assert attempts(Failover([A], backoff_max_s=3.0), 5) == [("a", 0.5), ("a", 1.0), ("a", 2.0), ("a", 3.0), ("a", 3.0)]


def test_a_cluster_tries_every_node_at_once_and_waits_only_after_a_whole_round() -> None:
    assert attempts(Failover([A, B, C], backoff_max_s=30.0), 7) == [
        ("a", 0.0),
        ("b", 0.0),
        ("c", 0.5),
        ("a", 0.0),
        ("b", 0.0),
        ("c", 1.0),
        ("a", 0.0),
    ]


def test_a_connection_resets_the_wait_and_a_loss_moves_on_to_the_next_node() -> None:
    failover = Failover([A, B], backoff_max_s=30.0)
    assert attempts(failover, 4) == [("a", 0.0), ("b", 0.5), ("a", 0.0), ("b", 1.0)]
    failover.connected()  # on a
    assert failover.current == A
    assert attempts(failover, 2) == [("a", 0.0), ("b", 0.5)]


def test_no_url_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one broker URL"):
        Failover([], backoff_max_s=1.0)
