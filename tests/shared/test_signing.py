"""Signed commands: every member is bound, only trusted keys count, and expiry is part of what is signed."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nacl.signing import SigningKey

from shared.signing import (
    SignatureError,
    Signer,
    Verifier,
    canonical,
    format_public_key,
    key_id,
    parse_public_key,
)
from shared.text import UnencodableText

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
KEY = SigningKey.generate()
OTHER = SigningKey.generate()


def command(**changes: Any) -> dict[str, Any]:
    body = {
        "command_id": "c-1",
        "operation_id": "op-1",
        "device_id": "dev-a",
        "operation_type": "RUN_SHELL_SCRIPT",
        "arguments": {"script": "echo héllo ✓", "timeout_s": 30},
        "issued_at": "2026-12-01T11:59:00Z",
        "start_before": "2026-12-01T13:00:00Z",
    }
    return {**body, **changes}


def signed(body: dict[str, Any], key: SigningKey = KEY) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(Signer(key).signed(body))
    return parsed


def verifier(*keys: SigningKey) -> Verifier:
    return Verifier(key.verify_key for key in keys)


def test_a_signed_command_verifies_whatever_the_order_of_its_members() -> None:
    body = signed(command())
    verifier(KEY).verify(body)
    verifier(KEY).verify(dict(reversed(list(body.items()))))
    assert body["signature"].startswith(f"ed25519:{key_id(KEY.verify_key)}:")


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("device_id", "dev-b"),
        ("command_id", "c-2"),
        ("operation_id", "op-2"),
        ("operation_type", "REBOOT"),
        ("arguments", {"script": "rm -rf /", "timeout_s": 30}),
        ("start_before", "2030-01-01T00:00:00Z"),
        ("issued_at", "2026-12-01T11:59:01Z"),
        ("schedule", {"start_time": "00:00"}),
    ],
)
def test_changing_any_member_breaks_the_signature(member: str, value: Any) -> None:
    body = {**signed(command()), member: value}
    with pytest.raises(SignatureError, match=r"^signature invalid: it does not match the message$"):
        verifier(KEY).verify(body)


def test_removing_a_member_breaks_the_signature() -> None:
    body = signed(command())
    del body["start_before"]
    with pytest.raises(SignatureError, match="does not match"):
        verifier(KEY).verify(body)


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        (None, "the message is not signed"),
        (42, "the message is not signed"),
        ("", "not an ed25519 signature"),
        ("rsa:abc:def", "not an ed25519 signature"),
        ("ed25519:0123456789abcdef", "not an ed25519 signature"),
        ("ed25519:0123456789abcdef:AAAA", "not one this device trusts"),
    ],
)
def test_a_missing_or_foreign_signature_is_refused(signature: Any, reason: str) -> None:
    body = command() if signature is None else {**command(), "signature": signature}
    with pytest.raises(SignatureError, match=reason):
        verifier(KEY).verify(body)


@pytest.mark.parametrize("mangle", [lambda s: s[:-4], lambda s: s + "AAAA", lambda s: s[:-2] + "!!", lambda s: s[:20]])
def test_a_damaged_signature_is_refused(mangle: Any) -> None:
    body = signed(command())
    body["signature"] = mangle(body["signature"])
    with pytest.raises(SignatureError, match="signature invalid"):
        verifier(KEY).verify(body)


def test_only_trusted_keys_count_and_a_rollover_trusts_both() -> None:
    old, new = signed(command(), KEY), signed(command(), OTHER)
    with pytest.raises(SignatureError, match="not one this device trusts"):
        verifier(KEY).verify(new)
    both = verifier(KEY, OTHER)
    both.verify(old)
    both.verify(new)
    with pytest.raises(SignatureError, match="not one this device trusts"):
        verifier(OTHER).verify(old)


def test_a_signature_made_by_another_key_under_a_trusted_key_id_is_refused() -> None:
    forged = signed(command(), OTHER)
    _, _, value = forged["signature"].split(":")
    forged["signature"] = f"ed25519:{key_id(KEY.verify_key)}:{value}"
    with pytest.raises(SignatureError, match="does not match"):
        verifier(KEY).verify(forged)


def test_a_command_must_carry_an_expiry_that_has_not_passed() -> None:
    body = signed(command())
    check = verifier(KEY)
    check.verify_command(body, NOW, datetime(2026, 12, 1, 13, 0, tzinfo=UTC))
    with pytest.raises(SignatureError, match=r"^expired: it had to start before 2026-12-01T13:00:00"):
        check.verify_command(body, NOW + timedelta(hours=2), datetime(2026, 12, 1, 13, 0, tzinfo=UTC))
    unbounded = signed({k: v for k, v in command().items() if k != "start_before"})
    with pytest.raises(SignatureError, match="must carry start_before"):
        check.verify_command(unbounded, NOW, None)


def test_the_signed_payload_is_the_canonical_form_plus_its_signature() -> None:
    payload = Signer(KEY).signed(command())
    body = json.loads(payload)
    assert canonical({k: v for k, v in body.items() if k != "signature"}) == canonical(command())
    assert "héllo ✓".encode() in payload  # UTF-8, not \\u escapes


def test_public_keys_round_trip_and_bad_ones_say_what_is_wrong() -> None:
    text = format_public_key(KEY.verify_key)
    assert key_id(parse_public_key(text)) == key_id(KEY.verify_key)
    assert key_id(parse_public_key(f"  {text}\n")) == key_id(KEY.verify_key)
    for bad, reason in [
        ("rsa:AAAA", "reads 'ed25519:<base64>'"),
        ("ed25519:", "reads 'ed25519:<base64>'"),
        ("ed25519:not base64!", "not valid base64"),
        ("ed25519:AAAA", "32 bytes, not 3"),
    ]:
        with pytest.raises(ValueError, match=reason):
            parse_public_key(bad)


def test_text_utf8_cannot_encode_is_refused_naming_its_field() -> None:
    with pytest.raises(UnencodableText) as refused:
        canonical({"command_id": "c1", "arguments": {"script": "echo \ud800"}})
    assert refused.value.field == "arguments.script"
    assert isinstance(refused.value, ValueError)  # the dispatcher fails the operation on it, not the process
