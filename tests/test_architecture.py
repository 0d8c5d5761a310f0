"""docs/architecture.md stays true: every module it names exists, and every module is named."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
PACKAGES = ["course_lib", "course_lib/grading", "course_lib/runners", "course_solutions"]


def _modules() -> dict[str, Path]:
    return {f"{pkg}/{p.name}": p for pkg in PACKAGES for p in sorted((ROOT / pkg).glob("*.py"))
            if p.name != "__init__.py"}


def _named(stem: str) -> bool:
    """The page names a module as `stem.py`, `.../stem.py` or `stem.attribute`."""
    return re.search(rf"[`/]{re.escape(stem)}(\.py\b|\.\w)", DOC) is not None


def test_every_module_is_on_the_architecture_page():
    missing = sorted(path for path, p in _modules().items() if not _named(p.stem))
    assert not missing, f"docs/architecture.md does not name these modules: {missing}"


def test_every_module_the_page_names_exists():
    names = set(re.findall(r"\b(\w+\.py)\b", DOC))
    existing = {p.name for p in _modules().values()}
    elsewhere = {p.name for p in (*ROOT.glob("tests/*.py"), *ROOT.glob("notebooks/*/*.py"))}
    gone = sorted(names - existing - elsewhere)
    assert not gone, f"docs/architecture.md names modules that do not exist: {gone}"
