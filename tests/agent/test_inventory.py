"""The Linux agent's own time zone: the first of $TZ, /etc/timezone and the /etc/localtime link that names a zone."""

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
