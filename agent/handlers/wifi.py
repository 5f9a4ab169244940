"""SET_WIFI_STATE: switch the Wi-Fi radio on or off."""

from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, StrictBool, field_validator

from agent.errors import UnsupportedOperation
from agent.handlers.base import Handler, HandlerContext
from shared.operations import OperationType, Platform

_WORDS = {"on": True, "enable": True, "true": True, "off": False, "disable": False, "false": False}


@runtime_checkable
class WifiRadio(Protocol):
    """What SET_WIFI_STATE needs of a platform."""

    async def set_wifi(self, enabled: bool) -> None: ...


class WifiArguments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    wifi_state: StrictBool
    """true or false; the words on/off and enable/disable are accepted in any case."""

    @field_validator("wifi_state", mode="before")
    @classmethod
    def _accept_words(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return _WORDS[value.strip().lower()]
            except KeyError:
                raise ValueError(f"expected true/false, 'on'/'off' or 'enable'/'disable', got {value!r}") from None
        return value


class WifiHandler(Handler):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_WIFI_STATE})
    platforms: ClassVar[frozenset[Platform]] = frozenset({Platform.LINUX})
    arguments_model: ClassVar[type[BaseModel]] = WifiArguments

    async def run(self, arguments: WifiArguments, context: HandlerContext) -> dict[str, Any]:
        platform = context.platform
        if not isinstance(platform, WifiRadio):
            raise UnsupportedOperation(f"{OperationType.SET_WIFI_STATE} is not supported on {platform.kind}")
        await platform.set_wifi(arguments.wifi_state)
        return {"wifi_state": "on" if arguments.wifi_state else "off"}
