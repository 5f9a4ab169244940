"""Faults under the controller itself: its managed Mosquitto dies, the controller is SIGKILLed, its broker goes silent.

Each test runs real processes (`tether serve`, `tetherd`, Mosquitto, a TCP proxy) and checks what a device that did
its work meanwhile ends up recorded as: never "timed out" for a silence the controller could not have heard.
"""

import asyncio
import time

import pytest

from controller import mqtt_link
from controller.fastmqtt.codec import Publish
from controller.mqtt_link import MqttLink
from shared.transport import BrokerUrl
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

KEEPALIVE_S = 2


def test_a_broker_gone_silent_behind_a_proxy_is_noticed_within_one_and_a_half_keepalives_and_the_link_reconnects(
    mosquitto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mqtt_link, "KEEPALIVE_S", KEEPALIVE_S)
    with TcpProxy.to_url(mosquitto_url) as proxy:
        asyncio.run(_silent_broker_scenario(proxy))


async def _silent_broker_scenario(proxy: TcpProxy) -> None:
    received: list[Publish] = []
    arrived = asyncio.Event()

    def on_message(message: Publish) -> bool:
        received.append(message)
        arrived.set()
        return True  # dealt with for good: acknowledge it

    link = MqttLink(
        BrokerUrl.parse(proxy.url),
        identifier="controller-behind-a-proxy",
        subscriptions=["silence/#"],
        on_message=on_message,
    )
    running = asyncio.create_task(link.run())
    try:
        async with asyncio.timeout(10):
            await link.wait_connected()
        await asyncio.sleep(KEEPALIVE_S)  # a few keep-alives answered: the connection is healthy

        proxy.freeze()
        frozen_at = time.monotonic()
        async with asyncio.timeout(3 * KEEPALIVE_S):
            while link.connected:  # noqa: ASYNC110 -- the link offers no event for losing its connection
                await asyncio.sleep(0.02)
        noticed_after = time.monotonic() - frozen_at
        assert noticed_after <= 1.5 * KEEPALIVE_S, noticed_after

        async with asyncio.timeout(10):
            await link.wait_connected()
        assert proxy.forwarded == 2
        await link.publish([("silence/after", b"heard")], retain=False)
        async with asyncio.timeout(5):
            await arrived.wait()
        assert [(message.topic, message.payload) for message in received] == [("silence/after", b"heard")]
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
