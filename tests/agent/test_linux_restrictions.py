"""ALLOW_BLUETOOTH and ALLOW_CAMERA on Linux, with a fake /proc/modules and recording fakes of modprobe and rfkill."""

import asyncio
import shlex
from pathlib import Path
from typing import Any

import pytest

from agent.errors import HandlerError, UnsupportedOperation
from agent.handlers import handler_for
from agent.handlers.restrictions import AllowHandler
from agent.platforms import LinuxPlatform
from agent.platforms.android import AndroidPlatform
from agent.platforms.linux_restrictions import dependants_first, parse_proc_modules, recorded_modules
from shared.arguments import ArgumentsError, validate_arguments
from shared.arguments.restrictions import Restriction
from shared.operations import OperationType
from tests.agent.contexts import context_for
from tests.fakes import FakeTools

sh = shlex.split

BLUETOOTH_LOADED = """\
rfcomm 90112 4 - Live 0x0000000000000000
bnep 32768 2 - Live 0x0000000000000000
btusb 77824 0 - Live 0x0000000000000000
btrtl 32768 1 btusb, Live 0x0000000000000000
btintel 57344 1 btusb, Live 0x0000000000000000
bluetooth 1028096 30 rfcomm,bnep,btusb,btrtl,btintel, Live 0x0000000000000000
snd_hda_intel 57344 3 - Live 0x0000000000000000
"""
CAMERA_LOADED = """\
uvcvideo 139264 1 - Live 0x0000000000000000
videobuf2_v4l2 36864 1 uvcvideo, Live 0x0000000000000000
snd_hda_intel 57344 3 - Live 0x0000000000000000
"""
UNRELATED = "snd_hda_intel 57344 3 - Live 0x0000000000000000\n"
BLUETOOTH_UNLOADED = ["rfcomm", "bnep", "btusb", "btrtl", "btintel", "bluetooth"]
RFKILL_LIST = sh("rfkill --noheadings --output ID list bluetooth")


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    return FakeTools.on_path(tmp_path / "bin", monkeypatch)


@pytest.fixture
def modules(tmp_path: Path) -> Path:
    return tmp_path / "proc-modules"


def modprobe_removes(tools: FakeTools, modules: Path, after: str, *, exit_code: int = 0, stderr: str = "") -> None:
    """A modprobe whose `-r` leaves `after` in /proc/modules; loading (`-a`) leaves the file as it is."""
    script = f"""case "$1" in -r) printf '%s' {shlex.quote(after)} > {shlex.quote(str(modules))} ;; esac"""
    tools.add("modprobe", script=script, exit_code=exit_code, stderr=stderr)


def allow(operation_type: OperationType, arguments: dict[str, Any], tmp_path: Path, modules: Path) -> dict[str, Any]:
    builtin = tmp_path / "modules.builtin"
    if not builtin.exists():
        builtin.write_text("kernel/drivers/net/e1000e/e1000e.ko\n")  # a kernel with loadable modules has one
    platform = LinuxPlatform(
        boot_id_path=tmp_path / "boot_id",
        etc_dir=tmp_path / "etc",
        proc_modules=modules,
        builtin_modules=tmp_path / "modules.builtin",
    )
    parsed = validate_arguments(operation_type, arguments)
    context = context_for(platform, tmp_path, operation_type)
    return asyncio.run(AllowHandler().run(parsed, context))


def block_file(tmp_path: Path, name: str) -> Path:
    return tmp_path / "etc" / "modprobe.d" / f"tether-{name}.conf"


def test_disallowing_bluetooth_blocks_its_drivers_silences_the_radios_and_unloads_them(
    tools: FakeTools, modules: Path, tmp_path: Path
) -> None:
    modules.write_text(BLUETOOTH_LOADED)
    modprobe_removes(tools, modules, UNRELATED)
    tools.add("rfkill", stdout="0\n")

    result = allow(OperationType.ALLOW_BLUETOOTH, {"allowed": False}, tmp_path, modules)

    path = block_file(tmp_path, "bluetooth")
    assert result == {
        "allowed": False,
        "file": str(path),
        "unloaded": BLUETOOTH_UNLOADED,
        "still_loaded": [],
        "effective_now": True,
        "effective_after_reboot": True,
    }
    assert tools.calls() == [
        RFKILL_LIST,
        sh("rfkill block bluetooth"),
        *(["modprobe", "-r", name] for name in BLUETOOTH_UNLOADED),
    ]
    text = path.read_text()
    assert text.startswith("# Managed by Tether (ALLOW_BLUETOOTH): Bluetooth is disallowed on this device.\n")
    assert "# loaded when disallowed: rfcomm bnep btusb btrtl btintel bluetooth\n" in text
    for name in ("bluetooth", "btusb", "btrtl", "btintel", "btbcm", "btmtk", "btsdio", "hci_uart", "rfcomm", "bnep"):
        assert f"\nblacklist {name}\ninstall {name} /bin/false\n" in text
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_camera_driver_in_use_stays_loaded_and_the_result_says_so(
    tools: FakeTools, modules: Path, tmp_path: Path
) -> None:
    modules.write_text(CAMERA_LOADED)
    modprobe_removes(tools, modules, CAMERA_LOADED, exit_code=1, stderr="modprobe: FATAL: Module uvcvideo is in use.\n")

    result = allow(OperationType.ALLOW_CAMERA, {"allowed": "off"}, tmp_path, modules)

    assert result == {
        "allowed": False,
        "file": str(block_file(tmp_path, "camera")),
        "unloaded": [],
        "still_loaded": ["uvcvideo"],
        "effective_now": False,
        "effective_after_reboot": True,
        "unload_errors": {"uvcvideo": "modprobe: FATAL: Module uvcvideo is in use."},
    }
    assert tools.calls() == [sh("modprobe -r uvcvideo")]  # no rfkill for a camera
    assert "\nblacklist uvcvideo\ninstall uvcvideo /bin/false\nblacklist gspca_main\n" in (
        block_file(tmp_path, "camera").read_text()
    )


def test_disallowing_with_nothing_loaded_writes_the_block_and_runs_nothing(
    tools: FakeTools, modules: Path, tmp_path: Path
) -> None:
    result = allow(OperationType.ALLOW_BLUETOOTH, {"allowed": False}, tmp_path, modules)  # no /proc/modules at all

    assert (result["unloaded"], result["still_loaded"], result["effective_now"]) == ([], [], True)
    assert tools.calls() == []
    assert "# loaded when disallowed:\n" in block_file(tmp_path, "bluetooth").read_text()


def test_allowing_again_removes_the_block_and_loads_back_what_it_unloaded(
    tools: FakeTools, modules: Path, tmp_path: Path
) -> None:
    modules.write_text(BLUETOOTH_LOADED)
    modprobe_removes(tools, modules, UNRELATED)
    tools.add("rfkill", stdout="0\n")
    allow(OperationType.ALLOW_BLUETOOTH, {"allowed": False}, tmp_path, modules)
    modules.write_text(BLUETOOTH_LOADED)  # what the real modprobe -a would leave
    tools.log.unlink()

    result = allow(OperationType.ALLOW_BLUETOOTH, {"allowed": True}, tmp_path, modules)

    assert result == {
        "allowed": True,
        "file": str(block_file(tmp_path, "bluetooth")),
        "file_removed": True,
        "loaded": BLUETOOTH_UNLOADED,
        "radios_unblocked": True,
    }
    assert tools.calls() == [
        sh("modprobe -a bluetooth btintel btrtl btusb bnep rfcomm"),
        RFKILL_LIST,
        sh("rfkill unblock bluetooth"),
    ]
    assert not block_file(tmp_path, "bluetooth").exists()


def test_a_block_renewed_after_a_reboot_keeps_what_the_first_one_unloaded(
    tools: FakeTools, modules: Path, tmp_path: Path
) -> None:
    modules.write_text(CAMERA_LOADED)
    modprobe_removes(tools, modules, UNRELATED)
    allow(OperationType.ALLOW_CAMERA, {"allowed": False}, tmp_path, modules)
    modules.write_text(UNRELATED)  # the next boot: the block kept uvcvideo out

    result = allow(OperationType.ALLOW_CAMERA, {"allowed": False}, tmp_path, modules)

    assert (result["unloaded"], result["effective_now"]) == ([], True)
    assert "# loaded when disallowed: uvcvideo\n" in block_file(tmp_path, "camera").read_text()


def test_allowing_what_was_never_disallowed_changes_nothing(tools: FakeTools, modules: Path, tmp_path: Path) -> None:
    result = allow(OperationType.ALLOW_CAMERA, {"allowed": True}, tmp_path, modules)

    assert result == {"allowed": True, "file": str(block_file(tmp_path, "camera")), "file_removed": False, "loaded": []}
    assert tools.calls() == []


def test_a_driver_that_will_not_load_back_fails_and_says_the_block_is_gone(
    tools: FakeTools, modules: Path, tmp_path: Path
) -> None:
    path = block_file(tmp_path, "camera")
    path.parent.mkdir(parents=True)
    path.write_text("# loaded when disallowed: uvcvideo\n")
    tools.add("modprobe", exit_code=1, stderr="modprobe: ERROR: could not insert 'uvcvideo': No such device\n")

    with pytest.raises(HandlerError, match=r"^the camera is allowed again \(.*tether-camera.conf removed\), but"):
        allow(OperationType.ALLOW_CAMERA, {"allowed": True}, tmp_path, modules)
    assert not path.exists()


def test_a_driver_built_into_the_kernel_cannot_be_disallowed_and_nothing_changes(
    tools: FakeTools, modules: Path, tmp_path: Path
) -> None:
    modules.write_text(BLUETOOTH_LOADED)
    (tmp_path / "modules.builtin").write_text("kernel/drivers/bluetooth/btusb.ko\nkernel/net/bluetooth/bluetooth.ko\n")

    with pytest.raises(HandlerError, match=r"^Bluetooth cannot be disallowed here: bluetooth, btusb are built into"):
        allow(OperationType.ALLOW_BLUETOOTH, {"allowed": False}, tmp_path, modules)
    assert tools.calls() == []
    assert not block_file(tmp_path, "bluetooth").exists()


def test_without_the_kernels_list_of_built_in_drivers_nothing_is_disallowed(
    tools: FakeTools, modules: Path, tmp_path: Path
) -> None:
    # No modules.builtin: a kernel without loadable modules, or /lib/modules hidden from tetherd (ProtectKernelModules=
    # yes). Either way Bluetooth may be built in, and a block file would claim a restriction nothing enforces.
    modules.write_text(BLUETOOTH_LOADED)
    platform = LinuxPlatform(
        etc_dir=tmp_path / "etc", proc_modules=modules, builtin_modules=tmp_path / "missing" / "modules.builtin"
    )

    with pytest.raises(HandlerError, match=r"^cannot tell whether Bluetooth's drivers are built into this kernel: "):
        asyncio.run(platform.set_allowed(Restriction.BLUETOOTH, False))
    assert tools.calls() == []
    assert not block_file(tmp_path, "bluetooth").exists()


def test_an_edited_block_file_cannot_hand_modprobe_an_option() -> None:
    text = "# loaded when disallowed: --all -r uvcvideo ../evil gspca_zc3xx\n"

    assert recorded_modules(text) == ["uvcvideo", "gspca_zc3xx"]


def test_proc_modules_lines_are_read_with_their_users() -> None:
    text = "btusb 1 0 - Live 0x0\nbluetooth 2 3 btusb,rfcomm, Live 0x0\nkvm 3 0 [permanent] Live 0x0\n\n"

    assert parse_proc_modules(text) == {"btusb": [], "bluetooth": ["btusb", "rfcomm"], "kvm": ["[permanent]"]}


def test_users_come_before_what_they_use_even_in_a_loop() -> None:
    loaded = {"a": ["b"], "b": ["c", "a"], "c": []}

    assert dependants_first(["a"], loaded) == ["c", "b", "a"]
    assert dependants_first(["c", "a"], {"a": ["c"], "c": []}) == ["c", "a"]


@pytest.mark.parametrize("arguments", [{}, {"allowed": "maybe"}, {"allowed": 1}, {"allowed": True, "extra": 1}])
def test_bad_arguments_are_refused(arguments: dict[str, Any]) -> None:
    with pytest.raises(ArgumentsError):
        validate_arguments(OperationType.ALLOW_CAMERA, arguments)


@pytest.mark.parametrize("operation_type", [OperationType.ALLOW_BLUETOOTH, OperationType.ALLOW_CAMERA])
def test_android_has_no_restrictions(operation_type: OperationType) -> None:
    with pytest.raises(UnsupportedOperation):
        handler_for(operation_type, AndroidPlatform(serial="S1"))
