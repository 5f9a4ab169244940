"""The edge of `tether` and `tetherd`: how errors read in one line, and the path checks made before a command runs."""

import errno
import re
from pathlib import Path

import click
import pytest

from agent.command_line import (
    describe,
    directories_or_missing,
    first_leaf,
    in_an_existing_directory,
    not_blank,
    one_line,
)

OPTION = click.Option(["--path"])


def test_one_line_joins_lines_and_runs_of_blanks() -> None:
    assert one_line("Usage: x\n\n  Error:   bad\tvalue\n") == "Usage: x Error: bad value"


def test_an_os_error_reads_as_its_path_and_reason() -> None:
    assert describe(NotADirectoryError(errno.ENOTDIR, "Not a directory", "/srv/f/x")) == "/srv/f/x: Not a directory"
    assert describe(OSError(errno.ENOSPC, "No space left on device")) == "No space left on device"
    assert describe(ValueError("bad")) == "bad"
    assert describe(KeyError()) == "KeyError"


def test_the_first_leaf_of_nested_exception_groups_is_what_failed() -> None:
    failed = OSError("disk")
    group = ExceptionGroup("outer", [ExceptionGroup("inner", [failed, ValueError()]), KeyError()])
    assert first_leaf(group) is failed
    assert first_leaf(failed) is failed


def test_a_path_under_missing_directories_is_fine_and_under_a_file_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    wanted = tmp_path / "a" / "b" / "t.db"
    assert directories_or_missing(click.Context(click.Command("c")), OPTION, wanted) == wanted
    with pytest.raises(click.BadParameter, match=re.escape(f"{tmp_path / 'file'} is not a directory")):
        directories_or_missing(click.Context(click.Command("c")), OPTION, tmp_path / "file" / "b" / "t.db")


def test_a_file_to_write_later_needs_its_directory_now(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    ctx = click.Context(click.Command("c"))
    assert in_an_existing_directory(ctx, OPTION, tmp_path / "s.json") == tmp_path / "s.json"
    with pytest.raises(click.BadParameter, match=re.escape(f"{tmp_path / 'missing'} does not exist")):
        in_an_existing_directory(ctx, OPTION, tmp_path / "missing" / "s.json")
    with pytest.raises(click.BadParameter, match=re.escape(f"{tmp_path / 'file'} is not a directory")):
        in_an_existing_directory(ctx, OPTION, tmp_path / "file" / "s.json")


@pytest.mark.parametrize("blank", ["", " ", "\t\n"])
def test_a_blank_value_is_refused(blank: str) -> None:
    with pytest.raises(click.BadParameter, match=r"^must not be empty$"):
        not_blank(click.Context(click.Command("c")), OPTION, blank)
    assert not_blank(click.Context(click.Command("c")), OPTION, " alice") == " alice"
