"""Whether the device still reaches its broker: what a network change must not break to be kept."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from agent.errors import HandlerError
from shared.transport import BrokerUrl

ReachabilityCheck = Callable[[], Awaitable[bool]]
"""True when the broker can be reached now; given to the platform by the handler of a network change."""

REACH_WITHIN_S = 30.0
"""How long a check keeps trying: an address that was just applied may need a moment (IPv6 duplicate detection)."""


async def no_broker() -> bool:
    raise HandlerError("this agent knows no broker to check a network change against")


@dataclass(frozen=True, slots=True)
class BrokerReachability:
    """Opens a TCP connection to each of the broker's nodes in turn, until one opens or `within_s` has passed.

    A connection that opens proves the address, route and firewall the agent's session needs; the session itself
    would notice a dead connection only after its keep-alive, far too late to decide on a change.
    """

    nodes: tuple[tuple[str, int], ...]
    within_s: float = REACH_WITHIN_S
    attempt_s: float = 5.0
    retry_s: float = 1.0

    @classmethod
    def of(cls, urls: Sequence[BrokerUrl]) -> "BrokerReachability":
        return cls(tuple((url.host, url.port) for url in urls))

    async def __call__(self) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.within_s
        while True:
            for host, port in self.nodes:
                left = deadline - loop.time()
                if left > 0 and await _connects(host, port, min(self.attempt_s, left)):
                    return True
            if loop.time() + self.retry_s >= deadline:
                return False
            await asyncio.sleep(self.retry_s)


async def _connects(host: str, port: int, timeout: float) -> bool:  # noqa: ASYNC109  (one attempt's own limit)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
