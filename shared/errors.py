"""Errors of the wire contract.

TetherProtocolError
├── IllegalTransition   a lifecycle move the transition table forbids
├── TopicError          a topic that is not one of Tether's, or names an invalid id
└── PayloadError        a payload that is not valid JSON for its model, or is too large
"""


class TetherProtocolError(Exception):
    """Base of every error raised by the shared contract code."""


class IllegalTransition(TetherProtocolError):
    pass


class TopicError(TetherProtocolError):
    pass


class PayloadError(TetherProtocolError):
    pass
