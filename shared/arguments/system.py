"""Arguments of the regional, display, sound, attention, desktop, location and lost-mode operation types."""

import unicodedata
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from shared.arguments.apps import Download
from shared.arguments.network import switch_word
from shared.messages import TimeZone


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeZoneArguments(_Arguments):
    """SET_TIMEZONE."""

    timezone: Annotated[TimeZone, Field(max_length=64)]


class LanguageArguments(_Arguments):
    """SET_DEVICE_LANGUAGE: a locale such as de_DE.UTF-8, de-DE or de_DE, or a bare language (de) where the device
    knows its default country."""

    language: str = Field(pattern=r"^[a-z]{2,3}([_-][A-Z]{2})?(\.UTF-8)?$")


class BrightnessArguments(_Arguments):
    """SET_BRIGHTNESS_SCALE: percent of the maximum."""

    brightness: int = Field(ge=0, le=100)


class ScreenOffTimeoutArguments(_Arguments):
    """SET_SCREEN_OFF_TIMEOUT: seconds of inactivity before the screen turns off; 0 means never."""

    timeout_s: int = Field(ge=0, le=86400)


class Rotation(StrEnum):
    AUTO = "auto"
    PORTRAIT = "portrait"
    LANDSCAPE = "landscape"
    REVERSE_PORTRAIT = "reverse_portrait"
    REVERSE_LANDSCAPE = "reverse_landscape"


class RotationArguments(_Arguments):
    """SET_ROTATION_STATE."""

    rotation: Rotation


class AudioStream(StrEnum):
    MUSIC = "music"
    RING = "ring"
    ALARM = "alarm"
    NOTIFICATION = "notification"
    VOICE_CALL = "voice_call"
    SYSTEM = "system"


class VolumeArguments(_Arguments):
    """SET_STREAM_VOLUME: percent of the stream's maximum."""

    stream: AudioStream = AudioStream.MUSIC
    volume: int = Field(ge=0, le=100)


class NotifyArguments(_Arguments):
    """NOTIFY_DEVICE."""

    title: str = Field(min_length=1, max_length=200)
    message: str = Field(default="", max_length=4000)


class BeepArguments(_Arguments):
    """BEEP_DEVICE."""

    duration_s: float = Field(default=1.0, gt=0, le=60)


class WallpaperArguments(Download):
    """SET_WALLPAPER: an image (.png, .jpg, .jpeg or .webp, as the URL's file name says) and its SHA-256."""


class LockdownArguments(_Arguments):
    """SET_DEVICE_LOCKDOWN_STATE: refuse new logins (showing `message` to whoever tries) and lock the open sessions."""

    enabled: StrictBool
    message: str = Field(default="", max_length=1000)

    @field_validator("message")
    @classmethod
    def _printable(cls, message: str) -> str:
        # Shown on the terminal of whoever tries to log in, unfiltered: no escape sequences (C0 or C1, such as
        # U+009B, the one-character CSI), only text, line breaks and tabs.
        if any(unicodedata.category(char) == "Cc" and char not in "\n\t" for char in message):
            raise ValueError("the message may hold line breaks and tabs but no other control characters")
        return message


class LocationMode(StrEnum):
    OFF = "off"
    ON = "on"


class GpsArguments(_Arguments):
    """SET_GPS_STATE."""

    gps_state: StrictBool
    _words = field_validator("gps_state", mode="before")(switch_word)


class LocationServiceArguments(_Arguments):
    """SET_LOCATION_SERVICE."""

    mode: LocationMode


def shown_text(value: str) -> str:
    """Text shown on the device's screen or terminals: line breaks allowed, no other control characters.

    A terminal escape sequence in a lost-mode message would otherwise reach every terminal `wall` writes to.
    """
    if any(unicodedata.category(character) == "Cc" and character != "\n" for character in value):
        raise ValueError("control characters other than a line break are not allowed")
    return value


class LostModeArguments(_Arguments):
    """ENABLE_LOST_MODE: what the device shows whoever finds it."""

    message: str = Field(min_length=1, max_length=1000)
    phone_number: str | None = Field(default=None, pattern=r"^\+?[0-9(][0-9 ()./-]{2,31}$")
    """A number to call, shown under the message: digits, spaces and ( ) . / -, starting with +, ( or a digit."""
    footnote: str | None = Field(default=None, min_length=1, max_length=200)

    _shown = field_validator("message", "footnote")(shown_text)

    def shown_message(self) -> str:
        """The message as the device shows it, the phone number and footnote on lines of their own."""
        lines = [self.message]
        if self.phone_number is not None:
            lines.append(f"Call {self.phone_number}")
        if self.footnote is not None:
            lines.append(self.footnote)
        return "\n".join(lines)


class LostModeSoundArguments(_Arguments):
    """PLAY_LOST_MODE_SOUND: longer by default than BEEP_DEVICE, to be heard by someone looking for the device."""

    duration_s: float = Field(default=10.0, gt=0, le=60)
