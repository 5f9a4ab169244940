"""Text that UTF-8 cannot encode: where JSON holds it, and how to show it.

JSON may escape a lone UTF-16 surrogate (`"\\ud800"`), and Python decodes that to a `str` that no UTF-8 encoder,
SQLite binding or signature will take. Such text is refused where it enters; what an older version stored is found
with `unencodable_field` and shown by `displayable` with U+FFFD in its place.
"""

import re
from typing import Any

REPLACEMENT = "\ufffd"
DESCRIPTION = "is not valid Unicode: it holds a lone UTF-16 surrogate (a JSON escape such as \\ud800 without its pair)"
_SURROGATE = re.compile("[\ud800-\udfff]")


class UnencodableText(ValueError):
    """A JSON value holds text UTF-8 cannot encode; `field` is its dotted path."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field}: {DESCRIPTION}")
        self.field = field


def _encodable(text: str) -> bool:
    # ASCII first: nearly all text is, and that check is the cheapest.
    return text.isascii() or _SURROGATE.search(text) is None


def _shown(text: str) -> str:
    """`text` as it can be written in a message: a lone surrogate as its escape, e.g. `\\ud800`."""
    return text.encode("utf-8", "backslashreplace").decode()


def unencodable_field(value: Any) -> str | None:
    """The dotted path of the first key or string in a JSON value that UTF-8 cannot encode; None if there is none."""
    found = _find(value)
    return None if found is None else ".".join(_shown(str(part)) for part in reversed(found))


def _find(value: Any) -> list[str | int] | None:
    """The path to the first unencodable text, innermost part first; built only once found."""
    if isinstance(value, str):
        return None if _encodable(value) else []
    if isinstance(value, dict):
        for key, member in value.items():
            if not _encodable(key):
                return [key]
            if (inner := _find(member)) is not None:
                inner.append(key)
                return inner
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if (inner := _find(item)) is not None:
                inner.append(index)
                return inner
    return None


def displayable(value: Any) -> Any:
    """`value` itself when UTF-8 can encode all of it; else a copy with U+FFFD for each lone surrogate."""
    if unencodable_field(value) is None:
        return value
    return _replaced(value)


def _replaced(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {_SURROGATE.sub(REPLACEMENT, key): _replaced(member) for key, member in value.items()}
    if isinstance(value, list):
        return [_replaced(item) for item in value]
    return value
