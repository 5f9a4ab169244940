"""The `tetherd` command: `tetherd run` connects a device to a Tether broker and runs its operations."""

import asyncio
import json
import logging
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from agent import __version__
from agent.android.bridge import AndroidBridge
from agent.command_line import EXIT_ERROR, OneLineGroup, first_leaf, log_format_option
from agent.config import AgentSettings, load_settings
from agent.device import run_device
from agent.errors import AgentError, ConfigError, JournalError
from agent.handlers import build_registry, capabilities
from agent.handlers.base import AnyHandler
from agent.platforms.linux import LinuxPlatform
from shared.logs import LogFormat, about, configure
from shared.messages import Announcement, utc_now
from shared.operations import OperationType, Platform
from shared.sd_notify import notify, ping_watchdog
from shared.transport import ARGV_PASSWORD_WARNING, BrokerUrl

log = logging.getLogger("agent")

EXIT_CONFIG_ERROR = 78
"""EX_CONFIG from sysexits.h, so systemd can be told not to restart on a bad config."""


def _make_state_dir(settings: AgentSettings) -> None:
    """The state dir is private (umask 077), but a script run as another user (`run_scripts_as`) must reach its own
    work dir below it: then the state dir and `work/` may be passed through, not listed (0711, as the unit's
    StateDirectoryMode), while every file in them stays the agent's alone."""
    try:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        if settings.run_scripts_as is not None:
            work = settings.state_dir / "work"
            work.mkdir(exist_ok=True)
            for directory in (settings.state_dir, work):
                directory.chmod(0o711)
    except OSError as err:
        raise ConfigError(f"state_dir: cannot make {settings.state_dir}: {err.strerror or err}") from err


async def run_agent(settings: AgentSettings, config_file: Path | None = None) -> None:
    """Run this host as a device unless `host` is off, and every attached Android device too if `android` is on."""
    _make_state_dir(settings)
    if settings.verifier is None:
        log.warning("trusted_keys is not set: commands run without their signature being checked")
    registry = build_registry(
        reboot_grace_s=settings.reboot_grace_s,
        custom_actions=settings.custom_actions,
        converge_actions=settings.converge_actions,
        provision_action=settings.provision_action,
        wipe_action=settings.wipe_action,
        remote_connection=settings.remote_connection,
    )
    policy = settings.type_policy
    registry = {kind: handler for kind, handler in registry.items() if policy.refusal(kind) is None}  # not announced
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    if not settings.host:
        notify("READY=1", "STATUS=watching for Android devices")  # with no host session, nothing else will
    async with asyncio.TaskGroup() as group:
        group.create_task(ping_watchdog())
        if settings.host:
            group.create_task(run_host(settings, registry, config_file))
        if settings.android:
            group.create_task(AndroidBridge(settings, registry).run())


async def run_host(
    settings: AgentSettings, registry: Mapping[OperationType, AnyHandler], config_file: Path | None = None
) -> None:
    platform = LinuxPlatform(
        boot_id_path=settings.boot_id_path,
        tool_timeout=settings.tool_timeout_s,
        agent_unit=settings.agent_unit,
        script_policy=settings.script_policy,
        enrolment_paths=settings.enrolment_paths(config_file),
    )
    survey = await platform.survey()
    announcement = Announcement(
        device_id=settings.device_id,
        platform=Platform.LINUX,
        agent_version=__version__,
        inventory=survey.inventory,
        time_zone=survey.time_zone,
        capabilities=capabilities(platform, registry),
        tags=settings.tags,
        groups=settings.groups,
        announced_at=utc_now(),
    )
    with about(device_id=settings.device_id):
        await run_device(
            settings=settings,
            broker_urls=settings.broker_urls,
            platform=platform,
            announcement=announcement,
            root=settings.state_dir,
            registry=registry,
            configured_time_zone=settings.time_zone,
        )


class TetherdGroup(OneLineGroup):
    # ConfigError first: it is an AgentError, and the unit does not restart on a bad config (78).
    expected = ((ConfigError, EXIT_CONFIG_ERROR), (AgentError, EXIT_ERROR), (OSError, EXIT_ERROR))


@click.group(name="tetherd", cls=TetherdGroup)
@click.version_option(__version__)
def main() -> None:
    """tetherd: the Tether device agent."""
    # Outside systemd (whose unit sets UMask=0077) too, the journal and work files are the agent's alone.
    os.umask(0o077)


@main.command(name="run")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), help="TOML settings file.")
@click.option(
    "--broker",
    multiple=True,
    help="mqtt[s]://[user@]host:port; the password from --broker-password-file or the env. Repeat it for each node "
    "of a broker cluster: they are tried in turn.",
)
@click.option(
    "--broker-password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file whose first line is the broker password (default: $TETHER_BROKER_PASSWORD).",
)
@click.option("--device-id", help="This device's id (letters, digits, '.', '_', ':' or '-').")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), help="Journal and work files.")
@click.option("--topic-prefix", help="Root of every Tether topic (default tether/v1).")
@click.option("--tag", "tags", multiple=True, help="A tag that operation queries can select on; repeatable.")
@click.option("--group", "groups", multiple=True, help="A group that operation queries can select on; repeatable.")
@click.option("--time-zone", help="IANA time zone to announce instead of the system's (default: the system's).")
@click.option("--boot-id-path", type=click.Path(dir_okay=False, path_type=Path), hidden=True)
@click.option("--reboot-grace", "reboot_grace_s", type=float, help="Seconds to wait for a reboot to take effect.")
@click.option("--android", is_flag=True, default=None, help="Also run each Android device attached over adb.")
@click.option(
    "--android-logins",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --android: a file of `<device_id> <password>` lines, each Android device's broker login.",
)
@click.option("--no-host", "host", flag_value=False, default=None, help="With --android: do not run this host itself.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning"]), default="info", show_default=True)
@log_format_option
def run_command(config_file: Path | None, log_level: str, log_format: LogFormat, **overrides: Any) -> None:
    """Connect to the broker, announce this device and run the operations sent to it."""
    configure(log_level, log_format)
    settings = load_settings(config_file, overrides)
    if any(BrokerUrl.parse(url).password for url in overrides["broker"]):
        log.warning(ARGV_PASSWORD_WARNING)
    try:
        asyncio.run(run_agent(settings, config_file))
    except (KeyboardInterrupt, asyncio.CancelledError):
        log.info("stopped")
    except ExceptionGroup as group:  # the task group of run_agent
        journal_errors = group.subgroup(JournalError)
        if journal_errors is None:
            raise
        # Not EXIT_CONFIG_ERROR: a journal held by another agent or on a full disk may come good.
        raise first_leaf(journal_errors) from group


@main.group()
def config() -> None:
    """Check the agent's settings."""


@config.command(name="check")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), required=True)
def check_config(config_file: Path) -> None:
    """Validate a config file and print the effective settings, defaults included, as JSON, with secrets redacted;
    an invalid file exits 78 with the file, the key and the problem on one line."""
    settings = load_settings(config_file, {})
    effective = settings.model_dump(mode="json")
    effective["broker"] = [str(url) for url in settings.broker_urls]  # without its password
    click.echo(json.dumps(effective, indent=2, sort_keys=True))
