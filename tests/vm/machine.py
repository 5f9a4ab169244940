"""One Debian VM under QEMU: a throwaway overlay on the cached image, reached over ssh, and host services forwarded in.

The guest's first NIC is QEMU user networking with `restrict=on`: it reaches nothing but the forwards named here
(`HOST_ADDRESS:guest_port` → `127.0.0.1:host_port`, one `socat` per connection) and is reached only through ssh's
forward. Its second NIC is a separate, equally restricted network, for the handlers that reconfigure an interface.
"""

import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.fixtures_brokers import free_port
from tests.vm.image import Image

HOST_ADDRESS = "10.0.2.100"
"""Where the guest finds the host's forwarded services."""

BOOT_TIMEOUT = 180.0
"""Software emulation boots in 20-40 s on an idle machine; a loaded one is slower."""


class MachineError(Exception):
    """The VM could not be started or reached: the message says why, with the end of its console."""


def kvm_usable() -> bool:
    """`/dev/kvm` where it works: a nested hypervisor that hangs Debian's kernel is told apart by `TETHER_VM_KVM=0`."""
    return os.environ.get("TETHER_VM_KVM", "0") == "1" and os.access("/dev/kvm", os.R_OK | os.W_OK)


@dataclass
class Machine:
    image: Image
    work: Path
    forwards: dict[int, int]
    """Guest port on HOST_ADDRESS → host port on 127.0.0.1."""
    ssh_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def console(self) -> Path:
        return self.work / "console.log"

    def start(self) -> "Machine":
        self.work.mkdir(parents=True, exist_ok=True)
        overlay = self.work / "overlay.qcow2"
        if not overlay.exists():
            subprocess.run(
                ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(self.image.root), str(overlay)],
                check=True,
            )
        socat = shutil.which("socat")
        if socat is None:
            raise MachineError("the VM's forwards need socat on PATH")
        uplink = [f"user,id=uplink,restrict=on,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22"] + [
            f"guestfwd=tcp:{HOST_ADDRESS}:{guest}-cmd:{socat} STDIO TCP:127.0.0.1:{host}"
            for guest, host in self.forwards.items()
        ]
        accel = (
            ["-accel", "kvm", "-cpu", "host"]
            if kvm_usable()
            else ["-accel", "tcg,thread=multi,tb-size=256", "-cpu", "max"]
        )
        argv = [
            "qemu-system-x86_64",
            *accel,
            "-m", "1024",
            "-smp", "2",
            "-nographic",
            "-no-user-config",
            "-nodefaults",
            "-serial", f"file:{self.console}",
            "-kernel", str(self.image.kernel),
            "-initrd", str(self.image.initrd),
            "-append", "root=/dev/vda rw console=ttyS0 net.ifnames=0 systemd.show_status=0",
            "-drive", f"file={overlay},if=virtio,format=qcow2",
            "-netdev", ",".join(uplink),
            "-device", "virtio-net-pci,netdev=uplink,mac=52:54:00:12:34:01",
            "-netdev", "user,id=lab,restrict=on,net=10.0.3.0/24",
            "-device", "virtio-net-pci,netdev=lab,mac=52:54:00:12:34:02",
            "-device", "virtio-rng-pci",
        ]  # fmt: skip
        with (self.work / "qemu.log").open("ab") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.wait_for_ssh()
        return self

    def wait_for_ssh(self, timeout: float = BOOT_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise MachineError(f"QEMU exited with {self.process.returncode}: {self._why()}")
            if self.ssh("true", timeout=15, check=False).returncode == 0:
                return
            time.sleep(1)
        raise MachineError(f"no ssh login within {timeout:.0f} s: {self._why()}")

    def ssh(
        self, command: str, timeout: float = 120, check: bool = True, user: str = "root"
    ) -> subprocess.CompletedProcess[str]:
        """`command` run by the shell of the guest's `user`; with `check`, a failure raises with its output."""
        argv = self.ssh_argv(command, user)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as timed_out:
            if check:
                raise MachineError(f"{command!r} did not finish within {timeout} s") from timed_out
            return subprocess.CompletedProcess(argv, 255, "", "timed out")
        if check and done.returncode != 0:
            raise MachineError(f"{command!r} exited {done.returncode}: {done.stdout}{done.stderr}")
        return done

    def output(self, command: str) -> str:
        return self.ssh(command).stdout.strip()

    def copy_in(self, source: Path, destination: str) -> None:
        argv = [
            "scp", "-q",
            "-i", str(self.image.ssh_key),
            "-P", str(self.ssh_port),
            "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR",
            str(source), f"root@127.0.0.1:{destination}",
        ]  # fmt: skip
        subprocess.run(argv, check=True, timeout=120)

    def write(self, path: str, text: str, mode: str = "0644") -> None:
        """`text` as the guest's file `path`, through ssh's standard input."""
        argv_command = f"install -D -m {mode} /dev/stdin {shlex.quote(path)}"
        done = subprocess.run(
            self.ssh_argv(argv_command), input=text, capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise MachineError(f"writing {path} failed: {done.stderr}")

    def ssh_argv(self, command: str, user: str = "root", terminal: bool = False) -> list[str]:
        """ssh's argv for `command`; with `terminal`, a pseudo-terminal is allocated, as for an interactive login."""
        return [
            "ssh",
            *(["-tt"] if terminal else []),
            "-i", str(self.image.ssh_key),
            "-p", str(self.ssh_port),
            "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=10",
            "-o", "BatchMode=yes",
            f"{user}@127.0.0.1",
            command,
        ]  # fmt: skip

    def boot_id(self) -> str:
        return self.output("cat /proc/sys/kernel/random/boot_id")

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _why(self) -> str:
        parts = []
        for log in (self.work / "qemu.log", self.console):
            if log.exists():
                parts.append(f"{log.name} ends:\n{log.read_text(errors='replace')[-1500:]}")
        return "\n".join(parts) or "no output from QEMU"
