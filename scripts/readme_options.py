#!/usr/bin/env python3
"""Rewrite the option table under "### Config file" in README.md from klink_sync.config.

The options are declared once, in klink_sync/config.py (OPTIONS); the README's table is
generated from them. Run this after adding or changing an option:

    .venv/bin/python scripts/readme_options.py           # rewrite README.md's table
    .venv/bin/python scripts/readme_options.py --check   # exit 1 if it is behind

tests/unit/test_option_table.py fails while README.md and the declaration disagree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
HEADING = "### Config file"

sys.path.insert(0, str(ROOT))  # works from a checkout, installed or not
from klink_sync.config import readme_table  # noqa: E402


def table_span(readme: str) -> tuple[int, int]:
    """Where the first table under HEADING is, as character offsets (start, end): its lines
    are the first run of lines starting with '|' before the next heading.
    """
    at = readme.find(f"\n{HEADING}\n")
    if at < 0:
        raise ValueError(f"README.md has no '{HEADING}' heading")
    pos = at + len(HEADING) + 2
    start = None
    for line in readme[pos:].splitlines(keepends=True):
        if line.startswith("|"):
            start = pos if start is None else start
        elif start is not None:
            return start, pos
        elif line.startswith("#"):
            break
        pos += len(line)
    if start is None:
        raise ValueError(f"README.md has no table under '{HEADING}'")
    return start, pos


def current_table(readme: str) -> str:
    """The option table README.md holds now (lines with their newlines)."""
    start, end = table_span(readme)
    return readme[start:end]


def rewrite(readme: str) -> str:
    """README.md's text with the option table replaced by the one made from the declaration."""
    start, end = table_span(readme)
    return readme[:start] + readme_table() + readme[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if README.md's table is behind"
    )
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    new = rewrite(text)
    if new == text:
        print("README.md: the option table is up to date")
        return 0
    if args.check:
        print("README.md: the option table is behind; run scripts/readme_options.py")
        return 1
    README.write_text(new, encoding="utf-8")
    print("README.md: option table rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
