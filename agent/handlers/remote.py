"""REMOTE_CONNECTION: a reverse SSH tunnel to the bastion of the agent's config, opened for a while or closed."""

import hashlib
from typing import Any, ClassVar

from agent.config import RemoteConnectionSettings
from agent.errors import UnsupportedOperation
from agent.handlers.base import Handler, HandlerContext, PlatformTools
from agent.platforms.contract import RemoteTunnel
from shared.arguments.remote import RemoteConnectionArguments
from shared.operations import OperationType


def remote_port(bastion: RemoteConnectionSettings, device_id: str) -> int:
    """The bastion port of `device_id`'s tunnel: always the same one of `remote_port_range` for the same device."""
    first, last = bastion.remote_port_range
    return first + int.from_bytes(hashlib.sha256(device_id.encode()).digest()[:8], "big") % (last - first + 1)


class RemoteConnectionHandler(Handler[RemoteConnectionArguments, RemoteTunnel]):
    """Offered only where the agent config has a `[remote_connection]` section: the command never names the bastion."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.REMOTE_CONNECTION})

    def __init__(self, bastion: RemoteConnectionSettings | None = None) -> None:
        self.bastion = bastion

    def supports(self, platform: PlatformTools) -> bool:
        return self.bastion is not None and super().supports(platform)

    async def run(self, arguments: RemoteConnectionArguments, context: HandlerContext[RemoteTunnel]) -> dict[str, Any]:
        if arguments.close:
            return await context.platform.close_remote_connection()
        if self.bastion is None or arguments.duration_s is None:  # not offered without it; the model requires it
            raise UnsupportedOperation("no bastion to connect to: set [remote_connection] in the agent config")
        port = remote_port(self.bastion, context.command.device_id)
        return await context.platform.open_remote_connection(self.bastion, port, arguments.duration_s)
