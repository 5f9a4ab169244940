"""docs/security.md's threat model names its proof for each row: every test it names exists, and every attack test
is named there, so the table and this folder cannot drift apart."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
TABLE_HEADING = "## Threat model"
NAMED = re.compile(r"`((?:attacks/)?test_\w+\.py)?::(test_\w+)`")


def _threat_model_rows() -> list[str]:
    text = (ROOT / "docs" / "security.md").read_text()
    section = text.split(TABLE_HEADING, 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| Attacker")]


def _named_tests() -> set[tuple[str, str]]:
    """(path under tests/e2e, test name) for each test the table names; `::name` alone means the file named before."""
    named: set[tuple[str, str]] = set()
    for row in _threat_model_rows():
        current = None
        for path, name in NAMED.findall(row.split(" | ")[-1]):
            current = path or current
            assert current is not None, f"a test named without its file: {name}"
            named.add((current, name))
    return named


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_test_the_threat_model_names_exists() -> None:
    missing = [
        f"{path}::{name}"
        for path, name in sorted(_named_tests())
        if name not in _tests_in(ROOT / "tests" / "e2e" / path)
    ]
    assert not missing, missing


def test_every_attack_test_is_a_row_of_the_threat_model() -> None:
    named = {name for path, name in _named_tests() if path.startswith("attacks/")}
    attacks = ROOT / "tests" / "e2e" / "attacks"
    unnamed = [
        f"{module.name}::{name}"
        for module in sorted(attacks.glob("test_*.py"))
        if module.name != Path(__file__).name
        for name in sorted(_tests_in(module) - named)
    ]
    assert not unnamed, f"add these to docs/security.md's threat model: {unnamed}"
