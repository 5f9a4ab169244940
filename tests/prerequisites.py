"""What a test needs from the machine (a server binary, an account): skip without it, or fail under CI."""

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    """Skip the test for want of `reason`; under `CI=true` fail it, since `.ci/run` installs what tests need."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def executable(name: str, *fallbacks: Path) -> Path:
    """`name` on PATH, else the first of `fallbacks` that can be run; `unavailable` when neither is there."""
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    for candidate in fallbacks:
        if os.access(candidate, os.X_OK):
            return candidate
    unavailable(f"{name} is not on PATH nor at {', '.join(map(str, fallbacks)) or 'any other place'}")
