"""The VM tier's Debian image: built once by build-image.sh, cached outside the repository under a key.

The key is a hash of build-image.sh and of tetherd's dependencies in pyproject.toml, so a change to either builds a
new image; anything else (the agent's own code) is installed into the image's environment by each run.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = Path(__file__).with_name("build-image.sh")
BUILD_TOOLS = ("debootstrap", "mkfs.ext4", "qemu-img", "ssh-keygen", "dpkg-scanpackages", "apt-get", "chroot")


@dataclass(frozen=True)
class Image:
    directory: Path

    @property
    def root(self) -> Path:
        return self.directory / "root.qcow2"

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    @property
    def ssh_key(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def repository(self) -> Path:
        return self.directory / "repo"


def agent_dependencies() -> list[str]:
    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())
    return sorted(project["project"]["dependencies"])


def cache_key() -> str:
    digest = hashlib.sha256(BUILD_SCRIPT.read_bytes())
    digest.update("\n".join(agent_dependencies()).encode())
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tether-vm"


class ImageBuildError(Exception):
    """The image could not be built: the message says which step and why."""


def ensure_image() -> Image:
    """The cached image for the current key, building it (about two minutes) when the cache lacks it."""
    image = Image(cache_root() / cache_key())
    if (image.directory / "complete").exists():
        return image
    missing = [tool for tool in BUILD_TOOLS if shutil.which(tool) is None]
    if missing:
        raise ImageBuildError(f"building the VM image needs {', '.join(missing)} (apt-get install debootstrap ...)")
    if os.geteuid() != 0:
        raise ImageBuildError("building the VM image needs root (debootstrap and chroot)")
    scratch = image.directory.with_name(image.directory.name + ".building")
    shutil.rmtree(scratch, ignore_errors=True)
    wheels = scratch / "wheels"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary=:all:",
            "--dest",
            str(wheels),
            *agent_dependencies(),
        ],
        "downloading tetherd's dependencies",
    )
    _run(["bash", str(BUILD_SCRIPT), str(scratch), str(wheels)], "build-image.sh")
    shutil.rmtree(wheels)
    (scratch / "complete").touch()
    shutil.rmtree(image.directory, ignore_errors=True)
    scratch.rename(image.directory)
    _forget_other_keys(keep=image.directory)
    return image


def _run(argv: list[str], step: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ImageBuildError(f"{step} failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[-2000:]}")


def _forget_other_keys(keep: Path) -> None:
    """Images of older keys are a gigabyte each, and nothing reads them again."""
    for other in cache_root().iterdir():
        if other != keep:
            shutil.rmtree(other, ignore_errors=True)


if __name__ == "__main__":
    print(ensure_image().directory)
