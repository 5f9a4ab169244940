"""The fleet's signing keys in the store: recorded once each, listed oldest first."""

import time

from controller.store import Store

FIRST = {"00000000000000a1": "ed25519:AAAA", "00000000000000b2": "ed25519:BBBB"}


def test_a_new_database_has_none_recorded(store: Store) -> None:
    assert store.signing_keys.recorded() == {}


def test_keys_are_recorded_once_and_listed_oldest_first(store: Store) -> None:
    store.signing_keys.record(FIRST)
    first = store.signing_keys.recorded()
    assert {key_id: key.public_key for key_id, key in first.items()} == FIRST
    time.sleep(0.002)  # a later millisecond: what one millisecond records is listed by id
    store.signing_keys.record({"00000000000000b2": "ed25519:other", "0000000000000000": "ed25519:CCCC"})
    again = store.signing_keys.recorded()
    assert list(again) == [*FIRST, "0000000000000000"]  # by the time recorded, not by id
    assert again["00000000000000b2"] == first["00000000000000b2"]  # recorded already: left as it was


def test_a_record_that_fails_leaves_nothing(store: Store) -> None:
    try:
        with store.transaction():
            store.signing_keys.record(FIRST)
            raise RuntimeError("refused")
    except RuntimeError:
        pass
    assert store.signing_keys.recorded() == {}
