"""SET_WIFI_STATE: switch the Wi-Fi radio on or off."""

from typing import Any, ClassVar

from agent.handlers.base import Handler, HandlerContext
from agent.platforms.contract import WifiRadio
from shared.arguments.network import WifiArguments
from shared.operations import OperationType


class WifiHandler(Handler[WifiArguments, WifiRadio]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_WIFI_STATE})

    async def run(self, arguments: WifiArguments, context: HandlerContext[WifiRadio]) -> dict[str, Any]:
        platform = context.platform
        await platform.set_wifi(arguments.wifi_state)
        return {"wifi_state": "on" if arguments.wifi_state else "off"}
