"""The JSON columns of devices and operations: a value as the text stored, and back; None is NULL either way."""

import json
from typing import Any


def dumped(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def loaded(text: str | None) -> Any:
    return None if text is None else json.loads(text)
