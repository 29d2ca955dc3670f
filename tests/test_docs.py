"""Every settings key is documented, in settings.toml and in the README, both written from
the keys' declarations (``python -m dupe_scanner.settings_docs``)."""

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


@pytest.mark.parametrize("entry", list(declared()), ids=[entry.key for entry in declared()])
def test_every_key_says_what_it_is_for(entry):
    assert entry.setting.doc.strip(), f"{entry.key} is declared without a text for the README and settings.toml"


def test_settings_toml_and_the_readme_table_are_written_from_the_declarations():
    from dupe_scanner.settings_docs import written

    for path, text in written(REPO).items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} differs from the settings' declarations in daemon/settings.py: "
            "run `python -m dupe_scanner.settings_docs` and commit the result"
        )


def test_settings_toml_sets_every_key_to_its_default(tmp_path):
    import tomllib

    from dupe_scanner.settings import WatchSettings, parse_settings
    from dupe_scanner.settings_docs import settings_toml

    text = settings_toml()
    sample = parse_settings(tomllib.loads(text), base_dir=tmp_path, source=None)
    assert sample == parse_settings({}, base_dir=tmp_path, source=None)
    # The [[watch]] table is there commented out (a folder has no default): taken in, it
    # gives its example folder with every other key at its default.
    lines = text.splitlines()
    start = lines.index("# [[watch]]")
    block = [line[2:] for line in lines[start : lines.index("", start)]]
    watch = parse_settings(tomllib.loads("\n".join(block)), base_dir=tmp_path, source=None).watch
    assert watch == (WatchSettings(path=Path("/srv/photos").resolve()),)


def test_the_keys_documented_as_needing_a_restart_are_those_the_service_keeps():
    from dupe_scanner.service.live_settings import RESTART_NEEDED

    for entry in declared():
        kept = any(entry.key == key or entry.key.startswith(f"{key}.") for key in RESTART_NEEDED)
        assert entry.setting.restart == kept, f"{entry.key}: restart={entry.setting.restart}, but the service {'keeps' if kept else 'applies'} it"
