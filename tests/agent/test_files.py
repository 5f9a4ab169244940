"""Files the agent writes whole, for other users to read: a crash never leaves half of one, and the umask of
tetherd's unit (077) never hides one from its reader."""

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.errors import HandlerError
from agent.files import write_atomically


@pytest.fixture
def service_umask() -> Iterator[None]:
    previous = os.umask(0o077)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("service_umask")
def test_the_file_and_the_directories_made_for_it_are_readable_by_everyone(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "tether" / "app-config" / "kiosk.json"

    assert write_atomically(path, b"{}\n") is None

    assert path.read_bytes() == b"{}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    for directory in (tmp_path / "etc", tmp_path / "etc" / "tether", path.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o755
    assert [entry.name for entry in path.parent.iterdir()] == ["kiosk.json"]  # no temporary file left


def test_replacing_returns_what_was_there(tmp_path: Path) -> None:
    path = tmp_path / "unit.service"
    write_atomically(path, b"old")
    assert write_atomically(path, b"new") == b"old"
    assert path.read_bytes() == b"new"


def test_a_directory_that_cannot_be_made_is_one_clear_failure(tmp_path: Path) -> None:
    (tmp_path / "etc").write_text("a file where a directory should be")
    with pytest.raises(HandlerError, match=r"^cannot write .*/etc/tether/x\.json: "):
        write_atomically(tmp_path / "etc" / "tether" / "x.json", b"{}")
