"""The settings' documentation, written from their declarations in ``dupe_scanner.settings``:
the commented sample ``settings.toml`` and the README's table of keys.

Edit a key's declaration, then write both again from the repository's top folder::

    python -m dupe_scanner.settings_docs          # rewrite settings.toml and the README's table
    python -m dupe_scanner.settings_docs --check  # exit 1 if either differs from the declarations

``tests/test_docs.py`` fails when they drift apart.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from itertools import groupby
from pathlib import Path
from typing import Any

from dupe_scanner.settings import REQUIRED, Declared, declared

SAMPLE_HEADER = """\
# dupe-scanner settings: the documented defaults.
#
# Commands look for this file in this order: --config PATH, ./settings.toml,
# /etc/dupe-scanner/settings.toml. Relative paths count from this file's folder.
# `dupe-scanner check-config` lists every problem at once. The running service picks up
# edits by itself (and on SIGHUP); an invalid edit is logged and the last good settings stay.
"""

RESTART = "takes effect at the next restart"
COMMENT_COLUMN = 34  # where the comment after a key starts
WIDTH = 100

# The README's table lies between these two lines.
TABLE_START = "<!-- settings table: written by `python -m dupe_scanner.settings_docs` from daemon/settings.py -->"
TABLE_END = "<!-- end of the settings table -->"


def toml_value(value: Any) -> str:
    """A default as settings.toml spells it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string, for the plain text defaults hold
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML spelling for {value!r}")


def plain(markdown: str) -> str:
    """A declaration's text for a comment: no backticks, links as their text."""
    return re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", markdown).replace("`", "")


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    return textwrap.wrap(
        text, width, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False, break_long_words=False
    )


def _tables() -> list[tuple[str, list[Declared]]]:
    return [(table, list(keys)) for table, keys in groupby(declared(), key=lambda entry: entry.table)]


def settings_toml() -> str:
    """The sample settings.toml: every key at its default, with what it does and why."""
    parts = [SAMPLE_HEADER]
    for table, keys in _tables():
        first = keys[0]
        # A table with a key that has no default (a [[watch]] folder) is shown commented out.
        commented = any(entry.setting.default is REQUIRED for entry in keys)
        prefix = "# " if commented else ""
        restart_all = all(entry.setting.restart for entry in keys)
        lines = []
        intro = [first.section.doc] if first.section is not None and first.section.doc else []
        if restart_all:
            intro.append("Changes here take effect at the next restart.")
        if intro:
            lines += _wrap(" ".join(intro), WIDTH - 2, "# ")
        lines.append(prefix + (f"[[{table}]]" if first.array else f"[{table}]"))
        for entry in keys:
            declaration = entry.setting
            value = declaration.example if declaration.default is REQUIRED else declaration.default
            text = plain(declaration.doc)
            if declaration.default is REQUIRED:
                text += " (required)"
            if declaration.restart and not restart_all:
                text += f"; {RESTART}"
            assignment = f"{prefix}{entry.name} = {toml_value(value)}"
            column = max(COMMENT_COLUMN, len(assignment) + 2)
            comment = _wrap(text, WIDTH - column - 2)
            lines.append(f"{assignment:<{column}}# {comment[0]}")
            lines += [f"{prefix.rstrip():<{column}}# {more}" for more in comment[1:]]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def readme_table() -> str:
    """The README's table of keys, between its two marker lines."""
    rows = [TABLE_START, "| key | default | meaning |", "|---|---|---|"]
    for entry in declared():
        declaration = entry.setting
        default = "(required)" if declaration.default is REQUIRED else f"`{toml_value(declaration.default)}`"
        meaning = declaration.doc + (f"; {RESTART}" if declaration.restart else "")
        rows.append(f"| `{entry.key}` | {default} | {meaning} |")
    rows.append(TABLE_END)
    return "\n".join(rows) + "\n"


def readme_with_table(readme: str) -> str:
    """``readme`` with the text between the table's marker lines written afresh."""
    start, end = readme.find(TABLE_START), readme.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no settings table between {TABLE_START!r} and {TABLE_END!r}")
    after = readme.index("\n", end) + 1 if "\n" in readme[end:] else len(readme)
    return readme[:start] + readme_table() + readme[after:]


def written(repository: Path) -> dict[Path, str]:
    """The two files as the declarations would have them."""
    readme = repository / "README.md"
    return {
        repository / "settings.toml": settings_toml(),
        readme: readme_with_table(readme.read_text(encoding="utf-8")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dupe_scanner.settings_docs",
        description="Write settings.toml and the README's settings table from the settings' declarations.",
    )
    parser.add_argument("repository", nargs="?", type=Path, default=Path("."), help="the repository's top folder (default: .)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file differs")
    arguments = parser.parse_args(argv)
    if not (arguments.repository / "README.md").is_file():
        parser.error(f"{arguments.repository} is not the repository's top folder: it has no README.md")
    drifted = []
    for path, text in written(arguments.repository).items():
        if path.read_text(encoding="utf-8") == text:
            continue
        drifted.append(path)
        if not arguments.check:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if arguments.check and drifted:
        for path in drifted:
            print(f"{path} differs from the settings' declarations", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
