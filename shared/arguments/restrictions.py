"""Arguments of the ALLOW_* restriction types."""

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, StrictBool, field_validator

from shared.arguments.network import switch_word


class Restriction(StrEnum):
    """What an ALLOW_* type allows or disallows."""

    BLUETOOTH = "bluetooth"
    CAMERA = "camera"


class AllowArguments(BaseModel):
    """ALLOW_BLUETOOTH, ALLOW_CAMERA: `allowed: false` disallows the feature on the device, `true` allows it again."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed: StrictBool
    _words = field_validator("allowed", mode="before")(switch_word)
