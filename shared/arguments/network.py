"""Arguments of the network operation types."""

from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool, field_validator

_WORDS = {"on": True, "enable": True, "true": True, "off": False, "disable": False, "false": False}


def switch_word(value: Any) -> Any:
    """Accept on/off, enable/disable and true/false, in any case, where a boolean is expected."""
    if isinstance(value, str):
        try:
            return _WORDS[value.strip().lower()]
        except KeyError:
            raise ValueError(f"expected true/false, 'on'/'off' or 'enable'/'disable', got {value!r}") from None
    return value


class WifiArguments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    wifi_state: StrictBool
    """true or false; the words on/off and enable/disable are accepted in any case."""

    _words = field_validator("wifi_state", mode="before")(switch_word)
