"""API key roles, and hashing of the secrets the controller hands out: API keys and artifact upload tokens."""

import hashlib
from enum import StrEnum


class Role(StrEnum):
    """`admin` keys hold ROLE_DEVICE_CONTROL_ADMIN and may create; `read` keys hold ROLE_DEVICE_CONTROL_READ."""

    ADMIN = "admin"
    READ = "read"


def hash_key(key: str) -> str:
    # Keys and tokens are 192- to 256-bit random strings, so a plain SHA-256 is enough; no stretching is needed.
    return hashlib.sha256(key.encode()).hexdigest()
