"""Writing one benchmark's section of BENCHMARKS.md, keeping every other section."""

from __future__ import annotations

import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def write_section(section: str, path: Path = BENCHMARKS) -> Path:
    """Replace (or append) the section whose ``## Title`` line opens ``section``."""
    title = section.lstrip().splitlines()[0]
    if not title.startswith("## "):
        raise ValueError(f"a section starts with '## ', not {title!r}")
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    block = section.strip() + "\n\n"
    if pattern.search(current):
        updated = pattern.sub(lambda _: block, current, count=1)
    else:
        updated = current.rstrip() + "\n\n" + block
    path.write_text(updated.rstrip() + "\n")
    return path
