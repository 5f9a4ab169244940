"""Which node of a broker cluster to connect to next, and how long to wait before: pure, shared by both programs."""

from collections.abc import Sequence

from shared.transport import BrokerUrl

FIRST_BACKOFF_S = 0.5


class Failover:
    """The next node is tried at once after a failure or a lost connection; the wait (0.5 s, doubling up to
    `backoff_max_s`) is taken only once every node has failed in a row, so a dead node costs one attempt."""

    def __init__(self, urls: Sequence[BrokerUrl], backoff_max_s: float) -> None:
        if not urls:
            raise ValueError("at least one broker URL is needed")
        self._urls = list(urls)
        self._backoff_max_s = backoff_max_s
        self._index = 0
        self._failed = 0
        self._backoff = FIRST_BACKOFF_S

    @property
    def current(self) -> BrokerUrl:
        """The node to connect to now."""
        return self._urls[self._index]

    def connected(self) -> None:
        """A connection was made (and subscribed): the next loss starts afresh."""
        self._failed = 0
        self._backoff = FIRST_BACKOFF_S

    def failed(self) -> float:
        """The connection to `current` failed or was lost: move to the next node; return the seconds to wait first."""
        self._index = (self._index + 1) % len(self._urls)
        self._failed += 1
        if self._failed % len(self._urls):
            return 0.0
        wait = self._backoff
        self._backoff = min(self._backoff * 2, self._backoff_max_s)
        return wait
