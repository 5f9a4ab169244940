"""SET_STREAM_VOLUME: the volume of one audio stream, where the platform has that stream."""

from typing import Any, ClassVar

from agent.handlers.base import Handler, HandlerContext
from agent.platforms.contract import Audio
from shared.arguments.system import VolumeArguments
from shared.operations import OperationType


class VolumeHandler(Handler[VolumeArguments, Audio]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_STREAM_VOLUME})

    async def run(self, arguments: VolumeArguments, context: HandlerContext[Audio]) -> dict[str, Any]:
        await context.platform.set_stream_volume(arguments.stream, arguments.volume)
        return {"stream": arguments.stream.value, "volume": arguments.volume}
