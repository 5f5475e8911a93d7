"""The README's layout section names every module of the package's core (src/spot, evaluate/, rectify/) and
every subpackage, so it stays true to the tree as files come and go."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPOT = ROOT / "src" / "spot"


def layout_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Layout"):]
    return section.split("```")[1]


def test_the_readme_layout_names_every_core_module_and_every_subpackage():
    block = layout_block()
    core = [p for d in (SPOT, SPOT / "evaluate", SPOT / "rectify") for p in sorted(d.glob("*.py"))
            if p.name != "__init__.py"]
    missing = [str(p.relative_to(SPOT)) for p in core if not re.search(rf"\b{re.escape(p.name)}", block)]
    packages = [d for d in sorted(SPOT.rglob("*")) if d.is_dir() and (d / "__init__.py").exists()]
    missing += [f"{d.relative_to(SPOT)}/" for d in packages if f"{d.name}/" not in block]
    assert not missing, f"README's layout does not name: {', '.join(missing)}"
    for entry in ("train.py", "evaluate.py", "rectify.py", "report.py"):
        assert entry in block and (ROOT / entry).exists()
