"""The command-line edge: every bad input ends with one readable line and a non-zero exit, never a traceback."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import BIN
from tests.fixtures_brokers import free_port


def run(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def assert_one_line_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, done.stderr
    for fragment in fragments:
        assert fragment in lines[0], done.stderr


@pytest.mark.parametrize(("flag", "fragment"), [("--http-listen", "HTTP port"), ("--mqtt-listen", "MQTT port")])
def test_serve_names_the_taken_port_and_the_flag(tmp_path: Path, flag: str, fragment: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"--http-listen": f"127.0.0.1:{free_port()}", "--mqtt-listen": f"127.0.0.1:{free_port()}"}
        ports[flag] = f"127.0.0.1:{port}"
        done = run(
            str(BIN / "tether"),
            "serve",
            "--db",
            str(tmp_path / "t.db"),
            *(part for pair in ports.items() for part in pair),
            timeout=60,
        )
    assert_one_line_error(done, fragment, str(port), flag)


def test_serve_rejects_a_bad_broker_url(tmp_path: Path) -> None:
    done = run(str(BIN / "tether"), "serve", "--db", str(tmp_path / "t.db"), "--broker", "http://x")
    assert done.returncode == 2
    assert "mqtt://" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_refuses_cluster_nodes_that_mix_tls_and_plain(tmp_path: Path) -> None:
    argv = ["serve", "--db", str(tmp_path / "t.db"), "--broker", "mqtt://a:1883", "--broker", "mqtts://b:8883"]
    done = run(str(BIN / "tether"), *argv)
    assert done.returncode == 2
    assert_one_line_error(done, "--broker", "mixes mqtt:// and mqtts://: one TLS setting serves every node")
    assert not (tmp_path / "t.db").exists()


def test_duplicate_key_name(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    first = run(str(BIN / "tether"), "keys", "create", "--name", "ops", "--role", "read", "--db", db)
    assert first.returncode == 0
    assert first.stdout.startswith("tth_")
    assert_one_line_error(
        run(str(BIN / "tether"), "keys", "create", "--name", "ops", "--role", "admin", "--db", db), "already exists"
    )


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--broker", "mqtt://127.0.0.1:1", "--state-dir", "/tmp/x"], ["device_id", "missing"]),
        (["--broker", "nope", "--device-id", "d", "--state-dir", "/tmp/x"], ["broker", "mqtt://"]),
        (["--broker", "mqtt://127.0.0.1:1", "--device-id", "a/b", "--state-dir", "/tmp/x"], ["device_id"]),
        (
            [
                "--broker",
                "mqtt://127.0.0.1:1",
                "--broker",
                "mqtts://127.0.0.1:2",
                "--device-id",
                "d",
                "--state-dir",
                "/x",
            ],
            ["command line: settings:", "the broker URLs mix mqtt:// and mqtts://"],
        ),
    ],
)
def test_agent_config_errors_exit_78(args: list[str], fragments: list[str]) -> None:
    done = run(str(BIN / "tetherd"), "run", *args)
    assert done.returncode == 78
    assert_one_line_error(done, *fragments)


def test_agent_config_file_errors_name_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('broker = "mqtt://127.0.0.1:1"\ndevice_id = "d1"\nstate_dir = "/tmp/x"\nreboot_grace_s = -1\n')
    done = run(str(BIN / "tetherd"), "run", "--config", str(config))
    assert done.returncode == 78
    assert_one_line_error(done, str(config), "reboot_grace_s")
    config.write_text("broker = [")
    assert_one_line_error(run(str(BIN / "tetherd"), "run", "--config", str(config)), "invalid TOML")


def assert_one_line(done: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    """Exactly one line on stderr, saying every fragment, no traceback, and `code`."""
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.returncode == code, done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, done.stderr


@pytest.fixture
def bad_paths(tmp_path: Path) -> dict[str, str]:
    """`file`: a regular file, used as a directory; `junk`: a file that is not SQLite; `missing`: no such path."""
    (tmp_path / "file").write_text("a file, not a directory\n")
    (tmp_path / "junk.db").write_text("not a SQLite database\n" * 100)
    return {
        "file": str(tmp_path / "file"),
        "junk": str(tmp_path / "junk.db"),
        "missing": str(tmp_path / "missing"),
        "mqtt": f"127.0.0.1:{free_port()}",
        "http": f"127.0.0.1:{free_port()}",
    }


@pytest.mark.parametrize(
    ("argv", "code", "fragment"),
    [
        (["tether", "keys", "create", "--name", "a", "--role", "read", "--db", "{file}/t.db"], 2, "is not a directory"),
        (["tether", "keys", "create", "--name", "a", "--role", "read", "--db", "{file}/sub/t.db"], 2, "{file} is not"),
        (["tether", "keys", "create", "--name", "a", "--role", "read", "--db", "{junk}"], 1, "not a database"),
        (["tether", "keys", "public", "--db", "{file}/t.db"], 2, "is not a directory"),
        (["tether", "keys", "rotate", "--db", "{file}/t.db"], 2, "is not a directory"),
        (["tether", "keys", "activate", "0123456789abcdef", "--db", "{file}/t.db"], 2, "is not a directory"),
        (["tether", "serve", "--db", "{file}/t.db"], 2, "is not a directory"),
        (
            ["tether", "serve", "--db", "{junk}", "--http-listen", "{http}", "--mqtt-listen", "{mqtt}"],
            1,
            "not a database",
        ),
        (
            ["tether", "simulate", "--devices", "1", "--stats-file", "{missing}/stats.json"],
            2,
            "{missing} does not exist",
        ),
        (["tether", "simulate", "--devices", "1", "--stats-file", "{file}/stats.json"], 2, "is not a directory"),
        (["tether", "broker", "acl", "--dir", "{file}/broker"], 1, "{file}/broker: Not a directory"),
        (
            ["tetherd", "run", "--broker", "mqtt://127.0.0.1:1", "--device-id", "d", "--state-dir", "{file}/s"],
            78,
            "state_dir",
        ),
        (["tetherd", "run", "--config", "{missing}/agent.toml"], 78, "cannot read"),
        (["tetherd", "config", "check", "--config", "{file}/agent.toml"], 78, "cannot read"),
    ],
)
def test_a_path_that_cannot_be_used_is_one_line_and_a_documented_exit_code(
    bad_paths: dict[str, str], argv: list[str], code: int, fragment: str
) -> None:
    command, *args = argv
    done = run(str(BIN / command), *(arg.format(**bad_paths) for arg in args), timeout=60)
    assert_one_line(done, code, fragment.format(**bad_paths))


def test_a_missing_database_directory_is_made(tmp_path: Path) -> None:
    db = tmp_path / "new" / "dirs" / "t.db"
    done = run(str(BIN / "tether"), "keys", "create", "--name", "a", "--role", "read", "--db", str(db))
    assert done.returncode == 0, done.stderr
    assert db.is_file()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["tether", "op", "lsit"], "No such command 'lsit'. Did you mean 'list'? (see 'tether op --help')"),
        (["tether", "op", "list", "--nope"], "No such option '--nope'"),
        (["tether", "keys", "create", "--name", "a"], "Missing option '--role'"),
        (["tether", "keys", "create", "--name", "", "--role", "read"], "'--name': must not be empty"),
        (["tether", "keys", "create", "--name", " \t", "--role", "read"], "'--name': must not be empty"),
        (["tether", "op", "create", "FLY", "--device", "a"], "no operation type 'FLY'; the types are listed in"),
        (["tether", "op", "create", "REBOT", "--device", "a"], "no operation type 'REBOT'; did you mean REBOOT?"),
        (["tether", "op", "create", "script", "--device", "a"], "did you mean RUN_SHELL_SCRIPT?"),
        (["tether", "op", "create", "instal", "--device", "a"], "did you mean INSTALL, UNINSTALL or INSTALL_APP?"),
        (["tether", "op", "list", "--type", "lock_"], "did you mean LOCK"),
        (["tether", "devices", "list", "--online", "--offline"], "--online and --offline exclude each other"),
        (["tetherd", "run", "--nope"], "tetherd: error: No such option '--nope'"),
        (["tetherd", "config", "check"], "tetherd: error: Missing option '--config'"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(tmp_path: Path, argv: list[str], fragment: str) -> None:
    command, *args = argv
    env = {**os.environ, "TETHER_DB": str(tmp_path / "t.db"), "TETHER_URL": "http://127.0.0.1:1"}
    done = subprocess.run([str(BIN / command), *args], capture_output=True, text=True, timeout=30, check=False, env=env)
    assert_one_line(done, 2, fragment)
    assert done.stderr.startswith(f"{command}: error: ")
    assert not (tmp_path / "t.db").exists()


def test_a_bug_is_one_line_exit_70_and_its_traceback_with_tether_debug(tmp_path: Path) -> None:
    # No command of Tether's has a known bug to show: a command that raises what nobody expects stands in for one.
    script = (
        "import click\n"
        "from agent.command_line import OneLineGroup\n"
        "@click.group(name='tether', cls=OneLineGroup)\n"
        "def main() -> None: pass\n"
        "@main.command()\n"
        "def boom() -> None:\n"
        "    raise KeyError('x')\n"
        "main()\n"
    )
    argv = [sys.executable, "-c", script, "boom"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert_one_line(done, 70, "tether: error: unexpected KeyError: 'x' at <string>:7", "TETHER_DEBUG=1")
    env = {**os.environ, "TETHER_DEBUG": "1"}
    debugged = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False, env=env)
    assert debugged.returncode == 1
    assert "Traceback" in debugged.stderr
    assert debugged.stderr.splitlines()[-1] == "KeyError: 'x'"


def test_serve_on_a_taken_mqtt_port_leaves_no_database_behind(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run(
            str(BIN / "tether"),
            "serve",
            "--db",
            str(data / "tether.db"),
            "--http-listen",
            f"127.0.0.1:{free_port()}",
            "--mqtt-listen",
            f"127.0.0.1:{port}",
            timeout=60,
        )
    assert_one_line(done, 1, f"MQTT port 127.0.0.1:{port} is already in use")
    assert not (data / "tether.db").exists()
    assert not data.exists() or list(data.iterdir()) == []


@pytest.mark.parametrize("argv", [["tether"], ["tether", "op"], ["tetherd"]])
def test_a_group_without_its_command_shows_its_help(argv: list[str]) -> None:
    command, *args = argv
    done = run(str(BIN / command), *args)
    assert done.returncode == 2
    assert done.stderr.startswith(f"Usage: {' '.join(argv)} [OPTIONS] COMMAND [ARGS]...\n")
    assert "Commands:" in done.stderr
    assert f"{command}: error" not in done.stderr
