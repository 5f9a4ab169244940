"""Tests of the device query language: every operator, missing fields, booleans, nesting, errors and id bounds."""

import gc
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.query import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_JSON_DEPTH,
    MAX_TOTAL_VALUES,
    MAX_VALUES,
    DeviceQuery,
    QueryError,
    compile_query,
)

DEVICE: dict[str, Any] = {
    "device_id": "kiosk-17",
    "platform": "linux",
    "online": True,
    "agent_version": "0.1.0",
    "time_zone": "Europe/Berlin",
    "tags": ["kiosk", "lobby"],
    "groups": ["berlin"],
    "capabilities": ["REBOOT", "LOCK"],
    "inventory": {
        "hostname": "k17",
        "os": {"name": "Debian", "version": "12"},
        "memory_total_bytes": 8000000000,
        "cpu_count": 4,
    },
    # Fields the real document may not carry, here to reach the corners of JSON equality.
    "load": 0.5,
    "retired": False,
    "note": None,
    "numbers": [1, 2.5],
    "flags": [True],
    "pairs": [[1, 2], [3]],
    "labels": {"site": "B1"},
    "empty_list": [],
    "empty_object": {},
}


def matches(query: dict[str, Any], device: dict[str, Any] = DEVICE) -> bool:
    return compile_query(query).matches(device)


MATCHING: list[tuple[dict[str, Any], bool]] = [
    # plain equality
    ({"platform": "linux"}, True),
    ({"platform": "android"}, False),
    ({"platform": "Linux"}, False),
    ({"device_id": "kiosk-17"}, True),
    ({"inventory.cpu_count": 4}, True),
    ({"inventory.cpu_count": 4.0}, True),
    ({"inventory.cpu_count": "4"}, False),
    ({"load": 0.5}, True),
    ({"online": True}, True),
    ({"online": False}, False),
    ({"retired": False}, True),
    ({"note": None}, True),
    ({"platform": None}, False),
    # equality on a list field means "contains"
    ({"tags": "kiosk"}, True),
    ({"tags": "lobby"}, True),
    ({"tags": "pos"}, False),
    ({"tags": "kio"}, False),
    ({"numbers": 2.5}, True),
    ({"numbers": 1.0}, True),
    ({"numbers": 3}, False),
    # ... and a list value must equal the whole list, in order, or one of its items
    ({"tags": ["kiosk", "lobby"]}, True),
    ({"tags": ["lobby", "kiosk"]}, False),
    ({"tags": ["kiosk"]}, False),
    ({"pairs": [3]}, True),
    ({"pairs": [1, 2]}, True),
    ({"pairs": [[1, 2], [3]]}, True),
    ({"pairs": 3}, False),
    ({"empty_list": []}, True),
    # object equality is exact
    ({"inventory.os": {"name": "Debian", "version": "12"}}, True),
    ({"inventory.os": {"version": "12", "name": "Debian"}}, True),
    ({"inventory.os": {"name": "Debian"}}, False),
    ({"labels": {"site": "B1"}}, True),
    ({"labels": {"site": "B2"}}, False),
    # nested dotted paths
    ({"inventory.os.name": "Debian"}, True),
    ({"inventory.os.version": "12"}, True),
    ({"inventory.os.version": 12}, False),
    ({"inventory.hostname": "k17"}, True),
    ({"inventory.os.name.first": "D"}, False),
    ({"tags.0": "kiosk"}, False),
    # $eq and $ne
    ({"platform": {"$eq": "linux"}}, True),
    ({"platform": {"$eq": "android"}}, False),
    ({"tags": {"$eq": "kiosk"}}, True),
    ({"platform": {"$ne": "android"}}, True),
    ({"platform": {"$ne": "linux"}}, False),
    ({"tags": {"$ne": "kiosk"}}, False),
    ({"tags": {"$ne": "pos"}}, True),
    ({"inventory.os": {"$eq": {"name": "Debian", "version": "12"}}}, True),
    ({"labels": {"$eq": {"$prefix": "B"}}}, False),
    # $in and $nin
    ({"platform": {"$in": ["linux", "android"]}}, True),
    ({"platform": {"$in": ["android", "windows"]}}, False),
    ({"platform": {"$in": []}}, False),
    ({"tags": {"$in": ["pos", "lobby"]}}, True),
    ({"tags": {"$in": ["pos", "till"]}}, False),
    ({"inventory.cpu_count": {"$in": [2, 4, 8]}}, True),
    ({"inventory.cpu_count": {"$in": [4.0]}}, True),
    ({"inventory.cpu_count": {"$in": ["4"]}}, False),
    ({"note": {"$in": [None]}}, True),
    ({"pairs": {"$in": [[3], [4]]}}, True),
    ({"pairs": {"$in": [[[1, 2], [3]]]}}, True),
    ({"pairs": {"$in": [[4]]}}, False),
    ({"labels": {"$in": [{"site": "B1"}]}}, True),
    ({"platform": {"$nin": ["android", "windows"]}}, True),
    ({"platform": {"$nin": ["linux"]}}, False),
    ({"platform": {"$nin": []}}, True),
    ({"tags": {"$nin": ["lobby"]}}, False),
    ({"tags": {"$nin": ["pos"]}}, True),
    # comparisons
    ({"inventory.cpu_count": {"$gt": 2}}, True),
    ({"inventory.cpu_count": {"$gt": 4}}, False),
    ({"inventory.cpu_count": {"$gte": 4}}, True),
    ({"inventory.cpu_count": {"$gte": 4.5}}, False),
    ({"inventory.cpu_count": {"$lt": 8}}, True),
    ({"inventory.cpu_count": {"$lt": 4}}, False),
    ({"inventory.cpu_count": {"$lte": 4}}, True),
    ({"inventory.cpu_count": {"$lte": 3.99}}, False),
    ({"inventory.memory_total_bytes": {"$gte": 4_000_000_000}}, True),
    ({"load": {"$gt": 0.25}}, True),
    ({"load": {"$lt": 0}}, False),
    ({"load": {"$gt": -1}}, True),
    ({"inventory.cpu_count": {"$gte": 2, "$lt": 8}}, True),
    ({"inventory.cpu_count": {"$gte": 2, "$lt": 4}}, False),
    ({"inventory.cpu_count": {"$gt": 1, "$lt": 8, "$ne": 4}}, False),
    # comparisons look at numbers only: strings, lists, objects, null and booleans never match
    ({"inventory.os.version": {"$gt": 1}}, False),
    ({"inventory.os.version": {"$lt": 100}}, False),
    ({"agent_version": {"$gte": 0}}, False),
    ({"numbers": {"$gt": 0}}, False),
    ({"inventory.os": {"$gt": 0}}, False),
    ({"note": {"$gte": 0}}, False),
    # $exists
    ({"platform": {"$exists": True}}, True),
    ({"platform": {"$exists": False}}, False),
    ({"note": {"$exists": True}}, True),
    ({"inventory.os.name": {"$exists": True}}, True),
    ({"inventory.os.build": {"$exists": False}}, True),
    # $all
    ({"tags": {"$all": ["kiosk"]}}, True),
    ({"tags": {"$all": ["lobby", "kiosk"]}}, True),
    ({"tags": {"$all": ["kiosk", "pos"]}}, False),
    ({"capabilities": {"$all": ["REBOOT", "LOCK"]}}, True),
    ({"platform": {"$all": ["linux"]}}, True),
    ({"platform": {"$all": ["linux", "android"]}}, False),
    ({"pairs": {"$all": [[1, 2], [3]]}}, True),
    # $prefix
    ({"device_id": {"$prefix": "kiosk-"}}, True),
    ({"device_id": {"$prefix": "kiosk-17"}}, True),
    ({"device_id": {"$prefix": "pos-"}}, False),
    ({"device_id": {"$prefix": "Kiosk"}}, False),
    ({"device_id": {"$prefix": ""}}, True),
    ({"tags": {"$prefix": "lob"}}, True),
    ({"tags": {"$prefix": "pos"}}, False),
    ({"inventory.cpu_count": {"$prefix": "4"}}, False),
    ({"inventory.os": {"$prefix": "D"}}, False),
    # several keys are ANDed
    ({"platform": "linux", "tags": "kiosk"}, True),
    ({"platform": "linux", "tags": "pos"}, False),
    ({"platform": "android", "tags": "kiosk"}, False),
    ({"platform": "linux", "online": True, "inventory.cpu_count": {"$gte": 4}}, True),
    # $and, $or, $not
    ({"$and": [{"platform": "linux"}, {"tags": "kiosk"}]}, True),
    ({"$and": [{"platform": "linux"}, {"tags": "pos"}]}, False),
    ({"$and": [{"platform": "linux"}]}, True),
    ({"$and": [{"platform": "linux"}, {"online": True}, {"groups": "berlin"}]}, True),
    ({"$and": [{"platform": "linux"}, {"online": True}, {"groups": "paris"}]}, False),
    ({"$or": [{"platform": "android"}, {"tags": "kiosk"}]}, True),
    ({"$or": [{"platform": "android"}, {"tags": "pos"}]}, False),
    ({"$or": [{"platform": "linux"}]}, True),
    ({"$or": [{"platform": "android"}, {"online": False}, {"groups": "berlin"}]}, True),
    ({"$or": [{"platform": "android"}, {"online": False}, {"groups": "paris"}]}, False),
    ({"$not": {"platform": "android"}}, True),
    ({"$not": {"platform": "linux"}}, False),
    ({"$not": {"platform": "linux", "tags": "pos"}}, True),
    ({"$not": {"$not": {"platform": "linux"}}}, True),
    ({"$or": [{"$and": [{"platform": "linux"}, {"tags": "pos"}]}, {"$not": {"online": False}}]}, True),
    ({"$and": [{"$or": [{"platform": "android"}, {"tags": "lobby"}]}, {"$not": {"groups": "berlin"}}]}, False),
    ({"platform": "linux", "$or": [{"tags": "pos"}, {"inventory.cpu_count": {"$gte": 4}}]}, True),
    ({"platform": "linux", "$not": {"device_id": {"$prefix": "kiosk-"}}}, False),
]


@pytest.mark.parametrize(("query", "expected"), MATCHING, ids=[json.dumps(query) for query, _ in MATCHING])
def test_matches(query: dict[str, Any], expected: bool) -> None:
    assert matches(query) is expected


# A path that does not exist matches nothing, except the operators that say "not": $ne, $nin and $exists: false.
MISSING_FIELD: list[tuple[Any, bool]] = [
    ("x", False),
    (None, False),
    ([], False),
    ({"a": 1}, False),
    ({"$eq": "x"}, False),
    ({"$eq": None}, False),
    ({"$ne": "x"}, True),
    ({"$ne": None}, True),
    ({"$in": ["x", None]}, False),
    ({"$nin": ["x"]}, True),
    ({"$nin": []}, True),
    ({"$gt": 0}, False),
    ({"$gte": 0}, False),
    ({"$lt": 0}, False),
    ({"$lte": 0}, False),
    ({"$exists": True}, False),
    ({"$exists": False}, True),
    ({"$all": ["x"]}, False),
    ({"$prefix": ""}, False),
]


@pytest.mark.parametrize(
    "path", ["serial", "inventory.serial", "inventory.os.name.x", "inventory.cpu_count.x", "tags.x"]
)
@pytest.mark.parametrize(("condition", "expected"), MISSING_FIELD, ids=[json.dumps(c) for c, _ in MISSING_FIELD])
def test_missing_path(path: str, condition: Any, expected: bool) -> None:
    assert matches({path: condition}) is expected


def test_missing_path_in_an_empty_device() -> None:
    assert matches({"platform": {"$ne": "linux"}}, {}) is True
    assert matches({"platform": {"$exists": False}}, {}) is True
    assert matches({"platform": "linux"}, {}) is False


# Booleans are not numbers: true never equals 1 nor compares with numbers, false never equals 0.
BOOLEANS: list[tuple[dict[str, Any], dict[str, Any], bool]] = [
    ({"x": 1}, {"x": True}, False),
    ({"x": 0}, {"x": False}, False),
    ({"x": 1.0}, {"x": True}, False),
    ({"x": True}, {"x": 1}, False),
    ({"x": False}, {"x": 0}, False),
    ({"x": True}, {"x": True}, True),
    ({"x": False}, {"x": False}, True),
    ({"x": {"$eq": 1}}, {"x": True}, False),
    ({"x": {"$ne": 1}}, {"x": True}, True),
    ({"x": {"$in": [1, 0]}}, {"x": True}, False),
    ({"x": {"$in": [True]}}, {"x": 1}, False),
    ({"x": {"$in": [True]}}, {"x": True}, True),
    ({"x": {"$nin": [1]}}, {"x": True}, True),
    ({"x": 1}, {"x": [True, False]}, False),
    ({"x": True}, {"x": [1, 0]}, False),
    ({"x": True}, {"x": [0, True]}, True),
    ({"x": [1]}, {"x": [True]}, False),
    ({"x": {"a": 1}}, {"x": {"a": True}}, False),
    ({"x": {"$all": [1]}}, {"x": [True]}, False),
    ({"x": {"$gt": 0}}, {"x": True}, False),
    ({"x": {"$gte": 1}}, {"x": True}, False),
    ({"x": {"$lt": 1}}, {"x": False}, False),
    ({"x": {"$lte": 0}}, {"x": False}, False),
    ({"x": {"$gt": 0}}, {"x": 1}, True),
    ({"x": 1}, {"x": 1}, True),
    ({"x": 1}, {"x": 1.0}, True),
]


@pytest.mark.parametrize(("query", "device", "expected"), BOOLEANS, ids=[f"{q}-{d}" for q, d, _ in BOOLEANS])
def test_booleans_are_not_numbers(query: dict[str, Any], device: dict[str, Any], expected: bool) -> None:
    assert matches(query, device) is expected


def test_all_selects_every_device() -> None:
    query = compile_query({"all": True})
    assert query.selects_all
    assert query.device_ids() is None
    assert query.matches(DEVICE)
    assert query.matches({})


def test_a_filter_never_selects_all() -> None:
    assert not compile_query({"platform": {"$nin": []}}).selects_all


def test_the_empty_query_is_refused() -> None:
    with pytest.raises(QueryError) as caught:
        compile_query({})
    assert str(caught.value) == 'operation_device_query is empty; to target every device send {"all": true}'
    assert caught.value.field == "operation_device_query"


def nested_not(levels: int) -> dict[str, Any]:
    query: dict[str, Any] = {"platform": "linux"}
    for _ in range(levels):
        query = {"$not": query}
    return query


def nested_and(levels: int) -> dict[str, Any]:
    query: dict[str, Any] = {"platform": "linux"}
    for _ in range(levels):
        query = {"$and": [query, {"online": True}]}
    return query


# (query, the error's exact beginning: the path in the query, then what is wrong)
ERRORS: list[tuple[Any, str]] = [
    ([], "operation_device_query: expected a JSON object, got []"),
    ("platform", "operation_device_query: expected a JSON object, got 'platform'"),
    (None, "operation_device_query: expected a JSON object, got None"),
    ({"all": False}, "operation_device_query.all: expected true, got False"),
    ({"all": 1}, "operation_device_query.all: expected true, got 1"),
    ({"all": "true"}, "operation_device_query.all: expected true, got 'true'"),
    ({"all": True, "platform": "linux"}, 'operation_device_query.all: "all" must be the only key'),
    ({"$and": [{"all": True}]}, 'operation_device_query.$and[0].all: "all" is only valid as the whole query'),
    ({"$not": {"all": True}}, 'operation_device_query.$not.all: "all" is only valid as the whole query'),
    ({"platform": {"$regex": "^li"}}, "operation_device_query.platform.$regex: unknown operator '$regex'; field op"),
    ({"platform": {"$foo": 1}}, "operation_device_query.platform.$foo: unknown operator '$foo'"),
    ({"$foo": [{"platform": "linux"}]}, "operation_device_query.$foo: unknown operator '$foo'"),
    ({"$where": "1"}, "operation_device_query.$where: unknown operator '$where'"),
    ({"platform": {"$not": {"$eq": "x"}}}, "operation_device_query.platform.$not: $not combines whole queries"),
    ({"platform": {"$or": []}}, "operation_device_query.platform.$or: $or combines whole queries"),
    ({"platform": {"$eq": "linux", "name": "x"}}, "operation_device_query.platform: operators cannot be mixed"),
    ({"platform": {}}, "operation_device_query.platform: expected a value or an object of operators, got {}"),
    ({"": "x"}, "operation_device_query: invalid field path ''"),
    ({"inventory..os": "x"}, "operation_device_query: invalid field path 'inventory..os'"),
    ({".platform": "x"}, "operation_device_query: invalid field path '.platform'"),
    ({"platform.": "x"}, "operation_device_query: invalid field path 'platform.'"),
    ({"platform": {"$in": "linux"}}, "operation_device_query.platform.$in: expected a list, got 'linux'"),
    ({"platform": {"$in": {"a": 1}}}, "operation_device_query.platform.$in: expected a list, got {'a': 1}"),
    ({"platform": {"$nin": None}}, "operation_device_query.platform.$nin: expected a list, got None"),
    ({"tags": {"$all": "kiosk"}}, "operation_device_query.tags.$all: expected a non-empty list, got 'kiosk'"),
    ({"tags": {"$all": []}}, "operation_device_query.tags.$all: expected a non-empty list, got []"),
    (
        {"inventory.cpu_count": {"$gt": "x"}},
        "operation_device_query.inventory.cpu_count.$gt: expected a number, got 'x'",
    ),
    ({"inventory.cpu_count": {"$gte": "4"}}, "operation_device_query.inventory.cpu_count.$gte: expected a number"),
    ({"x": {"$lt": True}}, "operation_device_query.x.$lt: expected a number, got True"),
    ({"x": {"$lte": None}}, "operation_device_query.x.$lte: expected a number, got None"),
    ({"x": {"$gt": [1]}}, "operation_device_query.x.$gt: expected a number, got [1]"),
    ({"x": {"$gt": float("nan")}}, "operation_device_query.x.$gt: expected a number, got nan"),
    ({"x": {"$lt": float("inf")}}, "operation_device_query.x.$lt: expected a number, got inf"),
    (
        {"time": {"$gt": "2024-01-01T00:00:00Z"}},
        "operation_device_query.time.$gt: expected a number, got '2024-01-01T00:00:00Z'",
    ),
    ({"x": {"$exists": 1}}, "operation_device_query.x.$exists: expected true or false, got 1"),
    ({"x": {"$exists": "yes"}}, "operation_device_query.x.$exists: expected true or false, got 'yes'"),
    ({"x": {"$prefix": 1}}, "operation_device_query.x.$prefix: expected a string, got 1"),
    ({"x": {"$prefix": ["a"]}}, "operation_device_query.x.$prefix: expected a string, got ['a']"),
    ({"$and": []}, "operation_device_query.$and: expected a non-empty list of queries, got []"),
    ({"$or": []}, "operation_device_query.$or: expected a non-empty list of queries, got []"),
    ({"$and": {"platform": "linux"}}, "operation_device_query.$and: expected a non-empty list of queries"),
    ({"$or": "x"}, "operation_device_query.$or: expected a non-empty list of queries, got 'x'"),
    ({"$and": [{}]}, "operation_device_query.$and[0]: empty query"),
    ({"$or": [{"a": 1}, "b"]}, "operation_device_query.$or[1]: expected a query (a JSON object), got 'b'"),
    ({"$not": {}}, "operation_device_query.$not: empty query"),
    ({"$not": [{"a": 1}]}, "operation_device_query.$not: expected a query (a JSON object), got [{'a': 1}]"),
    (
        {"$and": [{"platform": "linux"}, {"$or": [{"x": {"$gt": "1"}}]}]},
        "operation_device_query.$and[1].$or[0].x.$gt: expected a number, got '1'",
    ),
    ({"$not": {"tags": {"$in": 3}}}, "operation_device_query.$not.tags.$in: expected a list, got 3"),
    (nested_not(MAX_DEPTH), "operation_device_query" + ".$not" * MAX_DEPTH + ": queries nest deeper than 8 levels"),
    (nested_and(MAX_DEPTH), "operation_device_query" + ".$and[0]" * MAX_DEPTH + ": queries nest deeper than 8"),
    (
        {"device_id": {"$in": [f"d{i}" for i in range(MAX_VALUES + 1)]}},
        "operation_device_query.device_id.$in: expected at most 10000 values, got 10001",
    ),
    ({"x": {"$nin": [0] * (MAX_VALUES + 1)}}, "operation_device_query.x.$nin: expected at most 10000 values"),
    ({"x": {"$all": [0] * (MAX_VALUES + 1)}}, "operation_device_query.x.$all: expected at most 10000 values"),
    ({"$or": [{"x": 1}] * (MAX_VALUES + 1)}, "operation_device_query.$or: expected at most 10000 values"),
    ({"x": {"$eq": (1, 2)}}, "operation_device_query.x.$eq: expected a JSON value, got a tuple"),
    ({"x": {"$in": [{1, 2}]}}, "operation_device_query.x.$in[0]: expected a JSON value, got a set"),
    ({"x": {1: "a"}}, "operation_device_query.x: object keys must be strings, got 1"),
]


@pytest.mark.parametrize(("query", "message"), ERRORS, ids=[message[:70] for _, message in ERRORS])
def test_errors_name_the_place_in_the_query(query: Any, message: str) -> None:
    with pytest.raises(QueryError, match=f"^{re.escape(message)}") as caught:
        compile_query(query)
    assert str(caught.value).startswith(f"{caught.value.field}: ")


def test_unknown_operator_lists_the_supported_ones() -> None:
    with pytest.raises(QueryError) as caught:
        compile_query({"platform": {"$regex": "^li"}})
    for operator in ("$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists", "$all", "$prefix"):
        assert operator in str(caught.value)
    for operator in ("$and", "$or", "$not"):
        assert operator in str(caught.value)


def test_query_error_is_a_value_error() -> None:
    assert issubclass(QueryError, ValueError)


def test_limits_are_inclusive() -> None:
    assert compile_query(nested_not(MAX_DEPTH - 1)).matches(DEVICE) is ((MAX_DEPTH - 1) % 2 == 0)
    assert compile_query(nested_and(MAX_DEPTH - 1)).matches(DEVICE)
    ids = [f"d{i}" for i in range(MAX_VALUES - 1)] + ["kiosk-17"]
    assert compile_query({"device_id": {"$in": ids}}).matches(DEVICE)
    assert not compile_query({"device_id": {"$nin": ids}}).matches(DEVICE)


def test_a_deeply_nested_value_is_refused() -> None:
    value: Any = 1
    for _ in range(100):
        value = [value]
    with pytest.raises(QueryError, match=r"^operation_device_query\.x(\[0\])*: nested deeper than 64 levels"):
        compile_query({"x": value})


def json_values(value: Any) -> int:
    """How many JSON values `value` holds, itself included: what MAX_TOTAL_VALUES counts."""
    if isinstance(value, dict):
        return 1 + sum(map(json_values, value.values()))
    if isinstance(value, list):
        return 1 + sum(map(json_values, value))
    return 1


def compact_size(query: dict[str, Any]) -> int:
    return len(json.dumps(query, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))


def in_lists(total: int) -> dict[str, Any]:
    """Fields of full `$in` lists, then plain fields: `total` values in all."""
    query: dict[str, Any] = {}
    left = total - 1
    while left >= MAX_VALUES + 2:
        query[f"f{len(query)}"] = {"$in": [len(query)] * MAX_VALUES}
        left -= MAX_VALUES + 2
    query |= {f"g{n}": n for n in range(left)}
    return query


def one_object(total: int) -> dict[str, Any]:
    return {"inventory": {"$eq": {f"k{n}": n for n in range(total - 3)}}}


def many_fields(total: int) -> dict[str, Any]:
    return {f"f{n}": n for n in range(total - 1)}


def or_branches(total: int) -> dict[str, Any]:
    """Three `$or`s of device ids, ANDed: the shape whose id bounds the old code merged in quadratic time."""
    ors = 3
    branches = [{"device_id": f"d{n}"} for n in range((total - 2 - 2 * ors) // 2)]
    query: dict[str, Any] = {"$and": [{"$or": branches[start::ors]} for start in range(ors)]}
    if total % 2:
        query["platform"] = "linux"
    return query


@pytest.mark.parametrize("shape", [in_lists, one_object, many_fields, or_branches])
def test_a_query_of_exactly_the_most_values_compiles_and_one_more_is_refused(
    shape: Callable[[int], dict[str, Any]],
) -> None:
    at_limit, over = shape(MAX_TOTAL_VALUES), shape(MAX_TOTAL_VALUES + 1)
    assert (json_values(at_limit), json_values(over)) == (MAX_TOTAL_VALUES, MAX_TOTAL_VALUES + 1)
    compile_query(at_limit)
    with pytest.raises(QueryError, match=f"^operation_device_query: too large: more than {MAX_TOTAL_VALUES} values"):
        compile_query(over)


@pytest.mark.parametrize(
    "char", ["a", "\u00e9", "\u20ac", "\U0001f600", "\ud800"], ids=["1 byte", "2", "3", "4", "lone surrogate"]
)
def test_a_query_of_exactly_the_most_bytes_compiles_and_one_more_is_refused(char: str) -> None:
    width = len(char.encode("utf-8", "surrogatepass"))
    count, rest = divmod(MAX_BYTES - compact_size({"x": ""}), width)
    at_limit, over = {"x": char * count + "a" * rest}, {"x": char * count + "a" * (rest + 1)}
    assert (compact_size(at_limit), compact_size(over)) == (MAX_BYTES, MAX_BYTES + 1)
    assert compile_query(at_limit).matches({"x": at_limit["x"]})
    message = f"operation_device_query: too large: {MAX_BYTES + 1} bytes as compact JSON, at most {MAX_BYTES}"
    with pytest.raises(QueryError, match=f"^{re.escape(message)}") as caught:
        compile_query(over)
    assert caught.value.field == "operation_device_query"


def test_bytes_are_counted_as_json_writes_them() -> None:
    escaped = '"\\\n'  # a quote, a backslash and a newline: two bytes each once escaped
    count = (MAX_BYTES - compact_size({"x": ""})) // 6
    compile_query({"x": escaped * count})
    with pytest.raises(QueryError, match="too large"):
        compile_query({"x": escaped * (count + 1)})


@pytest.mark.parametrize("wrap", [lambda value: [value], lambda value: {"k": value}], ids=["lists", "objects"])
def test_values_nest_at_most_max_json_depth_levels(wrap: Callable[[Any], Any]) -> None:
    def nested(levels: int) -> dict[str, Any]:
        """{"x": ...} whose innermost value is at `levels` levels, the query being the first."""
        value: Any = 0
        for _ in range(levels - 2):
            value = wrap(value)
        return {"x": value}

    assert compile_query(nested(MAX_JSON_DEPTH)).matches(nested(MAX_JSON_DEPTH))
    with pytest.raises(QueryError, match=f"nested deeper than {MAX_JSON_DEPTH} levels$") as caught:
        compile_query(nested(MAX_JSON_DEPTH + 1))
    assert caught.value.field.count("[0]") + caught.value.field.count(".k") == MAX_JSON_DEPTH - 1


@pytest.mark.parametrize("operator", ["$in", "$nin", "$all", "$and", "$or"])
def test_every_list_takes_exactly_max_values(operator: str) -> None:
    if operator in ("$and", "$or"):
        compile_query({operator: [{"x": n} for n in range(MAX_VALUES)]})
        too_long: dict[str, Any] = {operator: [{"x": n} for n in range(MAX_VALUES + 1)]}
    else:
        compile_query({"x": {operator: list(range(MAX_VALUES))}})
        too_long = {"x": {operator: list(range(MAX_VALUES + 1))}}
    with pytest.raises(QueryError, match=f"expected at most {MAX_VALUES} values, got {MAX_VALUES + 1}$"):
        compile_query(too_long)


def test_an_oversized_query_is_read_no_further_than_the_limit() -> None:
    """The finding: an `$or` of 1,000 `$in` lists of 1,000 ids compiled for 26 s; it is refused after the limit."""
    read = 0

    class Counted(list[Any]):
        def __iter__(self) -> Iterator[Any]:
            nonlocal read
            for item in super().__iter__():
                read += 1
                yield item

    ids = [Counted(f"d{branch}-{n}" for n in range(1000)) for branch in range(1000)]
    bomb = {"$or": Counted({"device_id": {"$in": branch}} for branch in ids)}
    read = 0
    with pytest.raises(QueryError, match=r"^operation_device_query: too large"):
        compile_query(bomb)
    assert read <= MAX_TOTAL_VALUES


def cpu_seconds(query: dict[str, Any]) -> float:
    """The least CPU time of three compilations, with the collector paused: the compiler's own work."""
    times = []
    gc.disable()
    try:
        for _ in range(3):
            started = time.process_time()
            compile_query(query)
            times.append(time.process_time() - started)
    finally:
        gc.enable()
    return min(times)


SCALING: dict[str, tuple[Callable[[int], dict[str, Any]], int]] = {
    # (the query of size n, the largest n within the limits)
    "an $or of device ids": (lambda n: {"$or": [{"device_id": {"$in": [f"d{b}"]}} for b in range(n)]}, 10_000),
    "fields with operators": (lambda n: {f"f{i}": {"$gte": i} for i in range(n)}, 16_000),
    "a list under a long key": (lambda n: {"k" * (20 * n): [0] * n}, 40_000),
    "values nested deep": (lambda n: {"x": [[[[[[[[[[i]]]]]]]]] for i in range(n // 10)]}, 40_000),
}


@pytest.mark.parametrize("name", SCALING)
def test_compiling_takes_time_proportional_to_the_size_of_the_query(name: str) -> None:
    """Eight times the query, about eight times the work: the old code took ~50 times for the `$or`, ~60 times for
    the long key (its work grew with the square of the query). Time is the only measure of work inside C set
    operations and string copies, so the bound leaves room for a busy machine."""
    shape, largest = SCALING[name]
    small, large = shape(largest // 8), shape(largest)
    compile_query(large)  # within every limit
    ratio = cpu_seconds(large) / max(cpu_seconds(small), 1e-4)
    assert ratio < 20, f"{name}: eight times the query took {ratio:.1f} times the CPU"


DEVICE_IDS: list[tuple[dict[str, Any], frozenset[str] | None]] = [
    ({"device_id": "a"}, frozenset({"a"})),
    ({"device_id": {"$eq": "a"}}, frozenset({"a"})),
    ({"device_id": {"$in": ["a", "b"]}}, frozenset({"a", "b"})),
    ({"device_id": {"$in": []}}, frozenset()),
    ({"device_id": {"$in": ["a", 1, None]}}, frozenset({"a"})),
    ({"device_id": 17}, frozenset()),
    ({"device_id": {"$in": ["a", "b"], "$ne": "b"}}, frozenset({"a", "b"})),
    ({"device_id": {"$in": ["a", "b"], "$eq": "b"}}, frozenset({"b"})),
    ({"device_id": {"$in": ["a", "b"], "$prefix": "a"}}, frozenset({"a", "b"})),
    ({"device_id": {"$in": ["a", "b"]}, "platform": "linux"}, frozenset({"a", "b"})),
    ({"platform": "linux", "device_id": "a", "tags": "kiosk"}, frozenset({"a"})),
    ({"$and": [{"device_id": {"$in": ["a", "b"]}}, {"device_id": {"$in": ["b", "c"]}}]}, frozenset({"b"})),
    ({"$and": [{"device_id": "a"}, {"device_id": "b"}]}, frozenset()),
    ({"$and": [{"platform": "linux"}, {"device_id": "a"}]}, frozenset({"a"})),
    ({"device_id": {"$in": ["a", "b"]}, "$and": [{"device_id": {"$in": ["b"]}}]}, frozenset({"b"})),
    ({"$or": [{"device_id": "a"}, {"device_id": {"$in": ["b", "c"]}}]}, frozenset({"a", "b", "c"})),
    ({"$or": [{"device_id": "a"}, {"platform": "linux"}]}, None),
    ({"$or": [{"device_id": "a", "online": True}, {"device_id": "b"}]}, frozenset({"a", "b"})),
    ({"platform": "linux"}, None),
    ({"device_id": {"$prefix": "kiosk-"}}, None),
    ({"device_id": {"$ne": "a"}}, None),
    ({"device_id": {"$nin": ["a"]}}, None),
    ({"device_id": {"$exists": True}}, None),
    ({"$not": {"device_id": "a"}}, None),
    ({"$not": {"device_id": {"$in": ["a"]}}, "device_id": {"$in": ["a", "b"]}}, frozenset({"a", "b"})),
    ({"inventory.device_id": "a"}, None),
    ({"device_id.x": "a"}, None),
    ({"all": True}, None),
]


@pytest.mark.parametrize(("query", "expected"), DEVICE_IDS, ids=[json.dumps(q) for q, _ in DEVICE_IDS])
def test_device_ids(query: dict[str, Any], expected: frozenset[str] | None) -> None:
    assert compile_query(query).device_ids() == expected


@pytest.mark.parametrize(("query", "_"), DEVICE_IDS, ids=[json.dumps(q) for q, _ in DEVICE_IDS])
def test_device_ids_bound_the_matches(query: dict[str, Any], _: object) -> None:
    """No device outside `device_ids()` ever matches: the store may safely fetch only those rows."""
    compiled = compile_query(query)
    bound = compiled.device_ids()
    for device_id in ("a", "b", "c", "d"):
        device = {**DEVICE, "device_id": device_id}
        if bound is not None and device_id not in bound:
            assert not compiled.matches(device)


def test_source_is_a_copy_of_the_json() -> None:
    source: dict[str, Any] = {"tags": {"$in": ["kiosk"]}, "inventory.os": {"name": "Debian", "version": "12"}}
    compiled = compile_query(source)
    assert compiled.source == source
    source["tags"]["$in"].append("pos")
    source["inventory.os"]["name"] = "Ubuntu"
    assert compiled.source == {"tags": {"$in": ["kiosk"]}, "inventory.os": {"name": "Debian", "version": "12"}}
    assert compiled.matches(DEVICE)
    assert not compiled.matches({**DEVICE, "tags": ["pos"]})


def test_a_compiled_query_is_frozen_and_compares_by_source() -> None:
    compiled = compile_query({"platform": "linux"})
    assert isinstance(compiled, DeviceQuery)
    with pytest.raises(AttributeError):
        compiled.source = {}  # type: ignore[misc]
    assert compiled == compile_query({"platform": "linux"})
    assert compiled != compile_query({"platform": "android"})


def test_huge_integers_compare_exactly() -> None:
    huge = 10**400  # valid JSON, and beyond any float
    assert not matches({"inventory.memory_total_bytes": {"$gt": huge}})
    assert matches({"inventory.memory_total_bytes": {"$lt": huge}})
    assert matches({"x": {"$gte": huge}}, {"x": huge + 1})
    assert matches({"x": {"$in": [huge]}}, {"x": huge})


def test_matches_accepts_any_mapping() -> None:
    from types import MappingProxyType

    os = MappingProxyType({"name": "Debian"})
    device = MappingProxyType({"platform": "linux", "inventory": MappingProxyType({"cpu_count": 4, "os": os})})
    assert compile_query({"platform": "linux", "inventory.cpu_count": {"$gt": 2}}).matches(device)
    assert compile_query({"inventory.os": {"name": "Debian"}}).matches(device)
    assert compile_query({"inventory.os": {"$in": [{"name": "Debian"}]}}).matches(device)
    assert not compile_query({"inventory.os": {"$in": ["Debian", 1, None, True]}}).matches(device)


def test_many_devices() -> None:
    """A fleet-sized sanity check that selection is exact; the timing itself is measured outside the test suite."""
    fleet = [
        {"device_id": f"d{i}", "platform": "linux" if i % 2 else "android", "inventory": {"cpu_count": i % 8}}
        for i in range(10_000)
    ]
    query = compile_query({"platform": "linux", "inventory.cpu_count": {"$gte": 2, "$lt": 6}})
    selected = [device["device_id"] for device in fleet if query.matches(device)]
    assert selected == [f"d{i}" for i in range(10_000) if i % 2 and 2 <= i % 8 < 6]


DOCS = Path(__file__).resolve().parents[2] / "docs" / "query-language.md"


def doc_examples() -> list[str]:
    return (
        [example.strip() for example in re.findall(r"```json\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)]
        if DOCS.exists()
        else []
    )


@pytest.mark.skipif(not DOCS.exists(), reason="docs/query-language.md is not there")
@pytest.mark.parametrize("example", doc_examples())
def test_every_json_example_in_the_docs_compiles(example: str) -> None:
    compile_query(json.loads(example))


@pytest.mark.parametrize(
    ("source", "fields"),
    [
        ({"all": True}, set()),
        ({"tags": "kiosk"}, {"tags"}),
        ({"inventory.os.name": "Debian", "online": True}, {"inventory", "online"}),
        ({"$or": [{"platform": "linux"}, {"groups": {"$in": ["a"]}}]}, {"platform", "groups"}),
        ({"$not": {"capabilities": "LOCK"}, "device_id": {"$prefix": "k"}}, {"capabilities", "device_id"}),
        ({"$and": [{"nothing.here": {"$exists": False}}]}, {"nothing"}),
    ],
)
def test_a_query_names_the_fields_it_reads(source: dict[str, Any], fields: set[str]) -> None:
    assert compile_query(source).fields == fields
