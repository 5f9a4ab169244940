"""The controller's Ed25519 signing keys, in files beside its database.

`signing/<key id>.pem` holds each private key (PKCS #8, mode 0600, in a 0700 directory) and `signing/active` names
the one new commands are signed with. The first key is created on first start. A rollover creates the next key
first, so that agents can trust it before the controller signs with it (docs/security.md). Which keys the fleet has
been given is in the database (controller/fleet_keys.py).
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, load_pem_private_key
from nacl.signing import SigningKey as NaclSigningKey
from nacl.signing import VerifyKey

from controller.errors import ControllerError
from shared.signing import Signer, format_public_key, key_id

ACTIVE = "active"
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")


class SigningKeyError(ControllerError):
    pass


@dataclass(frozen=True, slots=True)
class SigningKey:
    key_id: str
    public_key: str
    """`ed25519:<base64>`, as agents' `trusted_keys` take it."""
    active: bool


class SigningKeys:
    def __init__(self, directory: Path) -> None:
        self._directory = directory

    @property
    def directory(self) -> Path:
        return self._directory

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> "SigningKeys":
        return cls(state_dir / "signing")

    def signer(self) -> Signer:
        """The active key's signer; on first use, a new key made active."""
        found = self.active()
        if found is None:
            created = self.create()
            self.activate(created)
            found = Signer(self._load(created))
        return found

    def active(self) -> Signer | None:
        """The active key's signer; None where there is none yet (nothing is made)."""
        active = self._active_id()
        return None if active is None else Signer(self._load(active))

    def public_key(self, wanted: str) -> str:
        """`ed25519:<base64>` of a key held here; SigningKeyError for one that is not."""
        return format_public_key(self._public(wanted))

    def create(self) -> str:
        """A new key, not yet active; returns its id."""
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        private = Ed25519PrivateKey.generate()
        created = key_id(_signing_key(private).verify_key)
        pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        descriptor = os.open(self._directory / f"{created}.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
        return created

    def activate(self, wanted: str) -> None:
        """Sign new commands with `wanted` from the next start of `tether serve`."""
        self._load(wanted)  # SigningKeyError for an unknown or unreadable key
        staged = self._directory / f"{ACTIVE}.new"
        staged.write_text(f"{wanted}\n")
        staged.replace(self._directory / ACTIVE)

    def listing(self) -> list[SigningKey]:
        active = self._active_id()
        found = sorted(path.stem for path in self._directory.glob("*.pem") if _KEY_ID.match(path.stem))
        return [SigningKey(k, self.public_key(k), k == active) for k in found]

    def _active_id(self) -> str | None:
        try:
            text = (self._directory / ACTIVE).read_text().strip()
        except FileNotFoundError:
            return None
        if not _KEY_ID.match(text):
            raise SigningKeyError(f"{self._directory / ACTIVE} does not name a key: {text[:40]!r}")
        return text

    def _public(self, wanted: str) -> VerifyKey:
        return self._load(wanted).verify_key

    def _load(self, wanted: str) -> NaclSigningKey:
        if not _KEY_ID.match(wanted):
            raise SigningKeyError(f"a signing key id has 16 hex digits, not {wanted[:40]!r}")
        path = self._directory / f"{wanted}.pem"
        try:
            private = load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError as err:
            raise SigningKeyError(f"no signing key {wanted} in {self._directory}") from err
        except (ValueError, TypeError) as err:
            raise SigningKeyError(f"{path} is not a readable private key: {err}") from err
        key = _signing_key(private) if isinstance(private, Ed25519PrivateKey) else None
        if key is None or key_id(key.verify_key) != wanted:
            raise SigningKeyError(f"{path} does not hold the Ed25519 key {wanted}")
        return key


def _signing_key(private: Ed25519PrivateKey) -> NaclSigningKey:
    """The key as shared/signing takes it: key files stay PKCS #8 PEM, which cryptography reads and writes."""
    return NaclSigningKey(private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
