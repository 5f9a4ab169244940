"""docs/vm-tier.md names every type docs/operations.md runs on Linux, each with the VM tests that run it (which must
exist) or with why it is not covered. Part of the main suite: it reads files only, no VM."""

import ast
import re
from pathlib import Path

from shared.operations import Platform
from tests.agent.test_catalogue import read_table

DOCS = Path(__file__).resolve().parents[2] / "docs"
TESTS = Path(__file__).parent
NOT_COVERED = re.compile(r"^not covered( yet)? — \S")
TEST_REFERENCE = re.compile(r"`(test_[a-z_]+\.py)::(test_[a-z0-9_]+)`")


def coverage() -> dict[str, str]:
    rows = {}
    for line in (DOCS / "vm-tier.md").read_text().splitlines():
        match = re.fullmatch(r"\| `([A-Z_]+)` \| (.+) \|", line)
        if match:
            assert match[1] not in rows, f"{match[1]} is listed twice"
            rows[match[1]] = match[2]
    return rows


def test_every_type_that_runs_on_linux_is_covered_or_says_why_not() -> None:
    linux = {row.type_name for row in read_table((DOCS / "operations.md").read_text()) if row.supported(Platform.LINUX)}
    rows = coverage()
    assert set(rows) == linux, f"missing: {sorted(linux - set(rows))}; not Linux types: {sorted(set(rows) - linux)}"
    for type_name, cell in rows.items():
        assert TEST_REFERENCE.search(cell) or NOT_COVERED.match(cell), f"{type_name}: {cell!r}"


def test_every_test_the_table_names_exists() -> None:
    defined = {
        (path.name, node.name)
        for path in TESTS.glob("test_*.py")
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }
    named = {reference for cell in coverage().values() for reference in TEST_REFERENCE.findall(cell)}
    assert named
    assert named <= defined, sorted(named - defined)
