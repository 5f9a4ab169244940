"""Arguments of the kiosk operation types: the kiosk app, multi-app mode and the app allowlist."""

import re
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from shared.arguments.network import switch_word

LOGIN_NAME = r"^[a-z_][a-z0-9_-]{0,31}$"
"""A portable login name (useradd's default rule): never an option, a path or anything a unit file would read."""
_JAVA_NAME = r"[A-Za-z][A-Za-z0-9_]*"
ANDROID_PACKAGE = rf"^{_JAVA_NAME}(\.{_JAVA_NAME})+$"
"""An Android application id: at least two dot-separated Java identifiers."""
_CLASS_NAME = r"[A-Za-z_][A-Za-z0-9_$]*"
ANDROID_COMPONENT = rf"^{_JAVA_NAME}(\.{_JAVA_NAME})+/\.?{_CLASS_NAME}(\.{_CLASS_NAME})*$"
"""`package/.Activity` or `package/full.class.Name`, as `am start -n` takes it."""
PROGRAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
"""A program looked up on PATH: a plain file name, never an option or a path."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

ArgvWord = Annotated[str, Field(min_length=1, max_length=4096)]


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KioskAppArguments(_Arguments):
    """SET_KIOSK_APP: `app` (Linux: the argv cage runs, as `user`) and `component` (Android: the home activity).

    A command to a mixed fleet may carry both; each platform uses its own and fails without it. `enabled: false`
    takes the kiosk down again and carries neither.
    """

    enabled: StrictBool = True
    app: list[ArgvWord] | None = Field(default=None, min_length=1, max_length=64)
    """The program (an absolute path, or a name found on tetherd's PATH) and its arguments, one word each."""
    user: str = Field(default="kiosk", pattern=LOGIN_NAME)
    """The existing account the kiosk session runs as; never root."""
    component: str | None = Field(default=None, pattern=ANDROID_COMPONENT, max_length=512)

    _words = field_validator("enabled", mode="before")(switch_word)

    @field_validator("app")
    @classmethod
    def _plain_argv(cls, app: list[str] | None) -> list[str] | None:
        if app is None:
            return None
        if any(_CONTROL.search(word) for word in app):
            raise ValueError("no word may hold a newline or another control character")
        program = app[0]
        if program.startswith("/"):
            if any(part in ("", ".", "..") for part in program[1:].split("/")):
                raise ValueError("the program must be a plain absolute path, without empty, '.' or '..' parts")
        elif not PROGRAM_NAME.fullmatch(program):
            raise ValueError("the program must be an absolute path or a plain program name found on PATH")
        return app

    @field_validator("user")
    @classmethod
    def _not_root(cls, user: str) -> str:
        if user == "root":
            raise ValueError("a kiosk never runs as root")
        return user

    @model_validator(mode="after")
    def _what_to_run(self) -> Self:
        if self.enabled and self.app is None and self.component is None:
            raise ValueError("give the kiosk's 'app' (Linux) or 'component' (Android), or enabled: false")
        if not self.enabled and (self.app is not None or self.component is not None or "user" in self.model_fields_set):
            raise ValueError("enabled: false takes the kiosk down; give no 'app', 'user' or 'component' with it")
        return self


class MultiAppModeArguments(_Arguments):
    """SET_MULTI_APP_MODE: when on, only the allowlisted apps (and the never-suspended ones) may be opened."""

    enabled: StrictBool
    _words = field_validator("enabled", mode="before")(switch_word)


class AllowlistArguments(_Arguments):
    """ADD_TO_WHITELIST and REMOVE_FROM_WHITELIST: Android application ids."""

    packages: list[Annotated[str, Field(pattern=ANDROID_PACKAGE, max_length=255)]] = Field(min_length=1, max_length=200)
