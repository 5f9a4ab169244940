"""The bridged Android devices' broker logins: the file's lines, and the file read again only when it changes."""

import logging
from pathlib import Path

import pytest

from agent.android.logins import LoginsFile, ParsedLogins, parse_logins


def test_lines_are_device_ids_and_passwords_with_comments_and_blanks_skipped() -> None:
    text = "# from tether broker acl\n\nandroid-R58M  s3cret \n  android-emulator-5554 two words\n"

    assert parse_logins(text) == ParsedLogins(
        {"android-R58M": "s3cret", "android-emulator-5554": "two words"}, problems=()
    )


def test_a_bad_line_is_skipped_with_its_number_and_never_its_password() -> None:
    text = "android-A pw-a\nandroid-B\nbad/id pw-bad\nandroid-A pw-again\nandroid-C pw-c\n"

    parsed = parse_logins(text)

    assert parsed.passwords == {"android-A": "pw-a", "android-C": "pw-c"}
    assert [problem.split(":")[0] for problem in parsed.problems] == ["line 2", "line 3", "line 4"]
    assert "'<device_id> <password>'" in parsed.problems[0]
    assert "bad/id" in parsed.problems[1]
    assert "given before" in parsed.problems[2]
    assert not any("pw-" in problem for problem in parsed.problems)


def write(path: Path, text: str, mode: int = 0o600) -> None:
    path.write_text(text)
    path.chmod(mode)


def test_a_login_added_or_changed_is_seen_at_the_next_look(tmp_path: Path) -> None:
    path = tmp_path / "android-logins"
    logins = LoginsFile(path)
    write(path, "android-A pw-1\n")
    assert (logins.password("android-A"), logins.password("android-B")) == ("pw-1", None)

    write(path, "android-A pw-2\nandroid-B pw-b\n")

    assert (logins.password("android-A"), logins.password("android-B")) == ("pw-2", "pw-b")


def test_what_is_wrong_with_the_file_is_logged_once_per_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "android-logins"
    logins = LoginsFile(path)
    caplog.set_level(logging.WARNING)

    for _ in range(3):
        assert logins.password("android-A") is None
    write(path, "android-A pw-a\nandroid-B\n", mode=0o644)
    for _ in range(3):
        assert logins.password("android-A") == "pw-a"
    path.unlink()
    assert logins.password("android-A") is None

    assert [record.getMessage().replace(str(path), "FILE") for record in caplog.records] == [
        "cannot read the Android devices' broker logins in FILE: No such file or directory",
        "FILE line 2: expected '<device_id> <password>': skipped",
        "FILE holds broker passwords but other users may read it: chmod 600 it",
        "cannot read the Android devices' broker logins in FILE: No such file or directory",
    ]
