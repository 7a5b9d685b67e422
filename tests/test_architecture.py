"""The dependency direction of DESIGN.md: web → engine ← connectors; engine imports no Flask."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "engine": {"web", "connectors", "cli", "flask"},
    "connectors": {"web", "cli", "flask"},
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_in_the_allowed_direction(package):
    files = list((ROOT / package).rglob("*.py"))
    if package == "engine":
        assert files, "engine/ must exist"
    bad = {}
    for f in files:
        hits = imported_roots(f) & FORBIDDEN[package]
        if hits:
            bad[str(f.relative_to(ROOT))] = sorted(hits)
    assert bad == {}


def test_the_walker_sees_a_forbidden_import(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import flask\nfrom web.app import x\n")
    assert imported_roots(f) == {"flask", "web"}


def test_every_top_folder_says_what_it_owns():
    for folder in ("engine", "connectors", "processes", "web", "bpmn_examples"):
        assert (ROOT / folder / "README.md").is_file(), folder
