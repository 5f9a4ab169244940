"""Logging for both programs: text for a terminal, or one JSON object per line for a log pipeline.

Lines written while an operation or a command is being handled carry its ids as fields (`operation_id`,
`command_id`), whichever module writes them: the handling code marks what it is about with `about()`.
"""

import contextlib
import json
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT_FIELDS = ("operation_id", "command_id", "device_id")

_context: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("tether_log_context", default=())
"""(field, value) pairs of what the current task is about."""


@contextlib.contextmanager
def about(**ids: str | None) -> Iterator[None]:
    """Within this block (and the task's awaits), log lines carry these ids."""
    merged = dict(_context.get()) | {name: value for name, value in ids.items() if value is not None}
    token = _context.set(tuple(merged.items()))
    try:
        yield
    finally:
        _context.reset(token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: str, log_format: LogFormat = "text") -> None:
    """Log to standard error at `level` in `log_format`, with the ids of what each line is about."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(_ContextFilter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
