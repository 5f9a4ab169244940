"""Arguments of the package, app, certificate, content and update operation types."""

import binascii
import re
from enum import StrEnum
from typing import Annotated, Self

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from shared.arguments.network import switch_word

PACKAGE_NAME = r"^[A-Za-z0-9][A-Za-z0-9+._:@-]{0,254}$"
"""Debian, RPM, Alpine and Android package names alike; never anything a shell or option parser would read."""
SHA256 = r"^[0-9a-fA-F]{64}$"


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpFile(_Arguments):
    """A file fetched over HTTP(S), checked against its SHA-256 before use when one is given."""

    url: AnyHttpUrl
    sha256: str | None = Field(default=None, pattern=SHA256)
    size_bytes: int | None = Field(default=None, gt=0)


class Download(HttpFile):
    """A file fetched over HTTP(S) and checked against its SHA-256 before use."""

    sha256: str = Field(pattern=SHA256)


class SoftwareType(StrEnum):
    """Which package manager a package is for (Cumulocity's `softwareType`); none means the device's default one."""

    APT = "apt"
    DEBIAN = "debian"
    """What Cumulocity and thin-edge.io call apt's packages."""
    DNF = "dnf"
    ZYPPER = "zypper"
    RPM = "rpm"
    """dnf or zypper, whichever the device has."""
    APK = "apk"
    """Alpine's apk on Linux; an Android app on Android."""


class PackageSpec(_Arguments):
    """A package from the repositories, or with `url` from that file, optionally pinned to a version."""

    name: str = Field(pattern=PACKAGE_NAME)
    version: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9+.~:_-]{0,127}$")
    software_type: SoftwareType | None = None
    url: AnyHttpUrl | None = None
    """The package file to install; it must be the package `name` (at `version`, if given) or nothing is installed."""
    sha256: str | None = Field(default=None, pattern=SHA256)

    @model_validator(mode="after")
    def _checked_file(self) -> Self:
        if self.url is None:
            if self.sha256 is not None:
                raise ValueError("sha256 checks the file at url: give url too")
        # A package runs as root: over plain HTTP anyone on the path could swap it, so only a checksum makes it safe.
        elif self.url.scheme != "https" and self.sha256 is None:
            raise ValueError("an http url needs a sha256 to check the file against; use https or give sha256")
        return self

    def file(self) -> HttpFile | None:
        """The package file to fetch, if the package comes from one."""
        return None if self.url is None else HttpFile(url=self.url, sha256=self.sha256)


class InstallArguments(_Arguments):
    """INSTALL and INSTALL_APP by name: one or more packages from the repositories or their `url`."""

    packages: list[PackageSpec] = Field(min_length=1, max_length=100)


class UninstallArguments(_Arguments):
    """UNINSTALL and UNINSTALL_APP, through the package manager of `software_type` (the device's default if none)."""

    packages: list[Annotated[str, Field(pattern=PACKAGE_NAME)]] = Field(min_length=1, max_length=100)
    software_type: SoftwareType | None = None


class AppFileArguments(_Arguments):
    """INSTALL_APP from a file (an .apk on Android, a .deb or .rpm on Linux)."""

    file: Download


class InstallAppArguments(_Arguments):
    """INSTALL_APP: either `packages` from the package manager (as INSTALL) or one downloadable `file`, not both."""

    packages: list[PackageSpec] | None = Field(default=None, min_length=1, max_length=100)
    file: Download | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.packages is None) == (self.file is None):
            raise ValueError("give exactly one of 'packages' or 'file'")
        return self


class SimpleInstallArguments(_Arguments):
    """SIMPLE_INSTALL: one downloadable app or package file, installed as INSTALL_APP installs a `file`."""

    file: Download


class AppState(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"
    HIDDEN = "hidden"
    SUSPENDED = "suspended"


class AppPackageArguments(_Arguments):
    """CLEAR_APP_DATA."""

    package: str = Field(pattern=PACKAGE_NAME)


class AppPermissionArguments(_Arguments):
    """SET_APP_PERMISSION."""

    package: str = Field(pattern=PACKAGE_NAME)
    permission: str = Field(pattern=r"^[A-Za-z0-9_.]{1,200}$")
    granted: bool


class AppStateArguments(_Arguments):
    """SET_APP_STATE."""

    package: str = Field(pattern=PACKAGE_NAME)
    state: AppState


class AppNotificationsArguments(_Arguments):
    """SET_APP_NOTIFICATIONS: whether the app may post notifications."""

    package: str = Field(pattern=PACKAGE_NAME)
    enabled: StrictBool
    _words = field_validator("enabled", mode="before")(switch_word)


_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s*([A-Za-z0-9+/=\s]*?)-----END ([A-Z0-9 ]+)-----")


def certificate_blocks(text: str) -> list[str]:
    """The PEM CERTIFICATE blocks that make up `text`, normalised; ValueError if it holds anything else."""
    if "PRIVATE KEY" in text:
        raise ValueError("contains a private key; only CA certificates may be installed")
    matches = list(_PEM_BLOCK.finditer(text))
    if not matches:
        raise ValueError("must hold at least one -----BEGIN CERTIFICATE----- block")
    blocks: list[str] = []
    position = 0
    for match in matches:
        if text[position : match.start()].strip():
            raise ValueError("has text outside its -----BEGIN CERTIFICATE----- blocks")
        label, body, end_label = match.groups()
        if label != "CERTIFICATE" or end_label != "CERTIFICATE":
            raise ValueError(f"has a {label} block; only CERTIFICATE blocks may be installed")
        try:
            der = binascii.a2b_base64("".join(body.split()), strict_mode=True)
        except binascii.Error as err:
            raise ValueError(f"certificate {len(blocks) + 1} is not valid base64") from err
        if not der.startswith(b"\x30"):  # every X.509 certificate is a DER SEQUENCE
            raise ValueError(f"certificate {len(blocks) + 1} is not an X.509 certificate")
        lines = [body_line for body_line in body.split() if body_line]
        blocks.append("\n".join(["-----BEGIN CERTIFICATE-----", *lines, "-----END CERTIFICATE-----"]))
        position = match.end()
    if text[position:].strip():
        raise ValueError("has text outside its -----BEGIN CERTIFICATE----- blocks")
    return blocks


class CertificateArguments(_Arguments):
    """INSTALL_CERTIFICATE: one or more PEM CA certificates (and nothing else) stored under `name`."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    certificate: str = Field(min_length=1, max_length=64 * 1024)

    @field_validator("certificate")
    @classmethod
    def _only_certificates(cls, value: str) -> str:
        certificate_blocks(value)
        return value

    def pem(self) -> bytes:
        """The certificates as stored: normalised PEM blocks, one newline after each."""
        return "".join(block + "\n" for block in certificate_blocks(self.certificate)).encode()


class CertificateNameArguments(_Arguments):
    """UNINSTALL_CERTIFICATE."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class SyncContentArguments(_Arguments):
    """SYNC_CONTENT: fetch a file into the agent's content directory under `path`."""

    file: Download
    path: str = Field(pattern=r"^[A-Za-z0-9._-][A-Za-z0-9._/-]{0,254}$")

    @field_validator("path")
    @classmethod
    def _stays_inside(cls, value: str) -> str:
        if any(part in ("", ".", "..") for part in value.split("/")):
            raise ValueError("must be a relative path without empty, '.' or '..' parts")
        return value


class OtaArguments(_Arguments):
    """INSTALL_OTA: fetch an update bundle and install it."""

    file: Download
