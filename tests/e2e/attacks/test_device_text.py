"""A device, or anything that runs on it, putting rich markup or a terminal's escape sequences in what it reports:
`tether` shows a script's output and a failure reason as they came. Read as rich markup, a path in brackets such as
`[/usr/bin]` made `tether op devices` fail as a bug; sent to the terminal, escape sequences could clear the
operator's screen, retitle it, or write what looks like Tether's own output. They are shown as text, escaped."""

import pytest

from shared.operations import OperationType
from tests.e2e.harness import Agent, Controller
from tests.e2e.test_operator_cli import cli

pytestmark = pytest.mark.e2e

OUTPUT = "ls: cannot access [/usr/bin] [bold red]SUCCESSFUL[/] :warning: \033]0;pwned\033\\ \033[2J \u009b2J"
SHOWN = "ls: cannot access [/usr/bin] [bold red]SUCCESSFUL[/] :warning: \\x1b]0;pwned\\x1b\\ \\x1b[2J \\x9b2J"


def test_markup_and_escape_sequences_a_device_reports_are_shown_as_text_never_sent_to_the_terminal(
    alpha: tuple[Controller, Agent],
) -> None:
    controller, _ = alpha
    script = "printf '%s\\n' '" + OUTPUT.replace("'", "'\\''") + "'"
    operation = controller.create(
        {
            "operation_type": OperationType.RUN_SHELL_SCRIPT,
            "operation_device_query": {"device_id": "alpha"},
            "arguments": {"script": script},
        }
    )
    controller.wait_finished(operation["id"])
    assert controller.device_results(operation["id"])["alpha"]["result"]["stdout"] == OUTPUT + "\n"

    done = cli(controller, "op", "devices", operation["id"])

    assert (done.returncode, done.stderr) == (0, "")
    (row,) = [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("alpha")]
    assert row.split()[1] == "SUCCESSFUL"
    assert row.endswith(f"exit 0 {SHOWN}")
    assert "\033" not in done.stdout
    assert "\u009b" not in done.stdout
