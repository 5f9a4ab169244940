"""Ed25519 signatures on what the controller sends devices: what is signed, and how an agent checks it.

The signed bytes are a domain prefix and the message's JSON object without its `signature` member in canonical
form: keys sorted, no whitespace, UTF-8 (Python's `json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`). Every member is covered, so the device id, command id, type, arguments and expiry
(`start_before`) cannot be changed without breaking the signature. `signature` reads
`ed25519:<key id>:<base64url signature>`; the key id (16 hex digits of the public key's SHA-256) lets an agent
trust an old and a new key at once during a rollover. Public keys are written `ed25519:<base64 of the 32 bytes>`.

Keys are PyNaCl's (libsodium): an agent that checks signatures loads ~1 MB for it where cryptography took ~7 MB.
"""

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from nacl.exceptions import CryptoError
from nacl.signing import SigningKey, VerifyKey

from shared.text import UnencodableText, unencodable_field

DOMAIN = b"tether-signed-message-v1\n"
ALGORITHM = "ed25519"
SIGNATURE_INVALID = "signature invalid"
EXPIRED = "expired"


class SignatureError(ValueError):
    """A message that must not be acted on; str() is the failure reason a device reports."""


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""Built once: `json.dumps` with these options builds an encoder per call, once per command dispatched."""


def canonical(body: Mapping[str, Any]) -> bytes:
    """UnencodableText, naming the field, for text UTF-8 cannot encode: it could be neither sent nor signed."""
    text = _CANONICAL.encode(body)
    try:
        return text.encode()
    except UnicodeEncodeError as err:
        raise UnencodableText(unencodable_field(dict(body)) or "the message") from err


def key_id(public: VerifyKey) -> str:
    return hashlib.sha256(bytes(public)).hexdigest()[:16]


def format_public_key(public: VerifyKey) -> str:
    return f"{ALGORITHM}:{base64.b64encode(bytes(public)).decode()}"


def parse_public_key(text: str) -> VerifyKey:
    """ValueError, saying what is wrong, for anything but `ed25519:<base64 of 32 bytes>`."""
    algorithm, _, encoded = text.strip().partition(":")
    if algorithm != ALGORITHM or not encoded:
        raise ValueError(f"a public key reads '{ALGORITHM}:<base64>', not {text[:40]!r}")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except binascii.Error as err:
        raise ValueError(f"the public key is not valid base64: {err}") from err
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, not {len(raw)}")
    return VerifyKey(raw)


class Signer:
    """Signs with the controller's current private key."""

    def __init__(self, private: SigningKey) -> None:
        self._private = private
        self.key_id = key_id(private.verify_key)

    def signed(self, body: Mapping[str, Any]) -> bytes:
        """`body` (which has no `signature`) as a JSON payload with its signature added."""
        text = canonical(body)
        return self.attach(text, self.signature(text))

    def signature(self, text: bytes) -> bytes:
        """The raw 64-byte signature of a canonical text: what is signed is the domain prefix and the text."""
        return self._private.sign(DOMAIN + text).signature

    def attach(self, text: bytes, signature: bytes) -> bytes:
        """A canonical text with its raw signature added as the `signature` member."""
        encoded = base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
        # The canonical text with one member appended is still the same object: no second encoding per command.
        return text[:-1] + f',"signature":"{ALGORITHM}:{self.key_id}:{encoded}"}}'.encode()

    def private_bytes(self) -> bytes:
        """The raw private key (its 32-byte seed), for the controller's signing worker (controller/signing_worker)."""
        return bytes(self._private)


class Verifier:
    """Checks messages against the public keys an agent trusts."""

    def __init__(self, trusted: Iterable[VerifyKey]) -> None:
        self._trusted = {key_id(public): public for public in trusted}

    def verify(self, body: Mapping[str, Any]) -> None:
        """SignatureError unless `body` carries a valid signature by a trusted key."""
        signature = body.get("signature")
        if not isinstance(signature, str):
            raise SignatureError(f"{SIGNATURE_INVALID}: the message is not signed")
        algorithm, _, rest = signature.partition(":")
        signer, _, encoded = rest.partition(":")
        if algorithm != ALGORITHM or not encoded:
            raise SignatureError(f"{SIGNATURE_INVALID}: not an {ALGORITHM} signature")
        public = self._trusted.get(signer)
        if public is None:
            raise SignatureError(f"{SIGNATURE_INVALID}: signed by key {signer[:16]!r}, not one this device trusts")
        try:
            raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            public.verify(DOMAIN + canonical({k: v for k, v in body.items() if k != "signature"}), raw)
        except (binascii.Error, ValueError, CryptoError) as err:
            raise SignatureError(f"{SIGNATURE_INVALID}: it does not match the message") from err

    def verify_command(self, body: Mapping[str, Any], now: datetime, start_before: datetime | None) -> None:
        """A command must also say until when it may start, and that moment must not have passed."""
        self.verify(body)
        if start_before is None:
            raise SignatureError(f"{SIGNATURE_INVALID}: a signed command must carry start_before")
        if start_before <= now:
            raise SignatureError(f"{EXPIRED}: it had to start before {start_before.isoformat()}")
