"""Arguments of APPLY_APP_CONFIG: a managed app configuration, a JSON object written where the app reads it."""

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

APP_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
"""The app's name, which names its file: no `/`, no leading `-` or `.`; `..` is refused besides."""
SERVICE_UNIT = r"^[A-Za-z0-9][A-Za-z0-9:_.@-]{0,200}\.service$"
"""A systemd service's name (a template's instance included); never an option, never an escape sequence."""
MAX_CONFIG_DEPTH = 16
"""Objects and arrays nested at most this deep (the configuration object itself is depth 1)."""
MAX_CONFIG_KEYS = 4096
"""At most this many keys in all the configuration's objects together."""
MAX_KEY_LENGTH = 256


def _check_shape(value: Any, depth: int, keys: list[int]) -> None:
    if isinstance(value, dict | list) and depth > MAX_CONFIG_DEPTH:
        raise ValueError(f"nested more than {MAX_CONFIG_DEPTH} deep")
    if isinstance(value, dict):
        keys[0] += len(value)
        if keys[0] > MAX_CONFIG_KEYS:
            raise ValueError(f"more than {MAX_CONFIG_KEYS} keys")
        for key, item in value.items():
            if len(key) > MAX_KEY_LENGTH:
                raise ValueError(f"a key is longer than {MAX_KEY_LENGTH} characters")
            _check_shape(item, depth + 1, keys)
    elif isinstance(value, list):
        for item in value:
            _check_shape(item, depth + 1, keys)


class AppConfigArguments(BaseModel):
    """APPLY_APP_CONFIG: `config` replaces the app's configuration file; `restart_unit` is restarted if running."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    app: str = Field(pattern=APP_NAME)
    config: dict[str, JsonValue]
    restart_unit: str | None = Field(default=None, pattern=SERVICE_UNIT)

    @field_validator("app")
    @classmethod
    def _no_parent(cls, app: str) -> str:
        if ".." in app:
            raise ValueError("an app name cannot hold '..'")
        return app

    @field_validator("config")
    @classmethod
    def _bounded(cls, config: dict[str, JsonValue]) -> dict[str, JsonValue]:
        _check_shape(config, 1, [0])
        try:
            json.dumps(config, allow_nan=False)
        except ValueError as err:  # NaN and infinities are no JSON
            raise ValueError(f"not JSON: {err}") from err
        return config

    def document(self) -> bytes:
        """The file's bytes: the same configuration always gives the same bytes (sorted keys, two-space indent)."""
        return (json.dumps(self.config, sort_keys=True, indent=2, allow_nan=False) + "\n").encode()
