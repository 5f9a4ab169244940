"""`tether serve` signs only with a key the fleet was given (controller/fleet_keys.py), on each engine: the first
controller records its keys; one whose state directory is not the fleet's is refused in one line, with nothing
recorded; `tether keys rotate|activate` record what they introduce; of controllers starting together with different
keys, one records."""

import threading
from pathlib import Path

import pytest

from controller.errors import StartupError
from controller.fleet_keys import introduce, trusted_signer
from controller.signing_keys import SigningKeys
from controller.store import Store
from controller.store.database import Database

REMEDY = "from a running controller, or introduce a new key with `tether keys rotate` (docs/scale-out.md)"


def recorded(store: Store) -> dict[str, str]:
    return {key_id: key.public_key for key_id, key in store.signing_keys.recorded().items()}


def test_the_first_controller_records_its_keys_and_starts_again_with_them(store: Store, tmp_path: Path) -> None:
    keys = SigningKeys(tmp_path / "signing")
    old = keys.signer().key_id
    rotated = keys.create()  # made by a Tether from before keys were recorded: its agents may trust it already
    signer = trusted_signer(keys, store)
    assert signer.key_id == old
    assert recorded(store) == {key.key_id: key.public_key for key in keys.listing()}
    assert set(recorded(store)) == {old, rotated}
    before = store.signing_keys.recorded()
    assert trusted_signer(keys, store).key_id == old
    assert store.signing_keys.recorded() == before


def test_a_new_fleet_s_first_key_is_made_and_recorded(store: Store, tmp_path: Path) -> None:
    keys = SigningKeys(tmp_path / "signing")
    signer = trusted_signer(keys, store)
    assert [key.key_id for key in keys.listing() if key.active] == [signer.key_id]
    assert list(recorded(store)) == [signer.key_id]


def test_a_state_directory_without_keys_is_refused_in_one_line_and_makes_nothing(store: Store, tmp_path: Path) -> None:
    fleet = trusted_signer(SigningKeys(tmp_path / "first" / "signing"), store).key_id
    before = store.signing_keys.recorded()
    lost = tmp_path / "lost" / "signing"
    with pytest.raises(StartupError) as refused:
        trusted_signer(SigningKeys(lost), store)
    assert str(refused.value) == (
        f"{lost} holds no active signing key, and the fleet's are {fleet}: copy {lost} {REMEDY}"
    )
    assert not lost.exists()
    assert store.signing_keys.recorded() == before


def test_a_key_the_fleet_was_never_given_is_refused_naming_both(store: Store, tmp_path: Path) -> None:
    fleet = trusted_signer(SigningKeys(tmp_path / "first" / "signing"), store).key_id
    before = store.signing_keys.recorded()
    other = SigningKeys(tmp_path / "other" / "signing")
    stranger = other.signer().key_id
    with pytest.raises(StartupError) as refused:
        trusted_signer(other, store)
    assert str(refused.value) == (
        f"this controller would sign with key {stranger}, which the fleet was never given (it was given {fleet}): "
        f"copy {other.directory} {REMEDY}"
    )
    assert "\n" not in str(refused.value)
    assert store.signing_keys.recorded() == before


def test_a_recorded_id_with_another_public_key_is_refused(store: Store, tmp_path: Path) -> None:
    keys = SigningKeys(tmp_path / "signing")
    signer = trusted_signer(keys, store)
    store.conn.execute("UPDATE signing_keys SET public_key = 'ed25519:AAAA' WHERE key_id = ?", (signer.key_id,))
    with pytest.raises(StartupError, match=f"would sign with key {signer.key_id}, which the fleet was never given"):
        trusted_signer(keys, store)


def test_a_rotated_key_is_recorded_and_once_active_starts(store: Store, tmp_path: Path) -> None:
    keys = SigningKeys(tmp_path / "signing")
    old = trusted_signer(keys, store).key_id
    new = keys.create()
    assert introduce(keys, store, new)
    assert list(recorded(store)) == [old, new]
    assert not introduce(keys, store, new)  # `tether keys activate` of the key rotate recorded
    keys.activate(new)
    assert trusted_signer(keys, store).key_id == new


def test_introducing_a_key_to_a_database_with_none_records_this_machine_s_keys_too(
    store: Store, tmp_path: Path
) -> None:
    """`tether keys rotate` before the first `tether serve` that records: the active key is the fleet's already."""
    keys = SigningKeys(tmp_path / "signing")
    old = keys.signer().key_id
    new = keys.create()
    assert introduce(keys, store, new)
    assert set(recorded(store)) == {old, new}
    assert trusted_signer(keys, store).key_id == old


def test_of_controllers_starting_together_with_different_keys_one_records_and_the_others_are_refused(
    database: Database, tmp_path: Path
) -> None:
    """Each with a database object and connections of its own, as replicas on separate machines have."""
    start = threading.Barrier(4)
    started: list[str] = []
    refused: list[str] = []

    def serve(n: int) -> None:
        keys = SigningKeys(tmp_path / f"replica-{n}" / "signing")
        keys.signer()
        opened = Database(database.location)
        store = Store(opened)
        try:
            start.wait()
            started.append(trusted_signer(keys, store).key_id)
        except StartupError as err:
            refused.append(str(err))
        finally:
            store.close()
            opened.close()

    threads = [threading.Thread(target=serve, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(started) == 1, refused
    assert len(refused) == 3
    store = Store(database)
    try:
        assert list(recorded(store)) == started
    finally:
        store.close()
    assert all(f"it was given {started[0]})" in message for message in refused)
