"""The private NATS cluster of tests/fixtures_nats.py, over real MQTT 3.1.1 connections with paho."""

from contextlib import ExitStack

from tests.controller.test_broker import Client, connect
from tests.fixtures_nats import NatsCluster

FAILOVER_S = 20.0
"""How long a session's JetStream consumer may take to elect a new leader once its node died: up to 5 s here."""


def test_a_retained_message_published_on_one_node_reaches_a_subscriber_on_another(nats_cluster: NatsCluster) -> None:
    first, _, third = nats_cluster.mqtt_urls
    with ExitStack() as clients:
        connect(clients, first, "publisher").publish("fleet/d1/status", b"online", retain=True)
        subscriber = connect(clients, third, "subscriber")
        subscriber.subscribe("fleet/+/status")
        [message] = subscriber.wait_for("fleet/d1/status")
    assert (message.payload, message.retain, message.qos) == (b"online", True, 1)


def test_a_persistent_session_on_one_node_outlives_the_killing_of_another(nats_cluster: NatsCluster) -> None:
    first, second, third = nats_cluster.mqtt_urls
    keeper = Client(second, "keeper")
    keeper.subscribe("cmd/#")
    keeper.close()
    nats_cluster.kill(0)
    nats_cluster.wait_ready()  # the survivors elect new leaders for what node 1 led; CONNECTs wait until then
    with ExitStack() as clients:
        connect(clients, third, "sender").publish("cmd/d1", b"reboot")
        back = connect(clients, second, "keeper")  # the same client id: the session it left, with what it missed
        [missed] = back.wait_for("cmd/d1", timeout=FAILOVER_S)
        nats_cluster.start(0)
        nats_cluster.wait_ready()
        connect(clients, first, "returned").publish("cmd/d2", b"wipe")
        [live] = back.wait_for("cmd/d2")
    assert (missed.payload, missed.qos) == (b"reboot", 1)
    assert (live.payload, live.qos) == (b"wipe", 1)
