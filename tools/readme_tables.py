"""Copy generated markdown files into the README, so the README shows them without anyone retyping a number.

    python tools/readme_tables.py

A block of the README between ``<!-- generated from PATH -->`` and ``<!-- end of PATH -->`` is replaced
by the file at PATH (relative to the repository). tests/test_readme.py checks that every block
equals its file, so a README table cannot drift from the measurement it shows.
"""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BLOCK = re.compile(r"(<!-- generated from (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- end of (?P=path) -->)", re.DOTALL)


def blocks(text: str) -> list[tuple[str, str]]:
    """(path, body) of every generated block of ``text``."""
    return [(match["path"], match["body"]) for match in BLOCK.finditer(text)]


def filled(text: str) -> str:
    """``text`` with every generated block replaced by its file's current content."""
    def replace(match: re.Match) -> str:
        source = REPO / match["path"]
        if not source.is_file():
            raise SystemExit(f"{README.name}: {match['path']} does not exist — run what writes it first")
        return f"{match.group(1)}{source.read_text()}{match.group(4)}"
    return BLOCK.sub(replace, text)


def main() -> None:
    text = README.read_text()
    new = filled(text)
    if new != text:
        README.write_text(new)
    print(f"{README.name}: {len(blocks(new))} generated blocks" + (" updated" if new != text else " already current"))


if __name__ == "__main__":
    main()
