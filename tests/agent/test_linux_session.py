"""The graphical-session family on Linux: sessions found through logind and tools run in them, against fakes."""

import asyncio
import hashlib
import os
import shlex
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agent import process
from agent.errors import HandlerError, ToolNotFound, UnsupportedOperation
from agent.platforms import LinuxPlatform
from shared.arguments import ArgumentsError, validate_arguments
from shared.arguments.system import AudioStream
from shared.operations import OperationType
from tests.fakes import GSETTINGS, LIST_SESSIONS, RUNUSER, FakeSession, FakeTools, logind, show_session

sh = shlex.split
T = TypeVar("T")

KIOSK = FakeSession("2", tty="tty2")
"""User kiosk in GNOME on Wayland."""
KIOSK_AGAIN = FakeSession("4")
"""A second GNOME session of the same user."""
X11 = FakeSession("3", user="signage", uid=1002, type="x11", desktop="", display=":0", locks=False)
"""User signage on a bare X11 display, with no screen locker."""
SWAY = FakeSession("5", user="panel", uid=1003, desktop="sway")
SSH = FakeSession("7", user="ops", uid=1001, type="tty", desktop="", tty="pts/0")
REMOTE = FakeSession("8", user="ops", uid=1001, type="x11", desktop="", display=":10", remote=True)


@pytest.fixture(autouse=True)
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    monkeypatch.setattr(process, "KILL_GRACE_S", 0.5)
    monkeypatch.setattr(process, "DRAIN_S", 0.3)
    monkeypatch.delenv("DISPLAY", raising=False)
    tools = FakeTools.on_path(tmp_path / "fake-bin", monkeypatch)
    tools.add("runuser", script=RUNUSER)
    return tools


@pytest.fixture
def platform(tmp_path: Path) -> LinuxPlatform:
    return LinuxPlatform(
        boot_id_path=tmp_path / "boot_id",
        tool_timeout=5,
        etc_dir=tmp_path / "etc",
        user_runtime_root=tmp_path / "run-user",
        wallpaper_dir=tmp_path / "backgrounds",
        lock_wait_s=0.3,
    )


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def sessions(tools: FakeTools, *listed: FakeSession) -> None:
    tools.add("loginctl", script=logind(*listed))


def as_user(tmp_path: Path, user: str, uid: int, *extra: str) -> list[str]:
    """runuser's argv up to the tool, for `user`'s session."""
    runtime = tmp_path / "run-user" / str(uid)
    environment = [f"XDG_RUNTIME_DIR={runtime}", f"DBUS_SESSION_BUS_ADDRESS=unix:path={runtime}/bus", *extra]
    return ["runuser", "-u", user, "--", "env", *environment]


# --- finding sessions and running tools in them ----------------------------------------------------------------------


def test_graphical_sessions_are_the_local_x11_and_wayland_ones(fake_tools: FakeTools, platform: LinuxPlatform) -> None:
    sessions(fake_tools, KIOSK, SSH, REMOTE, X11)

    found = run(platform.graphical_sessions())

    assert [session.id for session in found] == ["2", "3"]
    assert (found[1].user, found[1].uid, found[1].display, found[1].locked) == ("signage", 1002, ":0", False)
    assert fake_tools.calls() == [LIST_SESSIONS, *(show_session(id) for id in ("2", "7", "8", "3"))]


def test_a_session_that_ends_while_being_read_is_left_out(fake_tools: FakeTools, platform: LinuxPlatform) -> None:
    fake_tools.add("loginctl", script=logind(KIOSK).replace("printf '2 1000", "printf '9 1000 gone seat0\\n2 1000"))

    assert [session.id for session in run(platform.login_sessions())] == ["2"]


def test_a_tool_runs_as_the_session_user_with_its_display_and_gdm_cookie(
    fake_tools: FakeTools, platform: LinuxPlatform, tmp_path: Path
) -> None:
    cookie = tmp_path / "run-user" / "1002" / "gdm" / "Xauthority"
    cookie.parent.mkdir(parents=True)
    cookie.write_text("cookie")
    sessions(fake_tools, X11)
    fake_tools.add("xset")

    (session,) = run(platform.graphical_sessions())
    run(platform.as_session_user(session, "xset", "q"))

    assert fake_tools.calls()[-2:] == [
        [*as_user(tmp_path, "signage", 1002, "DISPLAY=:0", f"XAUTHORITY={cookie}"), "xset", "q"],
        ["xset", "q"],
    ]


def test_a_tool_run_as_the_session_user_gets_none_of_tetherds_secrets(
    fake_tools: FakeTools, platform: LinuxPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The user owns the tool's process and can read its /proc/PID/environ: tetherd's environment may hold the broker
    # password ($TETHER_BROKER_PASSWORD) or a proxy's credentials.
    monkeypatch.setenv("TETHER_BROKER_PASSWORD", "broker-s3cret")
    monkeypatch.setenv("https_proxy", "http://ops:proxy-s3cret@proxy.example:3128")
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    dump = tmp_path / "environment"
    sessions(fake_tools, KIOSK)
    fake_tools.add("gsettings", script=f"env > {shlex.quote(str(dump))}")

    (session,) = run(platform.graphical_sessions())
    run(platform.as_session_user(session, "gsettings", "get", "a", "b"))

    environment = dump.read_text()
    assert "s3cret" not in environment
    assert "LANG=de_DE.UTF-8\n" in environment  # the tool still speaks the device's language
    assert f"XDG_RUNTIME_DIR={tmp_path / 'run-user' / '1000'}\n" in environment


def test_a_tool_missing_from_path_is_named_before_anything_runs(
    fake_tools: FakeTools, platform: LinuxPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions(fake_tools, KIOSK)
    monkeypatch.setenv("PATH", str(fake_tools.directory))
    (session,) = run(platform.graphical_sessions())

    with pytest.raises(ToolNotFound, match=r"^gsettings not found on PATH$"):
        run(platform.as_session_user(session, "gsettings", "get", "a", "b"))
    assert fake_tools.calls("runuser") == []


# --- LOCK -------------------------------------------------------------------------------------------------------------


def test_lock_fails_without_a_graphical_session(fake_tools: FakeTools, platform: LinuxPlatform) -> None:
    sessions(fake_tools, SSH)

    with pytest.raises(HandlerError, match=r"^no graphical session to lock: logind lists none at the device's screen$"):
        run(platform.lock_sessions())
    assert ["loginctl", "lock-sessions"] not in fake_tools.calls()


def test_lock_fails_naming_the_session_that_has_no_screen_locker(
    fake_tools: FakeTools, platform: LinuxPlatform
) -> None:
    sessions(fake_tools, KIOSK, X11)

    with pytest.raises(HandlerError) as caught:
        run(platform.lock_sessions())

    assert str(caught.value) == (
        "session 3 of signage (x11) did not lock within 0.3 s: no screen locker answered logind's Lock"
    )
    assert caught.value.result == {
        "sessions": [
            {"session": "2", "user": "kiosk", "type": "wayland", "desktop": "GNOME", "locked": True},
            {"session": "3", "user": "signage", "type": "x11", "desktop": None, "locked": False},
        ]
    }


# --- SET_DEVICE_LOCKDOWN_STATE --------------------------------------------------------------------------------------


def test_lockdown_refuses_logins_with_the_message_and_locks_the_sessions(
    fake_tools: FakeTools, platform: LinuxPlatform, tmp_path: Path
) -> None:
    sessions(fake_tools, KIOSK)
    nologin = tmp_path / "etc" / "nologin"

    result = run(platform.set_lockdown(True, "Out of service.\nCall 555-0100."))

    assert nologin.read_text() == "Out of service.\nCall 555-0100.\n"
    assert nologin.stat().st_mode & 0o777 == 0o644
    assert result == {
        "enabled": True,
        "nologin": str(nologin),
        "sessions": [{"session": "2", "user": "kiosk", "type": "wayland", "desktop": "GNOME", "locked": True}],
    }
    assert ["loginctl", "lock-sessions"] in fake_tools.calls()


def test_lockdown_without_sessions_refuses_logins_with_the_default_message(
    fake_tools: FakeTools, platform: LinuxPlatform, tmp_path: Path
) -> None:
    result = run(platform.set_lockdown(True, ""))

    assert (tmp_path / "etc" / "nologin").read_text() == "Logins are disabled on this device by its administrator.\n"
    assert result["sessions"] == []
    assert fake_tools.calls() == [LIST_SESSIONS]


def test_lockdown_whose_session_does_not_lock_says_logins_are_refused_all_the_same(
    fake_tools: FakeTools, platform: LinuxPlatform, tmp_path: Path
) -> None:
    sessions(fake_tools, X11)

    with pytest.raises(HandlerError) as caught:
        run(platform.set_lockdown(True, ""))

    nologin = tmp_path / "etc" / "nologin"
    assert str(caught.value).startswith(f"new logins are refused ({nologin} written), but session 3 of signage")
    assert nologin.exists()
    assert caught.value.result is not None


def test_ending_the_lockdown_removes_nologin_and_says_whether_it_was_there(
    platform: LinuxPlatform, tmp_path: Path
) -> None:
    nologin = tmp_path / "etc" / "nologin"
    nologin.parent.mkdir()
    nologin.write_text("closed\n")

    assert run(platform.set_lockdown(False, "")) == {"enabled": False, "nologin": str(nologin), "removed": True}
    assert not nologin.exists()
    assert run(platform.set_lockdown(False, ""))["removed"] is False


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({}, "arguments.enabled"),
        ({"enabled": "yes"}, "arguments.enabled"),
        ({"enabled": True, "message": "\x1b[2J gone"}, "arguments.message"),
        ({"enabled": True, "message": "bell\x07"}, "arguments.message"),
        # C1 controls: U+009B is CSI on terminals that read 8-bit controls, which login would print it to raw.
        ({"enabled": True, "message": "\x9b2J gone"}, "arguments.message"),
        ({"enabled": True, "message": "\x9d0;owned\x9c"}, "arguments.message"),
        ({"enabled": True, "message": "m" * 1001}, "arguments.message"),
        ({"enabled": True, "path": "/etc/passwd"}, "arguments.path"),
    ],
)
def test_lockdown_arguments_are_refused(arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(ArgumentsError) as caught:
        validate_arguments(OperationType.SET_DEVICE_LOCKDOWN_STATE, arguments)
    assert caught.value.field == field


# --- SET_WALLPAPER ----------------------------------------------------------------------------------------------------


PNG = b"\x89PNG\r\n\x1a\n fake"


def image(tmp_path: Path, name: str = "kiosk.png", content: bytes = PNG) -> Path:
    path = tmp_path / "work" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    return path


def test_wallpaper_is_stored_by_content_set_in_gnome_and_read_back(
    fake_tools: FakeTools, platform: LinuxPlatform, tmp_path: Path
) -> None:
    sessions(fake_tools, KIOSK, KIOSK_AGAIN)
    fake_tools.add("gsettings", script=GSETTINGS)
    backgrounds = tmp_path / "backgrounds"
    backgrounds.mkdir()
    (backgrounds / "wallpaper-0123456789abcdef.jpg").write_bytes(b"the previous one")
    stored = backgrounds / f"wallpaper-{hashlib.sha256(PNG).hexdigest()[:16]}.png"
    uri = stored.as_uri()

    result = run(platform.set_wallpaper(image(tmp_path)))

    assert result == {
        "path": str(stored),
        "uri": uri,
        "sessions": [{"session": "2", "user": "kiosk", "type": "wayland", "desktop": "GNOME"}],
    }
    assert stored.read_bytes() == PNG
    assert stored.stat().st_mode & 0o777 == 0o644
    assert list(backgrounds.iterdir()) == [stored]
    assert fake_tools.calls("gsettings") == [
        ["gsettings", "set", "org.gnome.desktop.background", "picture-uri", uri],
        ["gsettings", "set", "org.gnome.desktop.background", "picture-uri-dark", uri],
        ["gsettings", "get", "org.gnome.desktop.background", "picture-uri"],
    ]
    assert fake_tools.calls("runuser")[0] == as_user(tmp_path, "kiosk", 1000) + fake_tools.calls("gsettings")[0]


def test_wallpaper_directories_made_under_the_agents_umask_can_be_read_by_the_session_user(
    fake_tools: FakeTools, tmp_path: Path
) -> None:
    # tetherd runs with umask 077 (its unit's UMask, and cli.py): directories it makes would be root's alone, and
    # GNOME, as the session's user, could not reach the image it was told to show.
    sessions(fake_tools, KIOSK)
    fake_tools.add("gsettings", script=GSETTINGS)
    share = tmp_path / "share"
    platform = LinuxPlatform(
        tool_timeout=5, user_runtime_root=tmp_path / "run-user", wallpaper_dir=share / "backgrounds" / "tether"
    )
    previous = os.umask(0o077)
    try:
        result = run(platform.set_wallpaper(image(tmp_path)))
    finally:
        os.umask(previous)

    assert Path(result["path"]).parent == share / "backgrounds" / "tether"
    for directory in (share, share / "backgrounds", share / "backgrounds" / "tether"):
        assert directory.stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("planted", ["symlink", "group-writable"])
def test_wallpaper_directory_another_user_could_change_is_refused(
    planted: str, fake_tools: FakeTools, platform: LinuxPlatform, tmp_path: Path
) -> None:
    # Debian's /usr/local/share is group staff's to write: a member could plant the directory (or a link to one the
    # agent would then fill and clean up as root) before the agent first makes it.
    sessions(fake_tools, KIOSK)
    fake_tools.add("gsettings", script=GSETTINGS)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "wallpaper-keep").write_bytes(b"not the agent's")
    if planted == "symlink":
        (tmp_path / "backgrounds").symlink_to(elsewhere)
    else:
        (tmp_path / "backgrounds").mkdir()
        (tmp_path / "backgrounds").chmod(0o775)

    with pytest.raises(HandlerError, match=r"^cannot store the wallpaper in .*backgrounds: it is "):
        run(platform.set_wallpaper(image(tmp_path)))

    assert sorted(path.name for path in elsewhere.iterdir()) == ["wallpaper-keep"]
    assert fake_tools.calls("gsettings") == []


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("kiosk.png", b"<svg xmlns='http://www.w3.org/2000/svg'/>"),  # another of gdk-pixbuf's loaders would read it
        ("kiosk.jpg", b"\x89PNG\r\n\x1a\n a PNG under a JPEG name"),
        ("kiosk.webp", b"RIFF\x00\x00\x00\x00AVI a RIFF that is no WebP"),
    ],
)
def test_wallpaper_whose_content_is_not_what_its_name_says_is_refused(
    name: str, content: bytes, fake_tools: FakeTools, platform: LinuxPlatform, tmp_path: Path
) -> None:
    # GNOME's image loader goes by the content, not the name: without this check any format it has a loader for
    # (TGA, ICO, XPM, SVG...) would be parsed in every user's session.
    sessions(fake_tools, KIOSK)
    fake_tools.add("gsettings", script=GSETTINGS)

    with pytest.raises(HandlerError, match=rf"^{name} is not a {name.rsplit('.', 1)[1]} image: its first bytes "):
        run(platform.set_wallpaper(image(tmp_path, name, content)))

    assert not (tmp_path / "backgrounds").exists()
    assert fake_tools.calls("gsettings") == []


def test_wallpaper_that_does_not_read_back_fails(
    fake_tools: FakeTools, platform: LinuxPlatform, tmp_path: Path
) -> None:
    sessions(fake_tools, KIOSK)
    fake_tools.add("gsettings", stdout="'file:///usr/share/backgrounds/gnome/adwaita-l.jpg'\n")

    with pytest.raises(HandlerError, match=r"still shows 'file:///usr/share/backgrounds/gnome/adwaita-l.jpg' after"):
        run(platform.set_wallpaper(image(tmp_path)))


def test_wallpaper_of_another_desktop_is_not_supported_and_nothing_is_stored(
    fake_tools: FakeTools, platform: LinuxPlatform, tmp_path: Path
) -> None:
    sessions(fake_tools, KIOSK, SWAY)
    fake_tools.add("gsettings", script=GSETTINGS)

    with pytest.raises(UnsupportedOperation) as caught:
        run(platform.set_wallpaper(image(tmp_path)))

    assert str(caught.value) == (
        "the wallpaper of session 5 of panel (wayland, sway) cannot be set: only GNOME's (gsettings) is supported"
    )
    assert fake_tools.calls("gsettings") == []
    assert not (tmp_path / "backgrounds").exists()


def test_wallpaper_needs_an_image_and_a_session(fake_tools: FakeTools, platform: LinuxPlatform, tmp_path: Path) -> None:
    with pytest.raises(HandlerError, match=r"^cannot show kiosk.svg as a wallpaper: the URL must name a "):
        run(platform.set_wallpaper(image(tmp_path, "kiosk.svg")))
    with pytest.raises(HandlerError, match=r"^no graphical session is logged in to show a wallpaper in$"):
        run(platform.set_wallpaper(image(tmp_path)))


# --- NOTIFY_DEVICE --------------------------------------------------------------------------------------------------


def test_notify_reaches_terminals_and_each_graphical_session(
    fake_tools: FakeTools, platform: LinuxPlatform, tmp_path: Path
) -> None:
    sessions(fake_tools, KIOSK, SSH)
    fake_tools.add("wall")
    fake_tools.add("notify-send")

    result = run(platform.notify("--help", "Restart at 14:00"))

    assert result == {
        "terminals": ["pts/0"],
        "sessions": [{"session": "2", "user": "kiosk", "type": "wayland", "desktop": "GNOME"}],
        "not_reached": [],
    }
    assert fake_tools.calls("wall") == [["wall"]]
    assert fake_tools.calls("notify-send") == [["notify-send", "--app-name=Tether", "--", "--help", "Restart at 14:00"]]


def test_notify_reaches_the_terminal_of_an_ssh_login_that_logind_names_none_for(
    fake_tools: FakeTools, platform: LinuxPlatform
) -> None:
    # OpenSSH opens its logind session before the terminal exists (Debian 12, seen in the VM tier): only utmp has it.
    fake_tools.add("who", stdout="root     pts/0        2026-12-06 18:36 (10.0.2.2)\nkiosk    :0   2026-12-06 09:58\n")

    result = run(platform.notify("Maintenance", "Restart at 14:00"))

    assert result == {"terminals": ["pts/0"], "sessions": [], "not_reached": []}
    assert fake_tools.calls("wall") == [["wall"]]


def test_notify_fails_when_nobody_is_reached(fake_tools: FakeTools, platform: LinuxPlatform) -> None:
    with pytest.raises(HandlerError, match=r"^nobody to notify: logind lists no session with a terminal or a screen$"):
        run(platform.notify("Hello", ""))

    sessions(fake_tools, KIOSK)
    fake_tools.add("notify-send", exit_code=1, stderr="Cannot autolaunch D-Bus without X11 $DISPLAY\n")
    with pytest.raises(HandlerError) as caught:
        run(platform.notify("Hello", ""))
    assert str(caught.value) == (
        "session 2 of kiosk (wayland, GNOME): runuser exited 1: Cannot autolaunch D-Bus without X11 $DISPLAY"
    )
    assert fake_tools.calls("wall") == []


# --- SET_SCREEN_OFF_TIMEOUT and SET_STREAM_VOLUME -------------------------------------------------------------------


def test_screen_timeout_uses_gsettings_in_gnome_and_xset_on_other_x11_displays(
    fake_tools: FakeTools, platform: LinuxPlatform, tmp_path: Path
) -> None:
    sessions(fake_tools, KIOSK, X11)
    fake_tools.add("gsettings", script=GSETTINGS)
    fake_tools.add("xset")

    result = run(platform.set_screen_off_timeout(120))

    assert result == {
        "mechanism": "gsettings+xset",
        "sessions": [
            {"session": "2", "user": "kiosk", "type": "wayland", "desktop": "GNOME", "mechanism": "gsettings"},
            {"session": "3", "user": "signage", "type": "x11", "desktop": None, "mechanism": "xset", "display": ":0"},
        ],
    }
    assert fake_tools.calls("runuser") == [
        as_user(tmp_path, "kiosk", 1000) + sh("gsettings set org.gnome.desktop.session idle-delay 120"),
        as_user(tmp_path, "signage", 1002, "DISPLAY=:0") + sh("xset s 120 0 +dpms dpms 120 120 120"),
    ]


def test_screen_timeout_of_another_wayland_compositor_changes_nothing(
    fake_tools: FakeTools, platform: LinuxPlatform
) -> None:
    sessions(fake_tools, KIOSK, SWAY)
    fake_tools.add("gsettings", script=GSETTINGS)

    with pytest.raises(UnsupportedOperation) as caught:
        run(platform.set_screen_off_timeout(60))

    assert str(caught.value) == (
        "the screen-off timeout of session 5 of panel (wayland, sway) cannot be set: on Wayland only GNOME's "
        "(gsettings) is supported, and xset reaches X11 sessions only"
    )
    assert fake_tools.calls("runuser") == []


def test_volume_runs_wpctl_once_per_user(fake_tools: FakeTools, platform: LinuxPlatform, tmp_path: Path) -> None:
    sessions(fake_tools, KIOSK, KIOSK_AGAIN, X11)
    fake_tools.add("wpctl")

    run(platform.set_stream_volume(AudioStream.MUSIC, 30))

    assert fake_tools.calls("runuser") == [
        as_user(tmp_path, "kiosk", 1000) + sh("wpctl set-volume @DEFAULT_AUDIO_SINK@ 30%"),
        as_user(tmp_path, "signage", 1002, "DISPLAY=:0") + sh("wpctl set-volume @DEFAULT_AUDIO_SINK@ 30%"),
    ]


def test_volume_without_a_session_falls_back_to_alsa_or_fails(
    fake_tools: FakeTools, platform: LinuxPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(fake_tools.directory))
    fake_tools.add("wpctl")
    fake_tools.add("amixer")
    run(platform.set_stream_volume(AudioStream.SYSTEM, 20))
    assert fake_tools.calls("amixer") == [sh("amixer sset Master 20%")]

    (fake_tools.directory / "amixer").unlink()
    with pytest.raises(HandlerError, match=r"^wpctl sets a user's PipeWire volume and no graphical session"):
        run(platform.set_stream_volume(AudioStream.SYSTEM, 20))
    assert fake_tools.calls("wpctl") == []


# --- SET_DEVICE_LANGUAGE ----------------------------------------------------------------------------------------------

LOCALE_GEN = """# This file lists locales that you wish to have built.

# de_CH.UTF-8 UTF-8
# de_DE.UTF-8 UTF-8
en_US.UTF-8 UTF-8
"""
LISTS_DE_ONCE_GENERATED = """printf 'C\\nC.utf8\\nPOSIX\\nen_US.utf8\\n'
if [ -e "${0%/*}/generated" ]; then printf 'de_DE.utf8\\n'; fi"""


def test_a_missing_locale_is_enabled_in_locale_gen_generated_and_checked(
    fake_tools: FakeTools, platform: LinuxPlatform, tmp_path: Path
) -> None:
    locale_gen = tmp_path / "etc" / "locale.gen"
    locale_gen.parent.mkdir()
    locale_gen.write_text(LOCALE_GEN)
    fake_tools.add("locale", script=LISTS_DE_ONCE_GENERATED)
    fake_tools.add("locale-gen", script=': > "${0%/*}/generated"')
    fake_tools.add("localectl")

    assert run(platform.set_language("de")) == {"locale": "de_DE.UTF-8", "generated": True}

    assert locale_gen.read_text() == LOCALE_GEN.replace("# de_DE.UTF-8 UTF-8", "de_DE.UTF-8 UTF-8")
    assert fake_tools.calls() == [
        sh("locale -a"),
        ["locale-gen"],
        sh("locale -a"),
        sh("localectl set-locale LANG=de_DE.UTF-8"),
    ]


def test_a_locale_glibc_cannot_build_fails_and_locale_gen_is_put_back(
    fake_tools: FakeTools, platform: LinuxPlatform, tmp_path: Path
) -> None:
    locale_gen = tmp_path / "etc" / "locale.gen"
    locale_gen.parent.mkdir()
    locale_gen.write_text(LOCALE_GEN)
    fake_tools.add("locale", script=LISTS_DE_ONCE_GENERATED)

    with pytest.raises(HandlerError, match=r"^xx_YY.UTF-8 does not exist after locale-gen: glibc has no such locale$"):
        run(platform.set_language("xx_YY"))

    assert locale_gen.read_text() == LOCALE_GEN
    assert fake_tools.calls("localectl") == []


def test_without_locale_gen_localedef_builds_the_locale(
    fake_tools: FakeTools, platform: LinuxPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(fake_tools.directory))
    (fake_tools.directory / "locale-gen").unlink()
    fake_tools.add("locale", script=LISTS_DE_ONCE_GENERATED)
    fake_tools.add("localedef", script=': > "${0%/*}/generated"')
    fake_tools.add("localectl")

    assert run(platform.set_language("de_DE.UTF-8"))["generated"] is True
    assert fake_tools.calls("localedef") == [sh("localedef -i de_DE -f UTF-8 de_DE.UTF-8")]
    assert not (tmp_path / "etc" / "locale.gen").exists()


def test_a_bare_language_without_a_known_country_is_refused(fake_tools: FakeTools, platform: LinuxPlatform) -> None:
    with pytest.raises(HandlerError) as caught:
        run(platform.set_language("eo"))

    assert str(caught.value) == (
        "'eo' names no country and there is no default locale for it here: send language_COUNTRY (e.g. eo_EO)"
    )
    assert fake_tools.calls() == []
