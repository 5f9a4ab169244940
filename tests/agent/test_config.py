"""The agent's broker settings: one URL or the nodes of a cluster, from the TOML file or repeated --broker flags."""

from pathlib import Path

import pytest

from agent.config import load_settings
from agent.errors import ConfigError
from shared.transport import BrokerUrl


def config_file(tmp_path: Path, broker: str, extra: str = "") -> Path:
    path = tmp_path / "tetherd.toml"
    path.write_text(f'broker = {broker}\ndevice_id = "d1"\nstate_dir = "{tmp_path}"\n{extra}')
    return path


def test_a_single_url_as_before_is_a_list_of_one(tmp_path: Path) -> None:
    settings = load_settings(config_file(tmp_path, '"mqtt://a:1883"'), {})
    assert settings.broker_urls == [BrokerUrl("a", 1883)]
    assert settings.broker_url == BrokerUrl("a", 1883)


def test_the_nodes_of_a_cluster_keep_their_order_and_share_one_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TETHER_BROKER_PASSWORD", "s3cret")
    settings = load_settings(config_file(tmp_path, '["mqtt://dev@b:1884", "mqtt://dev@a:1883"]'), {})
    assert settings.broker_urls == [
        BrokerUrl("b", 1884, "dev", "s3cret"),
        BrokerUrl("a", 1883, "dev", "s3cret"),
    ]


def test_repeated_broker_flags_replace_the_files_list(tmp_path: Path) -> None:
    config = config_file(tmp_path, '["mqtt://a:1883", "mqtt://b:1883"]')
    settings = load_settings(config, {"broker": ("mqtt://c:1883", "mqtt://d:1883")})
    assert settings.broker_urls == [BrokerUrl("c", 1883), BrokerUrl("d", 1883)]
    assert load_settings(config, {"broker": ()}).broker_urls == [BrokerUrl("a", 1883), BrokerUrl("b", 1883)]


@pytest.mark.parametrize(
    ("broker", "problem"),
    [
        ("[]", "broker: List should have at least 1 item after validation, not 0"),
        ('["mqtt://a:1883", "http://b"]', "broker: Value error, broker URL 'http://b' must start with mqtt://"),
        (
            '["mqtt://a:1883", "mqtts://b:8883"]',
            "settings: Value error, the broker URLs mix mqtt:// and mqtts://: one TLS setting serves them all",
        ),
    ],
)
def test_an_unusable_list_is_one_line_naming_the_key(tmp_path: Path, broker: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(config_file(tmp_path, broker), {})
    assert str(raised.value).startswith(f"{tmp_path / 'tetherd.toml'}: {problem}")
