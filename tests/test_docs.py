"""Every settings key is documented, in settings.toml and in the README."""

import re
from pathlib import Path

import pytest

from dupe_scanner.settings import declared

REPO = Path(__file__).resolve().parent.parent
KEYS = [(entry.table, entry.name) for entry in declared()]


@pytest.mark.parametrize("table, key", KEYS, ids=[f"{t}.{k}" for t, k in KEYS])
def test_settings_toml_documents_the_key_with_a_comment(table, key):
    text = (REPO / "settings.toml").read_text()
    header = "[[watch]]" if table == "watch" else f"[{table}]"
    section = text[text.index(header):]
    line = re.search(rf"^#?\s*{key}\s*=.*#\s*\S+", section, re.MULTILINE)
    assert line, f"settings.toml has no commented line for {table}.{key}"


@pytest.mark.parametrize("table, key", KEYS, ids=[f"{t}.{k}" for t, k in KEYS])
def test_the_readme_documents_the_key(table, key):
    assert f"`{table}.{key}`" in (REPO / "README.md").read_text(), f"README.md does not mention `{table}.{key}`"


def test_the_changelog_names_the_current_analyser_verifier_and_state_revision():
    from dupe_scanner.analysis.features import ANALYSER, MAGIC
    from dupe_scanner.analysis.verify import VERIFIER

    changelog = (REPO / "CHANGELOG.md").read_text()
    revisions = sorted(path.name.split("_")[0] for path in (REPO / "migrations" / "versions").glob("[0-9]*_*.py"))
    for name in (ANALYSER, VERIFIER, MAGIC.decode(), revisions[-1]):
        assert f"`{name}`" in changelog, f"CHANGELOG.md does not record {name}"
