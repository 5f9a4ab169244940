"""Arguments of the network operation types."""

from enum import StrEnum
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_address, ip_interface
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, field_validator, model_validator

_WORDS = {"on": True, "enable": True, "true": True, "off": False, "disable": False, "false": False}


def switch_word(value: Any) -> Any:
    """Accept on/off, enable/disable and true/false, in any case, where a boolean is expected."""
    if isinstance(value, str):
        try:
            return _WORDS[value.strip().lower()]
        except KeyError:
            raise ValueError(f"expected true/false, 'on'/'off' or 'enable'/'disable', got {value!r}") from None
    return value


class WifiArguments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    wifi_state: StrictBool
    """true or false; the words on/off and enable/disable are accepted in any case."""

    _words = field_validator("wifi_state", mode="before")(switch_word)


class WifiSecurity(StrEnum):
    OPEN = "open"
    WPA_PSK = "wpa-psk"
    SAE = "sae"


def ssid_bytes(value: str) -> str:
    """An SSID is at most 32 bytes on the air, whatever its number of characters."""
    if len(value.encode()) > 32:
        raise ValueError("an SSID is at most 32 bytes in UTF-8")
    return value


class WifiNetwork(BaseModel):
    """ADD_WIFI_AP."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ssid: str = Field(min_length=1, max_length=32)
    security: WifiSecurity = WifiSecurity.WPA_PSK
    # repr=False keeps the password out of logged models; validation messages never quote it.
    password: str | None = Field(default=None, min_length=8, max_length=63, repr=False)
    hidden: bool = False
    autoconnect: bool = True

    _ssid_bytes = field_validator("ssid")(ssid_bytes)

    @field_validator("password")
    @classmethod
    def _printable_ascii(cls, value: str | None) -> str | None:
        # IEEE 802.11i: a WPA passphrase is 8 to 63 printable ASCII characters.
        if value is not None and not all(" " <= char <= "~" for char in value):
            raise ValueError("a Wi-Fi password is printable ASCII only")
        return value

    @model_validator(mode="after")
    def _password_fits_security(self) -> "WifiNetwork":
        if self.security is WifiSecurity.OPEN and self.password is not None:
            raise ValueError("an open network takes no password")
        if self.security is not WifiSecurity.OPEN and self.password is None:
            raise ValueError(f"a {self.security} network needs a password")
        return self


class WifiSsid(BaseModel):
    """REMOVE_WIFI_AP."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ssid: str = Field(min_length=1, max_length=32)

    _ssid_bytes = field_validator("ssid")(ssid_bytes)


class SavedWifiOnly(BaseModel):
    """USE_ONLY_SAVED_WIFI_AP: when on, only root may save networks, so the device joins only those already saved."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: StrictBool = True
    _words = field_validator("enabled", mode="before")(switch_word)


class BluetoothArguments(BaseModel):
    """SET_BLUETOOTH_STATE."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bluetooth_state: StrictBool
    _words = field_validator("bluetooth_state", mode="before")(switch_word)


def _parse_address(value: Any) -> Any:
    if isinstance(value, IPv4Address | IPv6Address):
        return value
    if not isinstance(value, str):
        raise ValueError("expected an IP address as a string")
    try:
        return ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None


def _parse_interface(value: Any) -> Any:
    if isinstance(value, IPv4Interface | IPv6Interface):
        return value
    if not isinstance(value, str):
        raise ValueError("expected an address with a prefix length as a string, such as 192.0.2.10/24")
    if "/" not in value:
        raise ValueError(f"{value!r} needs a prefix length, such as 192.0.2.10/24")
    try:
        return ip_interface(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address with a prefix length") from None


# One validator for both IP versions, so an error names the field rather than each member of the union.
IpAddress = Annotated[IPv4Address | IPv6Address, BeforeValidator(_parse_address)]
IpInterface = Annotated[IPv4Interface | IPv6Interface, BeforeValidator(_parse_interface)]


def gateway_matches(address: IPv4Interface | IPv6Interface | None, gateway: IPv4Address | IPv6Address | None) -> None:
    """A gateway must be of the address's IP version; ValueError otherwise."""
    if address is not None and gateway is not None and address.version != gateway.version:
        raise ValueError(f"gateway {gateway} is not an IPv{address.version} address like {address}")


class EthernetSettings(BaseModel):
    """SET_ETHERNET_SETTINGS: DHCP, or a static address when `address` is given."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interface: str = Field(default="eth0", pattern=r"^[A-Za-z0-9._][A-Za-z0-9._-]{0,14}$")
    enabled: bool = True
    dhcp: bool = True
    address: IpInterface | None = None
    gateway: IpAddress | None = None
    dns: list[IpAddress] = Field(default_factory=list, max_length=8)

    @model_validator(mode="after")
    def _static_needs_address(self) -> "EthernetSettings":
        if not self.enabled and (self.address is not None or self.gateway is not None or self.dns):
            raise ValueError("enabled false takes no address, gateway or dns")
        if not self.dhcp and self.address is None:
            raise ValueError("dhcp false needs an address such as 192.0.2.10/24")
        if self.dhcp and self.address is not None:
            raise ValueError("an address is only used with dhcp false")
        if self.dhcp and self.gateway is not None:
            raise ValueError("a gateway is only used with dhcp false")
        gateway_matches(self.address, self.gateway)
        return self


class StaticIpSettings(BaseModel):
    """SET_STATIC_IP."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interface: str = Field(default="eth0", pattern=r"^[A-Za-z0-9._][A-Za-z0-9._-]{0,14}$")
    address: IpInterface
    gateway: IpAddress | None = None
    dns: list[IpAddress] = Field(default_factory=list, max_length=8)

    @model_validator(mode="after")
    def _gateway_matches(self) -> "StaticIpSettings":
        gateway_matches(self.address, self.gateway)
        return self


class ApnAuth(StrEnum):
    """How the modem authenticates to the carrier's network; left out, the modem picks."""

    PAP = "pap"
    CHAP = "chap"


def argument_word(value: str | None) -> str | None:
    """A value that lands in a tool's argument list: printable ASCII, never read as an option; never quoted back."""
    if value is None:
        return None
    if not all(" " <= char <= "~" for char in value):
        raise ValueError("must be printable ASCII (no newline or other control character)")
    if value.startswith("-") or value != value.strip():
        raise ValueError("must not start with '-' or start or end with a space")
    return value


class ApnOverride(BaseModel):
    """ADD_OVERRIDE_APN: a mobile-data profile that makes the modem use `apn`, under the profile name `name`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    # 3GPP TS 23.003 section 9.1: labels of letters, digits and hyphens, separated by dots, 100 octets at most.
    apn: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    username: str | None = Field(default=None, min_length=1, max_length=64)
    # repr=False keeps the password out of logged models; validation messages never quote it.
    password: str | None = Field(default=None, min_length=1, max_length=64, repr=False)
    auth: ApnAuth | None = None

    _words = field_validator("name", "username", "password")(argument_word)
