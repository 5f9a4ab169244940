"""Key files are PKCS #8 PEM (written and read with cryptography); signing is PyNaCl's: the two must agree."""

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from controller.signing_keys import SigningKeyError, SigningKeys
from shared.signing import DOMAIN, Verifier, canonical, parse_public_key


def test_what_the_signer_signs_verifies_with_the_key_file_read_by_cryptography(tmp_path: Path) -> None:
    keys = SigningKeys(tmp_path / "signing")
    signer = keys.signer()
    (listed,) = keys.listing()
    assert listed.active
    assert listed.key_id == signer.key_id
    payload = json.loads(signer.signed({"command_id": "c-1", "device_id": "d-1", "note": "héllo"}))
    *_, encoded = payload.pop("signature").split(":")
    signature = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    private = load_pem_private_key((tmp_path / "signing" / f"{signer.key_id}.pem").read_bytes(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    private.public_key().verify(signature, DOMAIN + canonical(payload))  # raises if the two libraries disagree
    assert signature == private.sign(DOMAIN + canonical(payload))  # Ed25519 is deterministic
    Verifier([parse_public_key(listed.public_key)]).verify(
        {**payload, "signature": f"ed25519:{signer.key_id}:{encoded}"}
    )


def test_a_key_file_that_is_not_its_key_is_refused(tmp_path: Path) -> None:
    keys = SigningKeys(tmp_path / "signing")
    first, second = keys.create(), keys.create()
    (tmp_path / "signing" / f"{first}.pem").write_bytes((tmp_path / "signing" / f"{second}.pem").read_bytes())
    with pytest.raises(SigningKeyError, match=f"does not hold the Ed25519 key {first}"):
        keys.activate(first)
