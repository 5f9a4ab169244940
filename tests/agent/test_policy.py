"""The device's policy, pure: which types run, and what a script inherits and may ask for."""

import pytest

from agent.policy import Account, ScriptPolicy, TypePolicy
from shared.operations import OperationType

NOBODY = Account("nobody", 65534, 65534, "/nonexistent")


@pytest.mark.parametrize(
    ("policy", "operation_type", "refused"),
    [
        (TypePolicy(), OperationType.WIPE, None),
        (TypePolicy(denied=frozenset({OperationType.REBOOT})), OperationType.REBOOT, "is denied on this device"),
        (TypePolicy(denied=frozenset({OperationType.REBOOT})), OperationType.LOCK, None),
        (TypePolicy(allowed=frozenset({OperationType.LOCK})), OperationType.LOCK, None),
        (TypePolicy(allowed=frozenset({OperationType.LOCK})), OperationType.REBOOT, "is not in allowed_types"),
        (TypePolicy(allowed=frozenset(), denied=frozenset()), OperationType.LOCK, "is not in allowed_types"),
        (
            TypePolicy(allowed=frozenset({OperationType.LOCK}), denied=frozenset({OperationType.LOCK})),
            OperationType.LOCK,
            "is denied",  # deny wins
        ),
    ],
)
def test_types_run_when_allowed_and_not_denied(
    policy: TypePolicy, operation_type: OperationType, refused: str | None
) -> None:
    refusal = policy.refusal(operation_type)
    if refused is None:
        assert refusal is None
    else:
        assert refusal is not None
        assert refusal.startswith(str(operation_type))
        assert refused in refusal


AGENT_ENVIRONMENT = {
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_TIME": "en_GB.UTF-8",
    "TZ": "Europe/Paris",
    "HOME": "/root",
    "USER": "root",
    "AWS_SECRET_ACCESS_KEY": "hunter2",
    "SSH_AUTH_SOCK": "/run/user/0/ssh",
    "TETHER_BROKER_PASSWORD": "hunter3",
    "http_proxy": "http://user:pw@proxy:3128",
}


def test_a_script_keeps_only_harmless_variables_of_the_agents() -> None:
    assert ScriptPolicy().environment(AGENT_ENVIRONMENT) == {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_TIME": "en_GB.UTF-8",
        "TZ": "Europe/Paris",
    }


def test_a_script_run_as_another_user_gets_its_identity_and_the_configured_extras_last() -> None:
    policy = ScriptPolicy(account=NOBODY, extra_environment={"SITE": "lobby", "PATH": "/opt/site/bin"})
    assert policy.environment(AGENT_ENVIRONMENT) == {
        "PATH": "/opt/site/bin",
        "LANG": "C.UTF-8",
        "LC_TIME": "en_GB.UTF-8",
        "TZ": "Europe/Paris",
        "HOME": "/nonexistent",
        "USER": "nobody",
        "LOGNAME": "nobody",
        "SITE": "lobby",
    }


@pytest.mark.parametrize(
    ("timeout_s", "output_limit", "refused"),
    [
        (60, 4096, None),
        (600, 4096, None),
        (601, 4096, "timeout_s 601 is over this device's limit of 600 (script_max_timeout_s)"),
        (60, 65536, None),
        (60, 65537, "output_limit 65537 is over this device's limit of 65536 (script_max_output_bytes)"),
    ],
)
def test_limits_a_script_asks_for_are_checked_against_the_devices(
    timeout_s: float, output_limit: int, refused: str | None
) -> None:
    policy = ScriptPolicy(max_timeout_s=600, max_output_bytes=65536)
    assert policy.limit_refusal(timeout_s, output_limit) == refused
    assert ScriptPolicy().limit_refusal(86400, 10**6) is None
