"""The agent's settings: a TOML file (`--config`) with command-line flags on top, validated in one place."""

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.errors import ConfigError
from shared.errors import TopicError
from shared.topics import DEFAULT_PREFIX, Topics, validate_id
from shared.transport import BrokerUrl


class AgentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    broker: str = Field(description="mqtt://[user:pass@]host:port")
    device_id: str
    state_dir: Path
    topic_prefix: str = DEFAULT_PREFIX
    tags: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    time_zone: str | None = Field(default=None, description="IANA zone; detected from the system when unset.")
    boot_id_path: Path = Path("/proc/sys/kernel/random/boot_id")
    reboot_grace_s: float = Field(default=300.0, gt=0)
    tool_timeout_s: float = Field(default=60.0, gt=0)

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        BrokerUrl.parse(value)
        return value

    @field_validator("device_id")
    @classmethod
    def _device_id(cls, value: str) -> str:
        try:
            return validate_id(value, "device id")
        except TopicError as err:
            raise ValueError(str(err)) from err

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        try:
            Topics(value)
        except TopicError as err:
            raise ValueError(str(err)) from err
        return value

    @property
    def broker_url(self) -> BrokerUrl:
        return BrokerUrl.parse(self.broker)


def load_settings(config_file: Path | None, overrides: dict[str, Any]) -> AgentSettings:
    """Merge the TOML file and the flags that were given; raise ConfigError with file, key and problem in one line."""
    values: dict[str, Any] = {}
    source = str(config_file) if config_file else "command line"
    if config_file is not None:
        try:
            values = tomllib.loads(config_file.read_text())
        except OSError as err:
            raise ConfigError(f"{config_file}: cannot read: {err.strerror}") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{config_file}: invalid TOML: {err}") from err
    values.update({key: value for key, value in overrides.items() if value not in (None, ())})
    try:
        return AgentSettings.model_validate(values)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "settings"
        message = "missing (set it in the config file or with its flag)" if first["type"] == "missing" else first["msg"]
        raise ConfigError(f"{source}: {key}: {message}") from err
