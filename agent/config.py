"""The agent's settings: a TOML file (`--config`) with command-line flags on top, validated in one place."""

import os
import pwd
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent.errors import ConfigError
from agent.policy import Account, ScriptPolicy, TypePolicy
from shared.errors import TopicError
from shared.operations import OperationType
from shared.signing import Verifier, parse_public_key
from shared.topics import DEFAULT_PREFIX, Topics, validate_id
from shared.transport import BrokerUrl, TlsFiles, with_password


class CustomAction(BaseModel):
    """An operator-defined action: `command` is an argv whose `{name}` placeholders are filled from `parameters`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: list[str] = Field(min_length=1)
    timeout_s: float = Field(default=60.0, gt=0, le=86400)
    parameters: list[str] = Field(default_factory=list, description="The arguments the operator may pass.")


class RemoteConnectionSettings(BaseModel):
    """REMOTE_CONNECTION's bastion: a command can only open or close the reverse SSH tunnel to it, never name it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$", description="The bastion's host name or address.")
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$", description="The bastion account the tunnel logs in as.")
    identity_file: Path = Field(description="The private key ssh logs in with (readable by the agent only).")
    known_hosts_file: Path = Field(description="The bastion's host key: ssh refuses any other host key.")
    remote_port_range: tuple[int, int] = Field(
        description="[first, last]: the bastion port forwarded to this device's SSH is one of these, chosen by the "
        "device id, so the same device always gets the same port."
    )
    local_port: int = Field(default=22, ge=1, le=65535, description="The device's own SSH port the tunnel reaches.")

    @field_validator("identity_file", "known_hosts_file")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(f"{value} is not an absolute path")
        return value

    @field_validator("remote_port_range")
    @classmethod
    def _port_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        first, last = value
        if not 1024 <= first <= last <= 65535:
            raise ValueError("give [first, last] with 1024 <= first <= last <= 65535")
        return value


class AgentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    broker: list[str] = Field(
        min_length=1,
        description="mqtt[s]://[user[:pass]@]host:port, or a list of them: the nodes of one broker cluster, tried in "
        "this order and in turn while none answers. One login and one TLS setting serve them all.",
    )
    broker_password_file: Path | None = Field(
        default=None,
        description="A file (mode 0600) whose first line is the broker login's password, for a URL without one.",
    )
    device_id: str
    state_dir: Path
    topic_prefix: str = DEFAULT_PREFIX
    tags: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    time_zone: str | None = Field(
        default=None,
        description="IANA zone the host announces instead of its operating system's (which is announced when unset); "
        "UPDATE_DEVICE_CONFIG and SET_TIMEZONE override it.",
    )
    boot_id_path: Path = Path("/proc/sys/kernel/random/boot_id")
    reboot_grace_s: float = Field(default=300.0, gt=0)
    tool_timeout_s: float = Field(default=60.0, gt=0)
    allow_destructive: list[OperationType] = Field(
        default_factory=list,
        description="Destructive types (SHUT_DOWN, WIPE, REMOVE_AGENT, REMOVE_DEVICE) this device may run.",
    )
    custom_actions: dict[str, CustomAction] = Field(
        default_factory=dict, description="Named commands RUN_CUSTOM_ACTION may run; see docs/operations.md."
    )
    converge_actions: list[str] = Field(default_factory=list, description="Custom actions CONVERGE runs, in order.")
    provision_action: str | None = Field(default=None, description="The custom action converge_with_provision runs.")
    wipe_action: str | None = Field(default=None, description="The custom action WIPE runs (destructive).")
    remote_connection: RemoteConnectionSettings | None = Field(
        default=None, description="The bastion REMOTE_CONNECTION tunnels to; without it the type is not offered."
    )
    agent_unit: str = Field(
        default="tetherd.service",
        pattern=r"^[A-Za-z0-9:_.@-]+\.service$",
        description="The agent's own systemd unit: REMOVE_AGENT and REMOVE_DEVICE stop and disable it, REQUEST_DPCLOG "
        "sends its journal.",
    )

    @model_validator(mode="after")
    def _actions_exist(self) -> "AgentSettings":
        named = [*self.converge_actions, *(name for name in (self.provision_action, self.wipe_action) if name)]
        missing = sorted(set(named) - set(self.custom_actions))
        if missing:
            raise ValueError(f"no custom action named {', '.join(missing)} (define it under [custom_actions])")
        return self

    allowed_types: list[OperationType] | None = Field(
        default=None, description="The only operation types this device runs; unset: every type it supports."
    )
    denied_types: list[OperationType] = Field(default_factory=list, description="Types this device never runs.")
    run_scripts_as: str | None = Field(
        default=None, description="The user RUN_SHELL_SCRIPT and custom actions run as (the agent must be root)."
    )
    script_environment: dict[str, str] = Field(
        default_factory=dict, description="Variables scripts get on top of PATH, LANG, LC_*, TZ, TERM, HOME, USER."
    )
    script_max_timeout_s: float | None = Field(
        default=None, gt=0, description="The longest timeout_s a script may ask."
    )
    script_max_output_bytes: int | None = Field(default=None, ge=0, description="The largest output_limit allowed.")

    @field_validator("run_scripts_as")
    @classmethod
    def _known_user(cls, value: str | None) -> str | None:
        if value is not None:
            account = _account(value)
            if os.geteuid() != 0 and account.uid != os.geteuid():
                raise ValueError(f"running scripts as {value!r} needs the agent to run as root")
        return value

    @field_validator("script_environment")
    @classmethod
    def _variable_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not an environment variable name")
        return value

    @property
    def type_policy(self) -> TypePolicy:
        allowed = None if self.allowed_types is None else frozenset(self.allowed_types)
        return TypePolicy(allowed, frozenset(self.denied_types))

    @property
    def script_policy(self) -> ScriptPolicy:
        return ScriptPolicy(
            account=None if self.run_scripts_as is None else _account(self.run_scripts_as),
            extra_environment=self.script_environment,
            max_timeout_s=self.script_max_timeout_s,
            max_output_bytes=self.script_max_output_bytes,
        )

    tls_ca_file: Path | None = Field(
        default=None, description="CA bundle for an mqtts:// broker (default: the system's)."
    )
    tls_cert_file: Path | None = Field(
        default=None, description="Client certificate for mutual TLS (with tls_key_file)."
    )
    tls_key_file: Path | None = Field(default=None, description="The client certificate's private key.")

    @model_validator(mode="after")
    def _usable_broker(self) -> "AgentSettings":
        urls = self.broker_urls  # ValueError if the password is given twice, or its file cannot be read
        if len({url.tls for url in urls}) > 1:
            raise ValueError("the broker URLs mix mqtt:// and mqtts://: one TLS setting serves them all")
        if self.tls_files != TlsFiles() and not urls[0].tls:
            raise ValueError("tls_* settings need an mqtts:// broker URL")
        if urls[0].tls:
            self.tls_files.context()  # ValueError naming the file that cannot be used
        return self

    @property
    def tls_files(self) -> TlsFiles:
        return TlsFiles(self.tls_ca_file, self.tls_cert_file, self.tls_key_file)

    health_interval_s: float = Field(
        default=60.0, gt=0, le=86400, description="How often the online presence is refreshed with the agent's health."
    )
    trusted_keys: list[str] = Field(
        default_factory=list,
        description="Public keys (`tether keys public`) commands must be signed with; empty runs unsigned commands.",
    )

    @field_validator("trusted_keys")
    @classmethod
    def _public_keys(cls, value: list[str]) -> list[str]:
        for key in value:
            parse_public_key(key)
        return value

    @property
    def verifier(self) -> Verifier | None:
        """Checks every command and cancellation, or None when no key is trusted (commands are not verified)."""
        return Verifier(parse_public_key(key) for key in self.trusted_keys) if self.trusted_keys else None

    host: bool = Field(default=True, description="Run this host as the device `device_id`; false needs `android`.")
    android: bool = Field(default=False, description="Also run every Android device attached over adb as a device.")
    adb_path: str = Field(default="adb", min_length=1, description="The adb executable, by name on PATH or by path.")
    android_device_prefix: str = Field(
        default="android-",
        pattern=r"^([A-Za-z0-9][A-Za-z0-9._:-]{0,63})?$",
        description="Put before an Android device's serial to make its device id.",
    )
    android_poll_interval_s: float = Field(default=2.0, gt=0, le=3600, description="How often `adb devices` runs.")
    android_logins: Path | None = Field(
        default=None,
        description="A file (mode 0600) of `<device_id> <password>` lines: each Android device's own broker login, "
        "as a broker with per-device logins needs. Unset, they connect with the host's.",
    )

    @field_validator("broker", mode="before")
    @classmethod
    def _one_or_more(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value  # the single-URL form of older config files

    @field_validator("broker")
    @classmethod
    def _broker_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            BrokerUrl.parse(url)
        return value

    @field_validator("device_id")
    @classmethod
    def _device_id(cls, value: str) -> str:
        try:
            return validate_id(value, "device id")
        except TopicError as err:
            raise ValueError(str(err)) from err

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        try:
            Topics(value)
        except TopicError as err:
            raise ValueError(str(err)) from err
        return value

    @model_validator(mode="after")
    def _something_to_run(self) -> "AgentSettings":
        if not self.host and not self.android:
            raise ValueError("nothing to run: host is false (--no-host) and android is not enabled (--android)")
        return self

    def enrolment_paths(self, config_file: Path | None) -> list[Path]:
        """What enrols this agent with its controller, which REMOVE_DEVICE deletes: the config file (with the trusted
        keys), the broker password file, the client certificate and key, the Android logins and the state directory.

        The CA bundle stays: it is public, and may well be the system's own.
        """
        paths = (
            config_file,
            self.broker_password_file,
            self.tls_cert_file,
            self.tls_key_file,
            self.android_logins,
            self.state_dir,
        )
        return [path.absolute() for path in paths if path is not None]

    @property
    def broker_urls(self) -> list[BrokerUrl]:
        """The broker's nodes and its login, the password from the URL, `broker_password_file` or
        $TETHER_BROKER_PASSWORD."""
        return [with_password(BrokerUrl.parse(url), self.broker_password_file, os.environ) for url in self.broker]

    @property
    def broker_url(self) -> BrokerUrl:
        """The first of `broker_urls`: whose login names the host's device."""
        return self.broker_urls[0]


def _account(name: str) -> Account:
    try:
        entry = pwd.getpwnam(name)
    except KeyError as err:
        raise ValueError(f"no user named {name!r} on this system") from err
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def load_settings(config_file: Path | None, overrides: dict[str, Any]) -> AgentSettings:
    """Merge the TOML file and the flags that were given; raise ConfigError with file, key and problem in one line."""
    values: dict[str, Any] = {}
    source = str(config_file) if config_file else "command line"
    if config_file is not None:
        try:
            values = tomllib.loads(config_file.read_text())
        except OSError as err:
            raise ConfigError(f"{config_file}: cannot read: {err.strerror}") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{config_file}: invalid TOML: {err}") from err
    values.update({key: value for key, value in overrides.items() if value not in (None, ())})
    try:
        return AgentSettings.model_validate(values)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "settings"
        message = "missing (set it in the config file or with its flag)" if first["type"] == "missing" else first["msg"]
        raise ConfigError(f"{source}: {key}: {message}") from err
