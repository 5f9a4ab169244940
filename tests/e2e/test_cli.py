"""The command-line edge: every bad input ends with one readable line and a non-zero exit, never a traceback."""

import socket
import subprocess
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
