"""Linux CA certificates: a file in the system's anchor directory, then the distribution's trust-store update."""

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import HandlerError, ToolNotFound
from agent.files import write_atomically
from agent.platforms.linux_tools import LinuxTools

DEBIAN_CA_DIR = Path("/usr/local/share/ca-certificates")
RHEL_CA_DIR = Path("/etc/pki/ca-trust/source/anchors")
PREFIX = "tether-"
"""Every file the agent stores starts so, keeping it apart from certificates installed by other means."""


@dataclass(frozen=True, slots=True)
class TrustStore:
    update: tuple[str, ...]
    directory: Path
    suffix: str
    """update-ca-certificates reads only `.crt` files."""

    def path(self, name: str) -> Path:
        return self.directory / f"{PREFIX}{name}{self.suffix}"


class LinuxCertificates(LinuxTools):
    """Certificates on Debian-like (update-ca-certificates) and RHEL-like (update-ca-trust) systems."""

    def __init__(
        self, *args: Any, debian_ca_dir: Path = DEBIAN_CA_DIR, rhel_ca_dir: Path = RHEL_CA_DIR, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.debian_ca_dir = debian_ca_dir
        self.rhel_ca_dir = rhel_ca_dir

    def trust_store(self) -> TrustStore:
        """The trust store whose update tool is on PATH now, Debian's first."""
        if shutil.which("update-ca-certificates"):
            return TrustStore(("update-ca-certificates",), self.debian_ca_dir, ".crt")
        if shutil.which("update-ca-trust"):
            return TrustStore(("update-ca-trust", "extract"), self.rhel_ca_dir, ".pem")
        raise ToolNotFound("no CA trust store tool (update-ca-certificates, update-ca-trust) found on PATH")

    async def install_certificate(self, name: str, pem: bytes) -> Path:
        store = self.trust_store()
        path = store.path(name)
        previous = await asyncio.to_thread(write_atomically, path, pem)
        try:
            await self.tool(*store.update)
        except BaseException:
            # Put back what was there, so the anchors never disagree with the trust store a failed update left.
            # Synchronously: one small file, and it must happen even when the command is being cancelled.
            _restore(path, previous)
            raise
        return path

    async def uninstall_certificate(self, name: str) -> None:
        store = self.trust_store()
        path = store.path(name)
        try:
            await asyncio.to_thread(path.unlink)
        except FileNotFoundError as err:
            raise HandlerError(f"no certificate named {name!r} is installed ({path} does not exist)") from err
        except OSError as err:
            raise HandlerError(f"cannot remove {path}: {err.strerror or err}") from err
        await self.tool(*store.update)


def _restore(path: Path, previous: bytes | None) -> None:
    try:
        if previous is None:
            path.unlink(missing_ok=True)
        else:
            write_atomically(path, previous)
    except (OSError, HandlerError):
        pass  # the update's own error is the one to report
