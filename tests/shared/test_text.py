import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.text import displayable, unencodable_field

SURROGATE = "\ud800"


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"a": SURROGATE}, "a"),
        ({"a": {"b": ["ok", f"x{SURROGATE}y"]}}, "a.b.1"),
        ({"a": {"\udc00": 1}}, "a.\\udc00"),
        ({"\udfff": {"a": 1}}, "\\udfff"),
        ([{"a": 1}, {"b": "\udbff"}], "1.b"),
        ({"ok": "é😀\u2028", "n": [1, 2.5, None, True]}, None),
        ({}, None),
    ],
)
def test_the_first_unencodable_text_is_named_by_its_dotted_path(value: Any, field: str | None) -> None:
    assert unencodable_field(value) == field


def test_a_valid_surrogate_pair_decoded_from_json_is_one_encodable_character() -> None:
    assert unencodable_field(json.loads('{"emoji": "\\ud83d\\ude00"}')) is None


def test_displayable_replaces_each_lone_surrogate_with_one_replacement_character() -> None:
    assert displayable({"a": [f"x{SURROGATE}\udc00y"], "\udc00": 1}) == {"a": ["x\ufffd\ufffdy"], "\ufffd": 1}


def test_displayable_returns_encodable_values_themselves() -> None:
    value = {"a": ["é"]}
    assert displayable(value) is value


TEXT = st.text(st.characters(exclude_categories=[])) | st.text(st.sampled_from(["a", "é", "😀", SURROGATE, "\udc00"]))
JSON_TEXT = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)


@given(JSON_TEXT)
def test_what_displayable_returns_always_encodes_and_is_found_unencodable_exactly_when_encoding_fails(
    value: Any,
) -> None:
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        assert unencodable_field(value) is not None
    else:
        assert unencodable_field(value) is None
    json.dumps(displayable(value), ensure_ascii=False).encode()
