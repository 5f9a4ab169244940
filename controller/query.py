"""The device query language of `operation_device_query`, compiled once into a fast pure predicate over devices."""

import json
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from math import isfinite
from typing import Any, Final, TypeVar

ROOT: Final = "operation_device_query"
MAX_DEPTH: Final = 8
"""Queries nested in `$and`, `$or` and `$not` may go this many levels deep, the whole query counting as one."""
MAX_VALUES: Final = 10_000
"""The longest list `$in`, `$nin`, `$all`, `$and` and `$or` accept."""
MAX_TOTAL_VALUES: Final = 50_000
"""The most JSON values a whole query may hold: every object, list, string, number, boolean and null counts one."""
MAX_BYTES: Final = 1024 * 1024
"""The largest query, written as compact JSON in UTF-8."""
MAX_JSON_DEPTH: Final = 64
"""How deep values may nest inside a query, the whole query being the first level."""

FIELD_OPERATORS: Final = ("$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists", "$all", "$prefix")
LOGICAL_OPERATORS: Final = ("$and", "$or", "$not")
_COMPARISONS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}

_MISSING: Final = object()
"""What a path that does not exist in a device resolves to; no JSON value equals it."""
_UNHASHABLE: Final = object()

Predicate = Callable[[Mapping[str, Any]], bool]
_T = TypeVar("_T")
_Test = Callable[[Any], bool]
"""Tests the value at a field's path, which is `_MISSING` when the path does not exist."""


class QueryError(ValueError):
    """An invalid `operation_device_query`; the message starts with `field`, the place in the query that is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _invalid(where: str, problem: str) -> QueryError:
    return QueryError(where, f"{where}: {problem}")


@dataclass(frozen=True, slots=True)
class DeviceQuery:
    """A validated, compiled `operation_device_query`; make one with `compile_query`."""

    source: Mapping[str, Any]
    """A copy of the JSON as given, which the query's behaviour depends on alone."""
    _predicate: Predicate = field(repr=False, compare=False)
    _ids: frozenset[str] | None = field(repr=False, compare=False)
    _all: bool = field(repr=False, compare=False)
    _fields: frozenset[str] = field(repr=False, compare=False)

    def matches(self, device: Mapping[str, Any]) -> bool:
        return self._predicate(device)

    @property
    def selects_all(self) -> bool:
        """True only for `{"all": true}`."""
        return self._all

    def device_ids(self) -> frozenset[str] | None:
        """The device ids the query can at most select, when its `device_id` clauses bound them, else None.

        `device_id` equality and `$in`, ANDed with anything (or ORed with other bounded queries), bound the
        selection, so the store can fetch only those rows before running `matches` on them.
        """
        return self._ids

    @property
    def fields(self) -> frozenset[str]:
        """The top-level document fields (`tags`, `inventory`...) the query reads: the store decodes only those."""
        return self._fields


@dataclass(frozen=True, slots=True)
class _Node:
    predicate: Predicate
    ids: frozenset[str] | None
    fields: frozenset[str]


def compile_query(source: Any) -> DeviceQuery:
    """Validate `source` completely and compile it; raise QueryError naming the first problem found.

    The work is proportional to the query's size, which the limits above bound before anything else is done.
    """
    if not isinstance(source, dict):
        raise _invalid(ROOT, f"expected a JSON object, got {_show(source)}")
    if not source:
        # An empty filter means "everything" in MongoDB; here it must never reboot a fleet by accident.
        raise QueryError(ROOT, f'{ROOT} is empty; to target every device send {{"all": true}}')
    source = _JsonCopy().of(source)
    _check_size(source)
    if "all" in source:
        if len(source) > 1:
            others = ", ".join(sorted(key for key in source if key != "all"))
            raise _invalid(f"{ROOT}.all", f'"all" must be the only key of the query, but it also has {others}')
        if source["all"] is not True:
            raise _invalid(f"{ROOT}.all", f'expected true, got {_show(source["all"])}; only {{"all": true}} is valid')
        return DeviceQuery(source, _everything, None, True, frozenset())
    node = _query(source, ROOT, 1)
    return DeviceQuery(source, node.predicate, node.ids, False, node.fields)


def _everything(device: Mapping[str, Any]) -> bool:
    return True


def _query(query: Any, where: str, depth: int) -> _Node:
    if not isinstance(query, dict):
        raise _invalid(where, f"expected a query (a JSON object), got {_show(query)}")
    if not query:
        raise _invalid(where, "empty query; a query needs at least one condition")
    if depth > MAX_DEPTH:
        raise _invalid(where, f"queries nest deeper than {MAX_DEPTH} levels")
    return _and([_clause(key, value, where, depth) for key, value in query.items()])


def _clause(key: str, value: Any, where: str, depth: int) -> _Node:
    here = f"{where}.{key}"
    if key == "all":
        raise _invalid(here, '"all" is only valid as the whole query {"all": true}')
    if key in ("$and", "$or"):
        if not isinstance(value, list) or not value:
            raise _invalid(here, f"expected a non-empty list of queries, got {_show(value)}")
        _check_length(value, here)
        nodes = [_query(sub, f"{here}[{index}]", depth + 1) for index, sub in enumerate(value)]
        return _and(nodes) if key == "$and" else _or(nodes)
    if key == "$not":
        inner = _query(value, here, depth + 1)
        return _Node(lambda device: not inner.predicate(device), None, inner.fields)
    if key.startswith("$"):
        raise _invalid(here, _unknown(key))
    return _field(key, value, where)


def _field(path: str, value: Any, where: str) -> _Node:
    here = f"{where}.{path}"
    if any(not name for name in path.split(".")):
        raise _invalid(where, f"invalid field path {path!r}; write names joined by single dots")
    if isinstance(value, dict) and any(key.startswith("$") for key in value):
        plain = [key for key in value if not key.startswith("$")]
        if plain:
            raise _invalid(here, f"operators cannot be mixed with plain keys ({', '.join(plain)})")
        tests = [_operator(op, operand, f"{here}.{op}") for op, operand in value.items()]
        bounds = [_id_bound(op, operand) for op, operand in value.items()] if path == "device_id" else []
    elif isinstance(value, dict) and not value:
        raise _invalid(here, "expected a value or an object of operators, got {}")
    else:
        tests = [_equals(value)]
        bounds = [_id_bound("$eq", value)] if path == "device_id" else []
    return _Node(_on_field(_getter(path), tests), _intersect(bounds), frozenset({path.split(".", 1)[0]}))


def _operator(op: str, operand: Any, here: str) -> _Test:
    if op in ("$eq", "$ne"):
        equals = _equals(operand)
        return equals if op == "$eq" else lambda value: not equals(value)
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise _invalid(here, f"expected a list, got {_show(operand)}")
        _check_length(operand, here)
        member = _one_of(operand)
        return member if op == "$in" else lambda value: not member(value)
    if op == "$all":
        if not isinstance(operand, list) or not operand:
            raise _invalid(here, f"expected a non-empty list, got {_show(operand)}")
        _check_length(operand, here)
        every = [_equals(item) for item in operand]
        return lambda value: all(equals(value) for equals in every)
    if op in _COMPARISONS:
        if type(operand) not in (int, float) or (isinstance(operand, float) and not isfinite(operand)):
            raise _invalid(here, f"expected a number, got {_show(operand)}")
        return _comparison(_COMPARISONS[op], operand)
    if op == "$exists":
        if not isinstance(operand, bool):
            raise _invalid(here, f"expected true or false, got {_show(operand)}")
        return lambda value: (value is not _MISSING) is operand
    if op == "$prefix":
        if not isinstance(operand, str):
            raise _invalid(here, f"expected a string, got {_show(operand)}")
        return _prefix(operand)
    if op in LOGICAL_OPERATORS:
        raise _invalid(here, f'{op} combines whole queries; write {{"{op}": ...}} around field conditions')
    raise _invalid(here, _unknown(op))


def _unknown(op: str) -> str:
    return (
        f"unknown operator {op!r}; field operators are {', '.join(FIELD_OPERATORS)}"
        f" and query operators are {', '.join(LOGICAL_OPERATORS)}"
    )


def _getter(path: str) -> Callable[[Mapping[str, Any]], Any]:
    head, *rest = path.split(".")
    if not rest:
        return lambda device: device.get(head, _MISSING)

    def get(device: Mapping[str, Any]) -> Any:
        value = device.get(head, _MISSING)
        for name in rest:
            # `type(...) is dict` first: documents are plain dicts, and the ABC check costs more than the lookup.
            if value.__class__ is not dict and not isinstance(value, Mapping):
                return _MISSING
            value = value.get(name, _MISSING)
        return value

    return get


def _on_field(get: Callable[[Mapping[str, Any]], Any], tests: list[_Test]) -> Predicate:
    test = _all_of(tests)
    return lambda device: test(get(device))


def _and(nodes: list[_Node]) -> _Node:
    predicate = _all_of([node.predicate for node in nodes])
    return _Node(predicate, _intersect([node.ids for node in nodes]), _fields_of(nodes))


def _or(nodes: list[_Node]) -> _Node:
    # One union of all the branches' ids: a union per branch copied every id seen so far, quadratic in the branches.
    bounded = all(node.ids is not None for node in nodes)
    ids = frozenset().union(*(node.ids or () for node in nodes)) if bounded else None
    return _Node(_any_of([node.predicate for node in nodes]), ids, _fields_of(nodes))


def _fields_of(nodes: list[_Node]) -> frozenset[str]:
    return frozenset().union(*(node.fields for node in nodes))


def _all_of(checks: list[Callable[[_T], bool]]) -> Callable[[_T], bool]:
    # One and two checks are by far the most common, and unrolling them saves a generator per device.
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda subject: first(subject) and second(subject)
    return lambda subject: all(check(subject) for check in checks)


def _any_of(checks: list[Callable[[_T], bool]]) -> Callable[[_T], bool]:
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda subject: first(subject) or second(subject)
    return lambda subject: any(check(subject) for check in checks)


def _intersect(bounds: list[frozenset[str] | None]) -> frozenset[str] | None:
    known = [ids for ids in bounds if ids is not None]
    return frozenset.intersection(*known) if known else None


def _id_bound(op: str, operand: Any) -> frozenset[str] | None:
    # Device ids are strings, so a non-string operand bounds the selection to nothing.
    if op == "$eq":
        return frozenset({operand}) if isinstance(operand, str) else frozenset()
    if op == "$in":
        return frozenset(item for item in operand if isinstance(item, str))
    return None


def _same(expected: Any, value: Any) -> bool:
    """JSON equality: Python's `==`, except that true and false equal only themselves (never 1 or 0), at any depth."""
    if isinstance(expected, bool) or isinstance(value, bool):
        return expected is value
    if isinstance(expected, list):
        return isinstance(value, list) and len(expected) == len(value) and all(map(_same, expected, value))
    if isinstance(expected, dict):
        return (
            isinstance(value, Mapping)
            and expected.keys() == value.keys()
            and all(_same(item, value[key]) for key, item in expected.items())
        )
    return bool(expected == value)


def _equals(expected: Any) -> _Test:
    """Equality, where a list field also matches when one of its items equals `expected` (as in MongoDB)."""
    if type(expected) is str:  # the common case, kept fast: a str equals only a str, and `in` compares with ==

        def equals_str(value: Any) -> bool:
            if value.__class__ is str:
                return bool(value == expected)
            return isinstance(value, list) and expected in value

        return equals_str

    def equals(value: Any) -> bool:
        if _same(expected, value):
            return True
        return isinstance(value, list) and any(_same(expected, item) for item in value)

    return equals


def _key(value: Any) -> Any:
    """A hashable stand-in for a scalar that keeps booleans apart from 0 and 1; `_UNHASHABLE` for anything else."""
    if isinstance(value, bool):
        return ("bool", value)
    if value is None or isinstance(value, str | int | float):
        return value
    return _UNHASHABLE


def _one_of(values: list[Any]) -> _Test:
    """`$in`: a set lookup per value, so ten thousand device ids cost no more than one."""
    keys = {key for key in map(_key, values) if key is not _UNHASHABLE}
    containers = [value for value in values if _key(value) is _UNHASHABLE]

    def member(value: Any) -> bool:
        key = value if value.__class__ is str else _key(value)
        if key is _UNHASHABLE:
            return any(_same(container, value) for container in containers)
        return key in keys

    def test(value: Any) -> bool:
        if value is _MISSING:
            return False
        return member(value) or (isinstance(value, list) and any(member(item) for item in value))

    return test


def _comparison(compare: Callable[[Any, Any], bool], bound: float) -> _Test:
    # Only numbers compare: a string, a list, or a bool (which Python would treat as 0 or 1) never matches.
    return lambda value: (value.__class__ is int or value.__class__ is float) and compare(value, bound)


def _prefix(prefix: str) -> _Test:
    def test(value: Any) -> bool:
        if value.__class__ is str:
            return bool(value.startswith(prefix))
        return isinstance(value, list) and any(isinstance(item, str) and item.startswith(prefix) for item in value)

    return test


def _check_length(values: list[Any], here: str) -> None:
    if len(values) > MAX_VALUES:
        raise _invalid(here, f"expected at most {MAX_VALUES} values, got {len(values)}")


class _JsonCopy:
    """A deep copy of a query that is plain JSON, so later changes to the caller's dict cannot change the query.

    It counts values as it goes and stops at the first one over MAX_TOTAL_VALUES, so an oversized query costs no more
    than one at the limit. The path to the current value is a stack, spelled out only for an error: formatted for
    every value, a long key was copied once per value below it.
    """

    def __init__(self) -> None:
        self._values = 0
        self._path: list[str | int] = []

    def of(self, value: Any) -> Any:
        self._values += 1
        if self._values > MAX_TOTAL_VALUES:
            raise _invalid(ROOT, f"too large: more than {MAX_TOTAL_VALUES} values; {_TOO_LARGE}")
        if len(self._path) >= MAX_JSON_DEPTH:
            raise _invalid(self._where(), f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, dict):
            copy: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise _invalid(self._where(), f"object keys must be strings, got {_show(key)}")
                self._path.append(key)
                copy[key] = self.of(item)
                self._path.pop()
            return copy
        if isinstance(value, list):
            items = []
            for index, item in enumerate(value):
                self._path.append(index)
                items.append(self.of(item))
                self._path.pop()
            return items
        if value is None or isinstance(value, str | int | float):
            return value
        raise _invalid(self._where(), f"expected a JSON value, got a {type(value).__name__}")

    def _where(self) -> str:
        return ROOT + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in self._path)


_TOO_LARGE: Final = "select devices by tags or groups rather than by listing them (docs/query-language.md, Limits)"


def _check_size(source: dict[str, Any]) -> None:
    try:
        size = len(json.dumps(source, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    except ValueError as err:  # an integer too long to write out
        raise _invalid(ROOT, f"cannot be written as JSON: {err}") from err
    if size > MAX_BYTES:
        raise _invalid(ROOT, f"too large: {size} bytes as compact JSON, at most {MAX_BYTES}; {_TOO_LARGE}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
