"""SET_STREAM_VOLUME: the volume of one audio stream, where the platform has that stream."""

from typing import Any, ClassVar, cast

from agent.handlers.base import Handler, HandlerContext
from agent.platforms.contract import Audio
from shared.arguments.system import VolumeArguments
from shared.operations import OperationType


class VolumeHandler(Handler):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_STREAM_VOLUME})
    needs: ClassVar[type[Any]] = Audio

    async def run(self, arguments: VolumeArguments, context: HandlerContext) -> dict[str, Any]:
        await cast(Audio, context.platform).set_stream_volume(arguments.stream, arguments.volume)
        return {"stream": arguments.stream.value, "volume": arguments.volume}
