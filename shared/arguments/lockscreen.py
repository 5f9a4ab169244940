"""Arguments of CLEAR_PASSCODE and RESET_LOCKSCREEN_PASSWORD: the lock screen's credential.

Credentials are secrets: `repr=False` keeps them out of logged models, and no validation message quotes them.
"""

import re
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

CREDENTIAL = r"^[ -~]{1,64}$"
"""A credential the device has now: printable ASCII; a pattern is its dots numbered 1-9, row by row (`12369`)."""
PIN = r"^[0-9]{4,16}$"
PASSWORD = r"^[!-,.-~][ -~]{3,63}$"
"""4 to 64 printable ASCII characters, not starting with a space or `-` (which the device's tool would read as an
option)."""


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CredentialKind(StrEnum):
    PIN = "pin"
    PASSWORD = "password"


class ClearPasscodeArguments(_Arguments):
    """CLEAR_PASSCODE: remove the lock screen's PIN, pattern or password, which only its `current` value may do."""

    current: str = Field(pattern=CREDENTIAL, repr=False)


class LockscreenPasswordArguments(_Arguments):
    """RESET_LOCKSCREEN_PASSWORD: set a new PIN or password; `current` is required when one is set already."""

    kind: CredentialKind
    new: str = Field(repr=False)
    current: str | None = Field(default=None, pattern=CREDENTIAL, repr=False)

    @model_validator(mode="after")
    def _new_fits_kind(self) -> Self:
        if self.kind is CredentialKind.PIN and not re.fullmatch(PIN, self.new):
            raise ValueError("a new PIN is 4 to 16 digits")
        if self.kind is CredentialKind.PASSWORD and not re.fullmatch(PASSWORD, self.new):
            raise ValueError("a new password is 4 to 64 printable ASCII characters, not starting with a space or '-'")
        return self
