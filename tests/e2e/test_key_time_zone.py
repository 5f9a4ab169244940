"""`tether keys create --time-zone`: the zone console-time schedules made with the key are read in."""

import subprocess
from pathlib import Path

import pytest

from controller.store import Store
from tests.e2e.harness import BIN


def keys_create(db: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "tether"), "keys", "create", "--name", "berlin-ops", "--role", "admin", "--db", str(db), *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize(("extra", "zone"), [(["--time-zone", "Europe/Berlin"], "Europe/Berlin"), ([], None)])
def test_the_zone_is_stored_with_the_key(tmp_path: Path, extra: list[str], zone: str | None) -> None:
    done = keys_create(tmp_path / "t.db", *extra)
    assert done.returncode == 0, done.stderr
    store = Store(tmp_path / "t.db")
    try:
        key = store.keys.find(done.stdout.strip())
    finally:
        store.close()
    assert key is not None
    assert (key.name, key.time_zone) == ("berlin-ops", zone)


@pytest.mark.parametrize("zone", ["Europe/Atlantis", "America", "+02:00", ""])
def test_an_unknown_zone_is_refused_before_anything_is_stored(tmp_path: Path, zone: str) -> None:
    done = keys_create(tmp_path / "t.db", "--time-zone", zone)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"Invalid value for '--time-zone': {zone!r} is not an IANA time zone" in done.stderr
    assert not (tmp_path / "t.db").exists()
