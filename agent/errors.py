"""Errors of the agent. Any HandlerError becomes a FAILED status whose reason is the error's message.

AgentError
├── ConfigError              bad settings; `tetherd` exits non-zero with one line
├── JournalError             the journal can be neither opened nor replaced (a full or read-only disk, another agent)
└── HandlerError             the command failed; str(err) is the failure_reason, `result` rides along
    ├── UnsupportedOperation  no handler for this type on this platform
    ├── InvalidArguments      `arguments` did not validate against the handler's model
    ├── ToolNotFound          a system tool is not on PATH
    ├── ToolFailed            a system tool exited non-zero
    └── ToolTimeout           a system tool ran past its timeout and was killed
"""

from typing import Any


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(AgentError):
    pass


class JournalError(AgentError):
    pass


class HandlerError(AgentError):
    """A failed command; `result`, if given, travels with the FAILED status (a script's exit code and output)."""

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result


class UnsupportedOperation(HandlerError):
    pass


class InvalidArguments(HandlerError):
    pass


class ToolNotFound(HandlerError):
    pass


class ToolFailed(HandlerError):
    pass


class ToolTimeout(HandlerError):
    pass
