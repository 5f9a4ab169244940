"""The broker's rules, pure: who logs in, and which topics each login may subscribe to, publish and receive."""

from pathlib import Path

import pytest

from controller.broker_auth import Access, BrokerAuth, Refusal, password_line, verify_password
from shared.topics import Topics

P = "tether/v1/devices"


def auth() -> BrokerAuth:
    lines = [password_line("tether-controller", "c-secret"), password_line("dev-a", "a-secret")]
    passwords = dict(line.split(":", 1) for line in lines)
    return BrokerAuth(Path("."), passwords, Topics(), "tether-controller", "c-secret")


def test_passwords_verify_as_mosquitto_hashes_them() -> None:
    encoded = password_line("dev-a", "a-secret").split(":", 1)[1]
    assert verify_password(encoded, "a-secret")
    assert not verify_password(encoded, "a-secreT")
    assert not verify_password("$6$x$y", "a-secret")
    assert not verify_password("garbage", "a-secret")
    assert not verify_password("$7$101$!!$!!", "a-secret")


@pytest.mark.parametrize(
    ("user", "password", "admitted"),
    [
        ("dev-a", "a-secret", True),
        ("dev-a", "wrong", False),
        ("dev-a", None, False),
        (None, None, False),
        ("dev-z", "a-secret", False),
        ("tether-controller", "c-secret", True),
    ],
)
def test_only_the_password_files_logins_get_in(user: str | None, password: str | None, admitted: bool) -> None:
    assert auth().admits(user, password) is admitted


@pytest.mark.parametrize(
    ("user", "access", "topic", "permitted"),
    [
        ("tether-controller", Access.PUBLISH, f"{P}/dev-b/commands/c1", True),
        ("tether-controller", Access.SUBSCRIBE, f"{P}/+/status/+", True),
        ("tether-controller", Access.SUBSCRIBE, "tether/v1/#", True),
        ("tether-controller", Access.SUBSCRIBE, "#", False),
        ("tether-controller", Access.PUBLISH, "elsewhere/x", False),
        ("dev-a", Access.SUBSCRIBE, f"{P}/dev-a/commands/+", True),
        ("dev-a", Access.SUBSCRIBE, f"{P}/dev-a/cancel/+", True),
        ("dev-a", Access.SUBSCRIBE, f"{P}/dev-a/#", False),
        ("dev-a", Access.SUBSCRIBE, f"{P}/+/commands/+", False),
        ("dev-a", Access.SUBSCRIBE, f"{P}/dev-b/commands/+", False),
        ("dev-a", Access.SUBSCRIBE, "tether/v1/#", False),
        ("dev-a", Access.SUBSCRIBE, f"{P}/dev-a/status/+", False),
        ("dev-a", Access.RECEIVE, f"{P}/dev-a/commands/c1", True),
        ("dev-a", Access.RECEIVE, f"{P}/dev-b/commands/c1", False),
        ("dev-a", Access.RECEIVE, f"{P}/dev-a/status/c1", False),
        ("dev-a", Access.PUBLISH, f"{P}/dev-a/status/c1", True),
        ("dev-a", Access.PUBLISH, f"{P}/dev-a/announce", True),
        ("dev-a", Access.PUBLISH, f"{P}/dev-a/presence", True),
        ("dev-a", Access.PUBLISH, f"{P}/dev-b/status/c1", False),
        ("dev-a", Access.PUBLISH, f"{P}/dev-a/commands/c1", False),
        ("dev-a", Access.PUBLISH, f"{P}/dev-b/presence", False),
        ("dev-a", Access.PUBLISH, f"{P}/dev-a/status/c1/extra", False),
        ("dev-a", Access.PUBLISH, f"{P}/dev-a/status/", False),
        ("dev-a", Access.PUBLISH, "tether/v1/operations/o1/events", False),
        (None, Access.SUBSCRIBE, f"{P}/dev-a/commands/+", False),
        ("bad/user", Access.PUBLISH, f"{P}/bad/user/status/c1", False),
    ],
)
def test_each_login_reaches_only_its_own_topics_in_its_own_direction(
    user: str | None, access: Access, topic: str, permitted: bool
) -> None:
    assert auth().permits(user, access, topic) is permitted


def test_the_controller_login_goes_into_its_url_escaped() -> None:
    odd = BrokerAuth(Path("."), {}, Topics(), "tether-controller", "p@ss:w/rd")
    assert odd.login_url("mqtt://127.0.0.1:1883") == "mqtt://tether-controller:p%40ss%3Aw%2Frd@127.0.0.1:1883"


@pytest.mark.parametrize(
    ("user", "password", "client_id", "will_topic", "refusal"),
    [
        ("dev-a", "a-secret", "tetherd-dev-a", None, None),
        ("dev-a", "a-secret", "tetherd-dev-a", f"{P}/dev-a/presence", None),
        ("dev-a", "wrong", "tetherd-dev-a", None, Refusal.NOT_AUTHORIZED),
        (None, None, "tetherd-dev-a", None, Refusal.NOT_AUTHORIZED),
        ("dev-a", "a-secret", "tetherd-dev-b", None, Refusal.IDENTIFIER_REJECTED),
        ("dev-a", "a-secret", "tether-controller", None, Refusal.IDENTIFIER_REJECTED),
        ("dev-a", "a-secret", "dev-a", None, Refusal.IDENTIFIER_REJECTED),
        ("dev-a", "a-secret", "tetherd-dev-a", f"{P}/dev-b/status/c1", Refusal.NOT_AUTHORIZED),
        ("dev-a", "a-secret", "tetherd-dev-a", f"{P}/dev-a/commands/c1", Refusal.NOT_AUTHORIZED),
        ("tether-controller", "wrong", "tether-controller", None, Refusal.NOT_AUTHORIZED),
        ("tether-controller", "c-secret", "tether-controller", None, None),
        ("tether-controller", "c-secret", "tether-simulator-0", None, None),
        ("tether-controller", "c-secret", "tetherd-dev-a", f"{P}/dev-a/presence", None),
    ],
)
def test_a_connect_is_refused_for_a_bad_login_a_client_id_not_its_own_or_a_will_it_could_not_publish(
    user: str | None, password: str | None, client_id: str, will_topic: str | None, refusal: Refusal | None
) -> None:
    assert auth().refusal(user, password, client_id, will_topic) is refusal


@pytest.mark.parametrize(
    ("user", "topic", "kept"),
    [
        ("tether-controller", "tether/v1/devices/dev-a/command/c1", True),
        ("dev-a", "tether/v1/devices/dev-a/announce", True),
        ("dev-a", "tether/v1/devices/dev-a/presence", True),
        ("dev-a", "tether/v1/devices/dev-a/status/c1", False),
        ("dev-a", "tether/v1/devices/dev-b/announce", False),
        (None, "tether/v1/devices/dev-a/announce", False),
    ],
)
def test_a_device_may_retain_only_its_own_announcement_and_presence(user: str | None, topic: str, kept: bool) -> None:
    assert auth().may_retain(user, topic) is kept
