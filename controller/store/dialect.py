"""The few pieces of SQL that SQLite and PostgreSQL spell differently, and SQLite's parameters in psycopg's style.

The store writes its statements once, in the SQL both engines share, and asks its dialect for the rest: reading a
batch packed as one JSON array (controller/store/one_step.py), returning rows as one, and reading JSON text columns.
Pure: no connection, no I/O.
"""

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from controller.store.postgres_schema import AMBIGUOUS, column_types


class Engine(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


@dataclass(frozen=True, slots=True)
class Dialect:
    engine: Engine
    column_types: Mapping[str, str]
    """PostgreSQL's type of each column name (the same in every table that has it); a JSON member read into a column
    is cast to it. Names not listed are text."""

    def rows(self, parameter: str) -> str:
        """A FROM item over a packed batch (a JSON array of rows, or of values), each as `value`, in order."""
        if self.engine is Engine.SQLITE:
            return f"json_each({parameter})"
        return f"jsonb_array_elements(CAST({parameter} AS jsonb)) WITH ORDINALITY AS packed(value, key)"

    def values(self, parameter: str) -> str:
        """A subquery of the values of a packed list of text values: `x IN ({values('?')})`."""
        if self.engine is Engine.SQLITE:
            return f"SELECT value FROM json_each({parameter})"
        return f"SELECT jsonb_array_elements_text(CAST({parameter} AS jsonb))"

    def member(self, index: int, name: str) -> str:
        """Member `index` of a packed row (`value`), named `name` and of that column's type."""
        if self.engine is Engine.SQLITE:
            return f"json_extract(value, '$[{index}]') AS {name}"
        return f"{self._cast(f'value ->> {index}', name)} AS {name}"

    def members(self, named: Iterable[tuple[int, str]]) -> str:
        """The select list naming some members of a packed row, each (its index in the row, its name)."""
        return ", ".join(self.member(index, name) for index, name in named)

    def array_of_arrays(self, columns: str, order: str = "") -> str:
        """An aggregate of the rows' `columns` (an SQL list) as one JSON array of arrays; NULL or `[]` for none.
        `order` (an ORDER BY list) when the order matters: SQLite aggregates rows as its FROM gives them, PostgreSQL
        needs it said."""
        if self.engine is Engine.SQLITE:
            return f"json_group_array(json_array({columns}))"
        return f"json_agg(json_build_array({columns}){f' ORDER BY {order}' if order else ''})"

    def json_text(self, column: str, key: str) -> str:
        """Member `key` of the JSON object in a text column, as text (NULL if absent)."""
        if self.engine is Engine.SQLITE:
            return f"json_extract({column}, '$.{key}')"
        return f"(CAST({column} AS jsonb) ->> '{key}')"

    def json_type(self, column: str, key: str) -> str:
        """The JSON type of member `key` of a text column ('text', 'integer', 'real', 'object', …; NULL if absent),
        as SQLite's json_type names them."""
        if self.engine is Engine.SQLITE:
            return f"json_type({column}, '$.{key}')"
        found = f"jsonb_typeof(CAST({column} AS jsonb) -> '{key}')"
        return f"(CASE {found} WHEN 'string' THEN 'text' WHEN 'number' THEN 'real' ELSE {found} END)"

    def json_array_has(self, column: str, parameter: str) -> str:
        """Whether the JSON array in a text column holds the text value `parameter`."""
        if self.engine is Engine.SQLITE:
            return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE value = {parameter})"
        return f"(CAST({column} AS jsonb) @> jsonb_build_array(CAST({parameter} AS text)))"

    def seconds_after(self, moment: str, seconds: str) -> str:
        """The moment `seconds` (SQL, whole milliseconds) after `moment`, both as controller/clock.py writes them."""
        if self.engine is Engine.SQLITE:
            return f"strftime('%Y-%m-%dT%H:%M:%fZ', {moment}, ({seconds}) || ' seconds')"
        later = f"CAST({moment} AS timestamp) + CAST({seconds} AS double precision) * interval '1 second'"
        return f"""to_char({later}, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""

    def typed_values(self, parameter: str, name: str) -> str:
        """A subquery of the values of a packed list of values of column `name`'s type: `seq IN (...)`."""
        if self.engine is Engine.SQLITE:
            return f"SELECT value FROM json_each({parameter})"
        return f"SELECT {self._cast('value', name)} FROM jsonb_array_elements_text(CAST({parameter} AS jsonb)) AS value"

    def json_object_has(self, column: str, parameter: str) -> str:
        """Whether the JSON object in a text column has the key `parameter`."""
        if self.engine is Engine.SQLITE:
            return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE key = {parameter})"
        return f"(CAST({column} AS jsonb) -> CAST({parameter} AS text)) IS NOT NULL"

    def statistics_refresh(self, table: str, added: int) -> str | None:
        """A statement that tells the planner `table` just grew by `added` rows, when it needs telling."""
        if self.engine is Engine.SQLITE or added < REFRESH_STATISTICS_AFTER_ROWS:
            return None
        return f"ANALYZE {table}"

    def begin_writing(self) -> tuple[str, ...]:
        """The statements that open a write transaction, which waits until no other writer of the database has one:
        the store's read-then-write transactions then hold as they do on SQLite, across every replica."""
        if self.engine is Engine.SQLITE:
            return ("BEGIN IMMEDIATE",)
        return ("BEGIN", f"SELECT pg_advisory_xact_lock({WRITERS_LOCK})")

    def table_exists(self) -> str:
        """A query with one row if the table named by its parameter exists."""
        if self.engine is Engine.SQLITE:
            return "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        return "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?"

    def _cast(self, expression: str, name: str) -> str:
        wanted = self.column_types.get(name, "text")
        if wanted == AMBIGUOUS:
            raise ValueError(f"{name!r} names columns of different types: name the member after one of them")
        return f"({expression})" if wanted == "text" else f"CAST({expression} AS {wanted})"


WRITERS_LOCK = int.from_bytes(b"tether", "big")
"""The PostgreSQL advisory lock every write transaction of every replica takes: one writer at a time, as on SQLite.
Statements still run while readers read; only writers queue."""

REFRESH_STATISTICS_AFTER_ROWS = 1000
"""PostgreSQL plans from statistics that autovacuum refreshes only a minute or more after a table grows: until then
an operation's 100,000 new commands look like none, and each batch of their status updates scanned the whole table
instead of reading its index (O(N) a batch). SQLite plans by the indexes regardless."""

SQLITE = Dialect(Engine.SQLITE, {})
POSTGRESQL = Dialect(Engine.POSTGRESQL, column_types())


_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\?(\d*)|(?<!:):([A-Za-z_]\w*)|%")


@functools.lru_cache(maxsize=4096)
def _converted(sql: str) -> tuple[str, tuple[int | str, ...] | None]:
    """psycopg's form of a statement, and what each of its placeholders takes: a parameter's index or name, in the
    order they appear; None when the statement has no numbered or named ones (plain `?`s take the parameters in
    order, as they are)."""
    taken: list[int | str] = []
    numbered = False
    position = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal numbered, position
        text = match.group(0)
        if text == "%":
            return "%%"
        if text.startswith("?"):
            # SQLite's rule: `?N` is parameter N, a bare `?` the one after the largest number used so far.
            if match.group(1):
                numbered = True
                taken.append(int(match.group(1)) - 1)
                position = max(position, int(match.group(1)))
            else:
                taken.append(position)
                position += 1
            return "%s"
        if match.group(2) is not None:
            numbered = True
            taken.append(match.group(2))
            return "%s"
        return text.replace("%", "%%")  # a literal, an identifier or a comment

    converted = _PLACEHOLDER.sub(replace, sql)
    return converted, tuple(taken) if numbered else None


def psycopg_statement(sql: str, params: Sequence[Any] | Mapping[str, Any]) -> tuple[str, Sequence[Any]]:
    """A statement written with SQLite's parameters (`?`, `?N`, `:name`) and its parameters, as psycopg takes them:
    `%s` placeholders, with the parameters in the order they appear (a numbered one used twice is passed twice)."""
    converted, taken = _converted(sql)
    if taken is None:
        return converted, params if isinstance(params, Sequence) else list(params.values())
    if isinstance(params, Mapping):
        return converted, [params[str(key)] for key in taken]
    return converted, [params[int(key)] for key in taken]
