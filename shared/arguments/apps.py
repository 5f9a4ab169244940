"""Arguments of the package, app, certificate, content and update operation types."""

from enum import StrEnum

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

PACKAGE_NAME = r"^[A-Za-z0-9][A-Za-z0-9+._:@-]{0,254}$"
"""Debian, RPM, Alpine and Android package names alike; never anything a shell or option parser would read."""


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PackageSpec(_Arguments):
    name: str = Field(pattern=PACKAGE_NAME)
    version: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9+.~:_-]{0,127}$")


class InstallArguments(_Arguments):
    """INSTALL and INSTALL_APP from the package manager: one or more packages, optionally pinned to a version."""

    packages: list[PackageSpec] = Field(min_length=1, max_length=100)


class UninstallArguments(_Arguments):
    """UNINSTALL and UNINSTALL_APP."""

    packages: list[str] = Field(min_length=1, max_length=100)


class Download(_Arguments):
    """A file fetched over HTTP(S) and checked against its SHA-256 before use."""

    url: AnyHttpUrl
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    size_bytes: int | None = Field(default=None, gt=0)


class AppFileArguments(_Arguments):
    """INSTALL_APP from a file (an .apk on Android, a .deb or .rpm on Linux)."""

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


class CertificateArguments(_Arguments):
    """INSTALL_CERTIFICATE: a PEM CA certificate stored under `name`."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    certificate: str = Field(min_length=1, max_length=64 * 1024)


class CertificateNameArguments(_Arguments):
    """UNINSTALL_CERTIFICATE."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class SyncContentArguments(_Arguments):
    """SYNC_CONTENT: fetch a file into the agent's content directory under `path`."""

    file: Download
    path: str = Field(pattern=r"^[A-Za-z0-9._-][A-Za-z0-9._/-]{0,254}$")


class OtaArguments(_Arguments):
    """INSTALL_OTA: fetch an update bundle and install it."""

    file: Download
