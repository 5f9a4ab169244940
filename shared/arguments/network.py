"""Arguments of the network operation types."""

from enum import StrEnum
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

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


class WifiNetwork(BaseModel):
    """ADD_WIFI_AP."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ssid: str = Field(min_length=1, max_length=32)
    security: WifiSecurity = WifiSecurity.WPA_PSK
    password: str | None = Field(default=None, min_length=8, max_length=63)
    hidden: bool = False
    autoconnect: bool = True

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


class SavedWifiOnly(BaseModel):
    """USE_ONLY_SAVED_WIFI_AP: when on, the device joins no network that is not saved on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: StrictBool = True
    _words = field_validator("enabled", mode="before")(switch_word)


class BluetoothArguments(BaseModel):
    """SET_BLUETOOTH_STATE."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bluetooth_state: StrictBool
    _words = field_validator("bluetooth_state", mode="before")(switch_word)


class EthernetSettings(BaseModel):
    """SET_ETHERNET_SETTINGS: DHCP, or a static address when `address` is given."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interface: str = Field(default="eth0", pattern=r"^[A-Za-z0-9._-]{1,15}$")
    enabled: bool = True
    dhcp: bool = True
    address: IPv4Interface | IPv6Interface | None = None
    gateway: IPv4Address | IPv6Address | None = None
    dns: list[IPv4Address | IPv6Address] = Field(default_factory=list, max_length=8)

    @model_validator(mode="after")
    def _static_needs_address(self) -> "EthernetSettings":
        if not self.dhcp and self.address is None:
            raise ValueError("dhcp false needs an address such as 192.0.2.10/24")
        if self.dhcp and self.address is not None:
            raise ValueError("an address is only used with dhcp false")
        return self


class StaticIpSettings(BaseModel):
    """SET_STATIC_IP."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interface: str = Field(default="eth0", pattern=r"^[A-Za-z0-9._-]{1,15}$")
    address: IPv4Interface | IPv6Interface
    gateway: IPv4Address | IPv6Address | None = None
    dns: list[IPv4Address | IPv6Address] = Field(default_factory=list, max_length=8)
