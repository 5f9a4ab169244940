"""The `tether` command: `tether serve` runs the controller, `tether keys create` makes API keys, and `tether op` and
`tether devices` drive a running controller."""

import asyncio
import contextlib
import ipaddress
import logging
import os
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from agent.command_line import (
    EXIT_ERROR,
    EXIT_USAGE,
    OneLineGroup,
    describe,
    in_an_existing_directory,
    log_format_option,
    not_blank,
)
from controller.database_cli import DatabaseChoice, db_group, db_option, open_store
from controller.errors import ControllerError, StartupError
from controller.keys import Role
from controller.remote.commands import devices, op
from shared.logs import LogFormat, configure
from shared.schedule import valid_zone
from shared.transport import ARGV_PASSWORD_WARNING, BrokerUrl, TlsFiles, with_password

if TYPE_CHECKING:
    from controller.broker import ListenAddress, ServerTls

log = logging.getLogger(__name__)


def _listen(_: click.Context, param: click.Parameter, value: str) -> "ListenAddress":
    # The server's modules (FastAPI, uvicorn, amqtt) load only for `tether serve`: `tether op` starts in a blink.
    from controller.broker import ListenAddress

    try:
        return ListenAddress.parse(value)
    except ValueError as err:
        raise click.BadParameter(str(err), param=param) from err


def _one_broker(_: click.Context, param: click.Parameter, value: str) -> BrokerUrl:
    try:
        return BrokerUrl.parse(value)
    except ValueError as err:
        raise click.BadParameter(str(err), param=param) from err


def _brokers(_: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[BrokerUrl, ...]:
    try:
        urls = tuple(BrokerUrl.parse(url) for url in value)
    except ValueError as err:
        raise click.BadParameter(str(err), param=param) from err
    if len({url.tls for url in urls}) > 1:
        raise click.BadParameter("mixes mqtt:// and mqtts://: one TLS setting serves every node", param=param)
    return urls


class TetherGroup(OneLineGroup):
    expected = ((OSError, EXIT_ERROR), (ControllerError, EXIT_ERROR))


@click.group(name="tether", cls=TetherGroup)
def main() -> None:
    """Tether: device operations over MQTT. Every error is one line on stderr (docs/cli.md has the exit codes)."""
    # Outside systemd (whose unit sets UMask=0077) too, the database, keys, artifacts and broker files are private.
    os.umask(0o077)


main.add_command(op)
main.add_command(db_group)
main.add_command(devices)


@main.command(name="serve")
@click.option("--http-listen", default="127.0.0.1:8080", show_default=True, callback=_listen, help="REST API address.")
@click.option(
    "--mqtt-listen", default="127.0.0.1:1883", show_default=True, callback=_listen, help="Embedded broker address."
)
@click.option(
    "--broker",
    multiple=True,
    callback=_brokers,
    help="Use this broker (mqtt[s]://[user@]host:port) and embed none. Repeat it for each node of a broker cluster: "
    "they are tried in turn, with one login and one TLS setting.",
)
@click.option(
    "--broker-password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file whose first line is the --broker login's password (default: $TETHER_BROKER_PASSWORD).",
)
@click.option("--broker-ca", type=click.Path(dir_okay=False, path_type=Path), help="CA bundle for an mqtts:// broker.")
@click.option("--broker-cert", type=click.Path(dir_okay=False, path_type=Path), help="Client certificate (mutual TLS).")
@click.option("--broker-key", type=click.Path(dir_okay=False, path_type=Path), help="The client certificate's key.")
@click.option(
    "--embedded-broker",
    type=click.Choice(["amqtt", "mosquitto"]),
    help="Which broker to embed when --broker is not given: a managed private Mosquitto (the default when mosquitto "
    "is installed), or amqtt in-process (the default otherwise; for up to about 2,000 devices).",
)
@click.option(
    "--mqtt-tls-cert", type=click.Path(dir_okay=False, path_type=Path), help="The embedded broker serves TLS."
)
@click.option("--mqtt-tls-key", type=click.Path(dir_okay=False, path_type=Path), help="The key of --mqtt-tls-cert.")
@click.option(
    "--broker-auth",
    type=click.Path(file_okay=False, path_type=Path),
    help="The embedded broker admits only the logins `tether broker acl --dir DIR` wrote, under its rules.",
)
@click.option(
    "--allow-anonymous-broker",
    is_flag=True,
    help="Embed a broker without --broker-auth on an address beyond loopback: anyone who reaches it can run scripts.",
)
@click.option("--topic-prefix", default="tether/v1", show_default=True, help="Root of every Tether topic.")
@click.option(
    "--public-url",
    help="Base URL clients and devices reach the controller at: artifact uploads and the API's links are built on it "
    "(default: http://<--http-listen>).",
)
@click.option(
    "--max-artifact-mb", type=click.IntRange(1, 10240), default=100, show_default=True, help="Largest artifact upload."
)
@click.option(
    "--max-body-kb",
    type=click.IntRange(1, 1024 * 1024),
    default=1024,
    show_default=True,
    help="Largest JSON request body, in KiB; larger ones get 413 (artifact uploads have --max-artifact-mb).",
)
@db_option
@click.option("--log-level", type=click.Choice(["debug", "info", "warning"]), default="info", show_default=True)
@log_format_option
def serve_command(log_level: str, log_format: LogFormat, **options: Any) -> None:
    """Run the controller: REST API, store, dispatcher and (by default) an embedded MQTT broker."""
    from controller.service import ServeSettings, serve

    configure(log_level, log_format)
    tls = TlsFiles(options["broker_ca"], options["broker_cert"], options["broker_key"])
    nodes = [_broker_login(url, options["broker_password_file"]) for url in options["broker"]]
    broker_url = nodes[0] if nodes else _broker_login(None, options["broker_password_file"])
    served = _served_tls(options["mqtt_tls_cert"], options["mqtt_tls_key"], broker_url)
    if tls != TlsFiles():
        if (broker_url is None or not broker_url.tls) and served is None:
            raise click.BadParameter(
                "needs an mqtts:// --broker, or an embedded broker serving TLS (--mqtt-tls-cert)",
                param_hint="--broker-ca/--broker-cert/--broker-key",
            )
        try:
            tls.context()
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--broker-ca/--broker-cert/--broker-key") from err
    if options["broker_auth"] is not None and broker_url is not None:
        raise click.BadParameter("is for the embedded broker; an external one has its own", param_hint="--broker-auth")
    if broker_url is None and options["broker_auth"] is None:
        _refuse_or_warn_anonymous(options["mqtt_listen"], allowed=options["allow_anonymous_broker"])
    settings = ServeSettings(
        embedded_broker_tls=served,
        embedded_broker_auth=options["broker_auth"],
        broker_tls=tls,
        http_listen=options["http_listen"],
        mqtt_listen=options["mqtt_listen"],
        db=options["db"],
        external_broker=broker_url,
        broker_failover=tuple(node for node in nodes[1:] if node is not None),
        embedded_broker=options["embedded_broker"],
        topic_prefix=options["topic_prefix"],
        public_url=options["public_url"],
        max_artifact_bytes=options["max_artifact_mb"] * 1024 * 1024,
        max_body_bytes=options["max_body_kb"] * 1024,
    )
    asyncio.run(serve(settings))


@main.command(name="simulate")
@click.option("--devices", type=click.IntRange(1, 1_000_000), required=True, help="How many devices to simulate.")
@click.option("--broker", default="mqtt://127.0.0.1:1883", show_default=True, callback=_one_broker, help="The broker.")
@click.option("--id-prefix", default="sim-", show_default=True, help="Device ids are this and a number.")
@click.option("--tag", "tags", multiple=True, help="A tag every device announces (repeatable).")
@click.option("--latency-ms", type=click.FloatRange(0), default=100.0, show_default=True, help="Execution time.")
@click.option("--failure-share", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="Share failing.")
@click.option("--seed", type=int, default=0, show_default=True, help="Which commands fail, for a failure share.")
@click.option("--connections", type=click.IntRange(1, 1000), default=4, show_default=True, help="Shared connections.")
@click.option("--connection-per-device", is_flag=True, help="One MQTT connection per device, its last will set.")
@click.option("--topic-prefix", default="tether/v1", show_default=True, help="Root of every Tether topic.")
@click.option("--duration", type=click.FloatRange(0, min_open=True), help="Stop after this many seconds.")
@click.option(
    "--stats-file",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=in_an_existing_directory,
    help="Write the counts here at exit (its directory must exist).",
)
def simulate_command(**options: Any) -> None:
    """Simulate a fleet of devices that speak the real device contract, until interrupted."""
    from controller.simulator import FleetSpec, run_simulation

    spec = FleetSpec(
        devices=options["devices"],
        id_prefix=options["id_prefix"],
        tags=tuple(options["tags"]),
        latency_s=options["latency_ms"] / 1000,
        failure_share=options["failure_share"],
        seed=options["seed"],
        connections=options["connections"],
        connection_per_device=options["connection_per_device"],
    )
    configure("info")
    run_simulation(options["broker"], spec, options["topic_prefix"], options["duration"], options["stats_file"])


@main.group()
def keys() -> None:
    """Manage API keys, and the key pair commands are signed with."""


@keys.command(name="create")
@click.option("--name", required=True, callback=not_blank, help="Who the key is for; shown as created_by.")
@click.option(
    "--role", type=click.Choice([r.value for r in Role]), required=True, help="admin may create; read may only read."
)
@click.option(
    "--time-zone",
    callback=lambda _ctx, _param, value: _iana_zone(value),
    help="The holder's IANA zone, e.g. Europe/Berlin: console-time schedules the key creates are read in it.",
)
@db_option
def create_key(name: str, role: str, time_zone: str | None, db: DatabaseChoice) -> None:
    """Create an API key and print it on stdout (it is stored hashed and cannot be shown again)."""

    store = open_store(db)
    try:
        _, plaintext = store.keys.create(name, role, time_zone)
    finally:
        store.close()
    click.echo(plaintext)


def _iana_zone(value: str | None) -> str | None:
    if value is not None and not valid_zone(value):
        raise click.BadParameter(f"{value!r} is not an IANA time zone, e.g. Europe/Berlin")
    return value


@keys.command(name="public")
@click.option("--all", "show_all", is_flag=True, help="Every signing key, with its id and which one is active.")
@db_option
def public_key(show_all: bool, db: DatabaseChoice) -> None:
    """Print the public key agents verify commands with (their `trusted_keys`); made on first use."""
    from controller.signing_keys import SigningKeys

    signing = SigningKeys.in_state_dir(db.state_dir)
    signing.signer()
    for key in signing.listing():
        if show_all:
            click.echo(f"{key.key_id}  {key.public_key}{'  (active)' if key.active else ''}")
        elif key.active:
            click.echo(key.public_key)


@keys.command(name="rotate")
@db_option
def rotate_key(db: DatabaseChoice) -> None:
    """Make the next signing key, not yet active, record it in the database as the fleet's, and print its public
    key: add it to every agent's `trusted_keys`, then run `tether keys activate` (docs/security.md)."""
    from controller.fleet_keys import introduce
    from controller.signing_keys import SigningKeys

    signing = SigningKeys.in_state_dir(db.state_dir)
    store = open_store(db)  # first: a database that cannot be opened leaves no key made
    try:
        signing.signer()  # the first key, if there is none yet, stays the active one
        created = signing.create()
        introduce(signing, store, created)
    finally:
        store.close()
    click.echo(signing.public_key(created))
    click.echo(f"created signing key {created}; activate it with: tether keys activate {created}", err=True)


@keys.command(name="activate")
@click.argument("key_id")
@db_option
def activate_key(key_id: str, db: DatabaseChoice) -> None:
    """Sign new commands with KEY_ID from the next start of `tether serve`; KEY_ID is recorded in the database as
    the fleet's if it was not (a key made before keys were recorded)."""
    from controller.fleet_keys import introduce
    from controller.signing_keys import SigningKeys

    signing = SigningKeys.in_state_dir(db.state_dir)
    signing.public_key(key_id)  # SigningKeyError for a key not held here, before the database is opened
    store = open_store(db)
    try:
        recorded = introduce(signing, store, key_id)
        where = store.database.shown
    finally:
        store.close()
    signing.activate(key_id)
    if recorded:
        click.echo(
            f"recorded signing key {key_id} as the fleet's in {where}: every agent's trusted_keys must hold its "
            "public key (tether keys public --all)",
            err=True,
        )


@main.group()
def broker() -> None:
    """Secure an external Mosquitto for Tether."""


@broker.command(name="acl")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Where to write acl, passwords and mosquitto-tether.conf.",
)
@click.option("--device", "devices", multiple=True, help="A device id to add a login for (repeatable).")
@click.option("--devices-file", type=click.File(), help="Device ids to add, one per line.")
@click.option("--controller-user", default="tether-controller", show_default=True, help="The controller's login.")
@click.option("--topic-prefix", default="tether/v1", show_default=True, help="Root of every Tether topic.")
@click.option(
    "--append-logins",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also append each new device's `user password` line (never the controller's) to this file, mode 0600: "
    "the android_logins file of a host that bridges these devices.",
)
def broker_acl(
    directory: Path,
    devices: tuple[str, ...],
    devices_file: Any,
    controller_user: str,
    topic_prefix: str,
    append_logins: Path | None,
) -> None:
    """Write a Mosquitto ACL under which each device reaches only its own topics, and add a login for the
    controller and each new device to the password file. Prints `user password` for every login it added (the
    passwords are stored hashed only); users already in the file keep theirs. Include mosquitto-tether.conf
    from mosquitto.conf."""
    from controller.broker_auth import (
        CONTROLLER_SECRET,
        acl_text,
        mosquitto_settings,
        new_credentials,
        password_line,
        users_in,
    )
    from shared.errors import TetherProtocolError
    from shared.topics import Topics

    wanted = [controller_user, *devices, *(line.strip() for line in devices_file or () if line.strip())]

    def write() -> None:
        try:
            topics = Topics(topic_prefix)
            directory.mkdir(parents=True, exist_ok=True)
            passwords = directory / "passwords"
            existing = passwords.read_text() if passwords.exists() else ""
            created = new_credentials(users_in(existing), wanted)
            # Opened before any login is stored: a login stored but neither printed nor handed over would be lost.
            with contextlib.ExitStack() as stack:
                logins = stack.enter_context(_append_private(append_logins)) if append_logins else None
                (directory / "acl").write_text(acl_text(topics, controller_user))
                with _append_private(passwords) as file:
                    file.writelines(f"{password_line(user, password)}\n" for user, password in created.items())
                if controller_user in created:  # for a controller that embeds the broker and logs in to it
                    secret = os.open(directory / CONTROLLER_SECRET, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    with os.fdopen(secret, "w") as file:
                        file.write(f"{controller_user} {created[controller_user]}\n")
                settings = mosquitto_settings(str(passwords.resolve()), str((directory / "acl").resolve()))
                (directory / "mosquitto-tether.conf").write_text(settings)
                if logins is not None:
                    logins.writelines(
                        f"{user} {password}\n" for user, password in created.items() if user != controller_user
                    )
        except (ValueError, OSError, TetherProtocolError) as err:
            raise StartupError(describe(err)) from err
        for user, password in created.items():
            click.echo(f"{user} {password}")

    write()


def _append_private(path: Path) -> TextIO:
    """`path` opened to append to, created readable by its owner only."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a")


def _served_tls(cert: Path | None, key: Path | None, external: BrokerUrl | None) -> "ServerTls | None":
    """The embedded broker's TLS certificate and key, checked now so that a bad file is one line at start."""
    from controller.broker import ServerTls

    if cert is None and key is None:
        return None
    hint = "--mqtt-tls-cert/--mqtt-tls-key"
    if external is not None:
        raise click.BadParameter("is for the embedded broker; an external one has its own", param_hint=hint)
    if cert is None or key is None:
        raise click.BadParameter("give both the certificate and its key", param_hint=hint)
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as err:
        raise click.BadParameter(f"cannot serve TLS with {cert} and {key}: {err}", param_hint=hint) from err
    return ServerTls(cert, key)


def _broker_login(url: BrokerUrl | None, password_file: Path | None) -> BrokerUrl | None:
    """--broker with its password from --broker-password-file or $TETHER_BROKER_PASSWORD; a warning if from argv."""
    if url is None:
        if password_file is not None:
            raise click.BadParameter(
                "is for --broker; the embedded broker's logins are in --broker-auth",
                param_hint="--broker-password-file",
            )
        return None
    try:
        login = with_password(url, password_file, os.environ)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--broker-password-file") from err
    if url.password is not None:
        log.warning(ARGV_PASSWORD_WARNING)
    return login


def _refuse_or_warn_anonymous(listen: "ListenAddress", *, allowed: bool) -> None:
    """An embedded broker without logins beyond loopback lets anyone who reaches it command every device: refuse it
    in one line, unless the operator said --allow-anonymous-broker (then it is a warning at every start)."""
    if _is_loopback(listen.host):
        return
    if allowed:
        log.warning(
            "the embedded broker on %s admits anonymous clients: anyone who reaches it can run scripts on "
            "every device (--allow-anonymous-broker)",
            listen,
        )
        return
    click.echo(
        f"tether: error: the embedded broker would admit anonymous clients on {listen}, and anyone who reaches it "
        "could run scripts on every device: give it logins with --broker-auth DIR (from `tether broker acl`), listen "
        "on 127.0.0.1, or pass --allow-anonymous-broker",
        err=True,
    )
    sys.exit(EXIT_USAGE)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False
