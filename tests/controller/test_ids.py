"""Time-ordered ids: valid version 7 UUIDs, in creation order across milliseconds, never repeated."""

import time
import uuid

from controller.ids import time_ordered_id, time_ordered_ids
from shared.topics import ID_PATTERN


def test_an_id_is_a_version_7_uuid_of_now_written_as_uuid_writes_it() -> None:
    before = time.time_ns() // 1_000_000
    text = time_ordered_id()
    after = time.time_ns() // 1_000_000
    made = uuid.UUID(text)
    assert str(made) == text
    assert made.version == 7
    assert made.variant == uuid.RFC_4122
    assert before <= made.int >> 80 <= after


def test_ids_are_valid_topic_levels_and_unique() -> None:
    ids = time_ordered_ids(20_000) + [time_ordered_id() for _ in range(1_000)]
    assert len(set(ids)) == len(ids)
    assert all(ID_PATTERN.match(made) for made in ids)


def test_ids_of_later_milliseconds_sort_after() -> None:
    first = time_ordered_id()
    time.sleep(0.002)
    assert time_ordered_id() > first


def test_every_random_bit_varies() -> None:
    """74 bits vary: all but the 48 of the time, the 4 of the version and the 2 of the variant."""
    ones, zeros = 0, 0
    for made in time_ordered_ids(2_000):
        value = uuid.UUID(made).int
        ones |= value
        zeros |= ~value
    fixed = ((1 << 48) - 1) << 80 | 0xF << 76 | 0x3 << 62
    assert ones & zeros & ~fixed == ((1 << 128) - 1) & ~fixed
