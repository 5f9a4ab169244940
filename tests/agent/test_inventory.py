"""The Linux agent's own time zone: the first of $TZ, the /etc/localtime link and /etc/timezone that names a zone."""

from pathlib import Path

import pytest

from agent.inventory import local_time_zone


@pytest.mark.parametrize("written", ["America", "Mars/Olympus", "/usr/share/zoneinfo/Asia/Tokyo", ""])
def test_a_timezone_file_that_names_no_zone_falls_through_to_the_localtime_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: str
) -> None:
    monkeypatch.delenv("TZ", raising=False)
    (tmp_path / "timezone").write_text(f"{written}\n")
    (tmp_path / "localtime").symlink_to("/usr/share/zoneinfo/Europe/Berlin")
    assert local_time_zone(tmp_path) == "Europe/Berlin"


def test_tz_wins_and_nothing_known_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "timezone").write_text("Europe/Berlin\n")
    monkeypatch.setenv("TZ", ":Asia/Tokyo")
    assert local_time_zone(tmp_path) == "Asia/Tokyo"
    monkeypatch.setenv("TZ", "America")
    (tmp_path / "timezone").write_text("America\n")
    assert local_time_zone(tmp_path) is None


def test_the_localtime_link_wins_over_a_stale_timezone_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """timedatectl set-timezone changes the link; /etc/timezone is a copy that only Debian keeps up to date."""
    monkeypatch.delenv("TZ", raising=False)
    (tmp_path / "timezone").write_text("Europe/Berlin\n")
    (tmp_path / "localtime").symlink_to("/usr/share/zoneinfo/Asia/Tokyo")
    assert local_time_zone(tmp_path) == "Asia/Tokyo"
    (tmp_path / "localtime").unlink()
    assert local_time_zone(tmp_path) == "Europe/Berlin"
