"""`shared/` is the wire contract: a third party reading Tether's messages needs pydantic and PyNaCl, not an MQTT
client or a command-line library."""

import subprocess
import sys
from pathlib import Path

import shared

FORBIDDEN = ("aiomqtt", "paho", "click", "fastapi", "psycopg", "amqtt", "sqlite_utils")


def test_every_shared_module_imports_without_the_programs_libraries() -> None:
    modules = sorted(f"shared.{path.stem}" for path in Path(shared.__file__).parent.glob("*.py"))
    modules += sorted(f"shared.{path.parent.name}.{path.stem}" for path in Path(shared.__file__).parent.glob("*/*.py"))
    blocker = "".join(f"sys.modules[{name!r}] = None\n" for name in FORBIDDEN)
    program = f"import importlib, sys\n{blocker}for name in {modules!r}:\n    importlib.import_module(name)\n"
    completed = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert len(modules) > 10
