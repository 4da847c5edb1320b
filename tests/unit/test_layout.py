"""The layout a newcomer reads: no import cycle, small modules, stores and serving below nothing of theirs,
a README that is a front page linking docs/ pages that exist."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "qa"
MODULE_MAX_LINES = 400
README_MAX_LINES = 250
DOC_PAGES = ("architecture", "operations", "stores", "capacity", "evaluation")


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_import_cycle_inside_qa() -> None:
    run = subprocess.run(
        [sys.executable, "scripts/import_cycles.py"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_over_400_lines(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MODULE_MAX_LINES


def test_the_core_imports_neither_the_http_service_nor_a_store_engine() -> None:
    """Imports point down: the pipeline knows the store protocols (`qa.stores.base`) and the factory, never an
    engine or the HTTP layer; only the factory and the engines themselves name an engine."""
    core = [p for p in PACKAGE.glob("*.py") if p.name != "cli.py"]  # the CLI is the top: it may start a server
    for path in core:
        for name in imported(path):
            assert not name.startswith("qa.serve"), f"{path.name} imports {name}"
            assert not name.startswith(("qa.stores.faiss", "qa.stores.milvus")), f"{path.name} imports {name}"


def test_store_base_is_a_leaf_of_the_stores_package() -> None:
    names = imported(PACKAGE / "stores" / "base.py")
    assert not {n for n in names if n.startswith("qa.stores.") or n.startswith("qa.serve")}


def test_the_milvus_store_is_reached_only_through_the_factory() -> None:
    outside = [p for p in modules() if "stores" not in p.relative_to(PACKAGE).parts]
    for path in outside:
        assert not any(n.startswith("qa.stores.milvus") for n in imported(path)), path


def test_the_readme_is_a_front_page_that_links_every_docs_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES
    assert readme.lstrip().startswith("# ")
    first_block = readme.split("```", 2)[1]
    assert "make serve" in first_block and "make test" in first_block  # the two commands come first
    for page in DOC_PAGES:
        assert f"docs/{page}.md" in readme, page
        assert (ROOT / "docs" / f"{page}.md").is_file(), page


def test_every_relative_link_in_the_docs_resolves() -> None:
    broken = []
    for doc in [ROOT / "README.md", ROOT / "index" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0]
            if not (doc.parent / path).exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert not broken


def test_every_setting_is_in_the_settings_reference() -> None:
    from dataclasses import fields

    from qa.config import Settings

    reference = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    missing = [f.name for f in fields(Settings) if f"`QA_{f.name.upper()}`" not in reference]
    assert not missing
