"""The state database: created and upgraded by the program itself, WAL, a durable queue."""

import sqlite3

import pytest
from sqlalchemy import Connection, event, inspect

from dupe_scanner.backends.base import ImageInfo, ScoredPair
from dupe_scanner.store import contents as content_store
from dupe_scanner.store import files as file_store
from dupe_scanner.store import fingerprints
from dupe_scanner.store.database import current_revision, head_revision, open_state, read_transaction, upgrade, write_transaction
from dupe_scanner.store.files import FileStat, KnownFile
from dupe_scanner.store.schema import metadata

STAT = FileStat(size=10, mtime_ns=1_000, inode=1, device=1)


def known(connection: Connection, path: str) -> KnownFile:
    """The state's row for ``path``, which the test has put there."""
    found = file_store.get_by_path(connection, path)
    assert found is not None, path
    return found


def test_a_new_state_is_created_at_the_newest_revision_in_wal_mode(tmp_path):
    engine = open_state(tmp_path / "deep" / "state.db")
    assert current_revision(engine) == head_revision()
    with sqlite3.connect(tmp_path / "deep" / "state.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_unit_of_work_waits_30_s_for_a_lock_unless_told_otherwise(tmp_path):
    for engine, milliseconds in ((open_state(tmp_path / "a.db"), 30_000), (open_state(tmp_path / "b.db", 0.25), 250)):
        with read_transaction(engine) as connection:
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == milliseconds
        engine.dispose()


def test_migrations_build_exactly_the_schema_the_code_describes(tmp_path):
    engine = open_state(tmp_path / "state.db")
    tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    assert tables == set(metadata.tables)
    for name, table in metadata.tables.items():
        assert {c["name"] for c in inspect(engine).get_columns(name)} == {c.name for c in table.columns}
        assert {i["name"] for i in inspect(engine).get_indexes(name)} == {i.name for i in table.indexes}, name


def test_downgrade_to_empty_and_upgrade_again_keeps_working(tmp_path):
    engine = open_state(tmp_path / "state.db")
    from alembic import command

    from dupe_scanner.store.database import alembic_config

    with engine.connect() as connection:
        command.downgrade(alembic_config(connection), "base")
        connection.commit()
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()


def test_reopening_an_existing_state_keeps_its_rows(tmp_path):
    engine = open_state(tmp_path / "state.db")
    with write_transaction(engine) as connection:
        file_store.mark_seen(connection, "/p/a.jpg", STAT, now=1.0)
    engine.dispose()
    engine = open_state(tmp_path / "state.db")
    with read_transaction(engine) as connection:
        assert known(connection, "/p/a.jpg").state == "pending"


def test_seen_files_queue_once_and_again_only_when_they_change(tmp_path):
    engine = open_state(tmp_path / "state.db")
    with write_transaction(engine) as connection:
        assert file_store.mark_seen(connection, "/p/a.jpg", STAT, now=1.0)
        job = file_store.due(connection, now=2.0, limit=10)[0]
        content_store.record_content(connection, "h1", ImageInfo(4, 3, "JPEG"), now=2.0)
        file_store.mark_indexed(connection, job, "h1", STAT, now=2.0)
        assert not file_store.mark_seen(connection, "/p/a.jpg", STAT, now=3.0)
        assert file_store.due(connection, now=3.0, limit=10) == []
        assert file_store.mark_seen(connection, "/p/a.jpg", FileStat(11, 2_000, 1, 1), now=4.0)
        assert [j.path for j in file_store.due(connection, now=4.0, limit=10)] == ["/p/a.jpg"]


def test_a_retry_waits_until_it_is_due(tmp_path):
    engine = open_state(tmp_path / "state.db")
    with write_transaction(engine) as connection:
        file_store.mark_seen(connection, "/p/a.jpg", STAT, now=1.0)
        job = file_store.due(connection, now=1.0, limit=1)[0]
        file_store.retry_later(connection, job, "backend down", at=100.0)
        assert file_store.due(connection, now=50.0, limit=1) == []
        assert file_store.due(connection, now=100.0, limit=1)[0].attempts == 1


def test_known_under_a_folder_does_not_include_its_siblings(tmp_path):
    engine = open_state(tmp_path / "state.db")
    with write_transaction(engine) as connection:
        for path in ["/p/a.jpg", "/p/sub/b.jpg", "/p2/c.jpg", "/p-other/d.jpg"]:
            file_store.mark_seen(connection, path, STAT, now=1.0)
        assert sorted(path for path, _, _ in file_store.signatures_under(connection, "/p")) == ["/p/a.jpg", "/p/sub/b.jpg"]


def test_a_move_keeps_the_analysis(tmp_path):
    engine = open_state(tmp_path / "state.db")
    with write_transaction(engine) as connection:
        file_store.mark_seen(connection, "/p/a.jpg", STAT, now=1.0)
        job = file_store.due(connection, now=1.0, limit=1)[0]
        content_store.record_content(connection, "h1", ImageInfo(4, 3, "JPEG"), now=1.0)
        file_store.mark_indexed(connection, job, "h1", STAT, now=1.0)
        assert file_store.move(connection, "/p/a.jpg", "/q/b.jpg", STAT, now=2.0)
        moved = known(connection, "/q/b.jpg")
    assert moved.state == "indexed" and moved.content_hash == "h1"


def test_contents_no_file_holds_are_orphans_and_take_their_pairs_along(tmp_path):
    engine = open_state(tmp_path / "state.db")
    with write_transaction(engine) as connection:
        for path, digest in [("/p/a.jpg", "h1"), ("/p/b.jpg", "h2")]:
            file_store.mark_seen(connection, path, STAT, now=1.0)
            content_store.record_content(connection, digest, ImageInfo(4, 3, "JPEG"), now=1.0)
            file_store.mark_indexed(connection, known(connection, path), digest, STAT, now=1.0)
        content_store.replace_pairs(connection, [ScoredPair.of("h2", "h1", 0.8)], changed=None)
        file_store.mark_gone(connection, ["/p/b.jpg"], now=2.0)
        assert content_store.orphaned_contents(connection, gone_before=1.0) == []  # it may come back
        orphans = content_store.orphaned_contents(connection, gone_before=3.0)
        assert orphans == ["h2"]
        content_store.delete_contents(connection, orphans)
        assert list(content_store.stored_pairs(connection, 0.0)) == []


def test_a_content_is_an_orphan_only_when_no_file_holds_it_any_more(tmp_path):
    engine = open_state(tmp_path / "state.db")
    with write_transaction(engine) as connection:
        held = [("/p/live.jpg", "kept"), ("/p/moved-away.jpg", "kept"), ("/p/gone.jpg", "lost"), ("/p/recent.jpg", "recent")]
        for path, digest in held:
            file_store.mark_seen(connection, path, STAT, now=1.0)
            content_store.record_content(connection, digest, ImageInfo(4, 3, "JPEG"), now=1.0)
            file_store.mark_indexed(connection, known(connection, path), digest, STAT, now=1.0)
        content_store.record_content(connection, "never-held", ImageInfo(4, 3, "JPEG"), now=1.0)
        file_store.mark_gone(connection, ["/p/moved-away.jpg", "/p/gone.jpg"], now=2.0)
        file_store.mark_gone(connection, ["/p/recent.jpg"], now=5.0)

        assert content_store.orphaned_contents(connection, gone_before=3.0) == ["lost", "never-held"]


def test_an_analysis_is_not_recorded_over_a_file_that_changed_meanwhile(tmp_path):
    engine = open_state(tmp_path / "state.db")
    with write_transaction(engine) as connection:
        file_store.mark_seen(connection, "/p/a.jpg", STAT, now=1.0)
        file_store.mark_seen(connection, "/p/b.jpg", STAT, now=1.0)
        job_a, job_b = file_store.due(connection, now=1.0, limit=2)
        content_store.record_content(connection, "h1", ImageInfo(4, 3, "JPEG"), now=1.0)
        # While they were analysed, a.jpg was rewritten and b.jpg deleted.
        file_store.mark_seen(connection, "/p/a.jpg", FileStat(99, 5_000, 1, 1), now=2.0)
        file_store.mark_gone(connection, ["/p/b.jpg"], now=2.0)
        assert not file_store.mark_indexed(connection, job_a, "h1", STAT, now=3.0)
        assert not file_store.mark_indexed(connection, job_b, "h1", STAT, now=3.0)
        assert known(connection, "/p/a.jpg").state == "pending"
        assert known(connection, "/p/a.jpg").stat.size == 99
        assert known(connection, "/p/b.jpg").state == "gone"


def test_upgrading_from_the_previous_revision_keeps_rows_and_adds_decisions(tmp_path):
    from dupe_scanner.store import decisions as decision_store

    engine = state_downgraded_to(tmp_path, "0001")
    with write_transaction(engine) as connection:
        file_store.mark_seen(connection, "/p/a.jpg", STAT, now=1.0)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with read_transaction(engine) as connection:
        assert file_store.get_by_path(connection, "/p/a.jpg") is not None
        assert decision_store.count(connection) == 0


def test_a_decision_is_recorded_once_and_undone(tmp_path):
    from dupe_scanner.decisions import DecidedContent
    from dupe_scanner.store import decisions as decision_store

    engine = open_state(tmp_path / "state.db")
    contents = [DecidedContent("a" * 64, "/p/a.jpg"), DecidedContent("b" * 64, "/p/b.jpg")]
    with write_transaction(engine) as connection:
        first = decision_store.add(connection, "not-duplicates", contents, 1.0, "test")
        again = decision_store.add(connection, "not-duplicates", reversed(contents), 2.0, "test")
    assert again == first
    with read_transaction(engine) as connection:
        decisions = decision_store.load(connection)
    assert decisions.forbidden_pairs() == {frozenset(("a" * 64, "b" * 64))}
    with write_transaction(engine) as connection:
        assert decision_store.remove(connection, first.id)
        assert not decision_store.remove(connection, first.id)
        assert decision_store.count(connection) == 0


def test_the_hashes_of_features_stored_before_the_upgrade_are_copied_and_kept_in_step(tmp_path):
    from sqlalchemy import delete, insert, select, update

    from dupe_scanner.store.schema import feature_hashes, features

    engine = state_downgraded_to(tmp_path, "0002")
    blob = b"DSF3" + bytes(range(64)) + b"the rest of the fingerprint" * 700
    with write_transaction(engine) as connection:
        connection.execute(insert(features).values(hash="old", analyser="embedded-a", data=blob))
    upgrade(engine)

    def copied(connection):
        return {row.hash: (row.analyser, row.prefix) for row in connection.execute(select(feature_hashes))}

    with write_transaction(engine) as connection:
        assert copied(connection) == {"old": ("embedded-a", blob[:68])}
        connection.execute(insert(features).values(hash="new", analyser="embedded-a", data=blob[::-1]))
        connection.execute(update(features).where(features.c.hash == "old").values(analyser="embedded-b"))
        assert copied(connection) == {"old": ("embedded-b", blob[:68]), "new": ("embedded-a", blob[::-1][:68])}
        connection.execute(delete(features).where(features.c.hash == "old"))
        assert set(copied(connection)) == {"new"}
        connection.execute(delete(features))
        assert copied(connection) == {}


def test_a_decision_keeps_a_path_that_is_not_utf8(tmp_path):
    """A review page exports such a name (``caf\\udce9.jpg``); recording it used to fail with a traceback."""
    from dupe_scanner.decisions import DecidedContent
    from dupe_scanner.store import decisions as decision_store

    engine = open_state(tmp_path / "state.db")
    with write_transaction(engine) as connection:
        decision_store.add(connection, "keep", [DecidedContent("c" * 64, "/p/caf\udce9.jpg")], 1.0, "test")
    with read_transaction(engine) as connection:
        [decision] = decision_store.load(connection).all
    assert [content.path for content in decision.contents] == ["/p/caf\udce9.jpg"]


def state_with_pairs(tmp_path, found: list[ScoredPair]):
    """A state whose contents are those ``found`` names, with ``found`` stored as a scan stores its pairs."""
    engine = open_state(tmp_path / "state.db")
    with write_transaction(engine) as connection:
        for digest in sorted({key for pair in found for key in (pair.first, pair.second)}):
            content_store.record_content(connection, digest, ImageInfo(4, 3, "JPEG"), now=1.0)
        content_store.replace_pairs(connection, found, changed=None)
    return engine


@pytest.mark.parametrize("looked_up_up_to", [32, 2], ids=["pairs looked up", "each content's pairs read"])
def test_grouping_weighs_the_pairs_inside_each_set_of_matching_contents_and_none_between_sets_or_to_strangers(
    tmp_path, monkeypatch, looked_up_up_to
):
    monkeypatch.setattr(content_store, "LOOKED_UP_UP_TO", looked_up_up_to)
    found = [
        ScoredPair.of("a", "b", 0.9),
        ScoredPair.of("b", "c", 0.8),
        ScoredPair.of("a", "c", 0.4),  # below the threshold, inside a set the matches join: grouping weighs it
        ScoredPair.of("d", "e", 0.7),
        ScoredPair.of("c", "d", 0.3),  # between two sets: no group can hold both
        ScoredPair.of("c", "stranger", 0.5),  # the stranger matches nothing
        ScoredPair.of("d", "stranger", 0.3),
    ]
    engine = state_with_pairs(tmp_path, found)

    with read_transaction(engine) as connection:
        read = sorted((pair.first, pair.second, pair.score) for pair in content_store.pairs_grouping_weighs(connection, 0.6))

    assert read == [("a", "b", 0.9), ("a", "c", 0.4), ("b", "c", 0.8), ("d", "e", 0.7)]


def test_pairs_are_stored_a_batch_at_a_time_the_last_score_of_a_pair_standing(tmp_path, monkeypatch):
    monkeypatch.setattr(content_store, "PAIR_WRITES", 2)
    engine = open_state(tmp_path / "state.db")
    with write_transaction(engine) as connection:
        for digest in ("a", "b", "c", "d"):
            content_store.record_content(connection, digest, ImageInfo(4, 3, "JPEG"), now=1.0)
        found = [
            ScoredPair.of("a", "b", 0.9),
            ScoredPair.of("b", "c", 0.1),
            ScoredPair.of("c", "gone-meanwhile", 0.8),  # its content went during the scan
            ScoredPair.of("c", "d", 0.7),
            ScoredPair.of("c", "b", 0.4),  # the pair again, in a later batch: this score stands
        ]
        written = content_store.replace_pairs(connection, iter(found), changed=None)  # read once, as the scan hands it over
    with read_transaction(engine) as connection:
        stored = sorted((pair.first, pair.second, pair.score) for pair in content_store.stored_pairs(connection, 0.0))
    assert stored == [("a", "b", 0.9), ("b", "c", 0.4), ("c", "d", 0.7)]
    assert written == 4  # rows written, the pair written twice counted twice


def test_a_twins_settled_verdicts_are_the_stored_pairs_asked_for_between_contents_compared_already(tmp_path):
    found = [
        ScoredPair.of("original", "crop", 0.8),
        ScoredPair.of("stranger", "original", 0.2),
        ScoredPair.of("original", "awaiting", 0.9),  # from a comparison the scan will make again
        ScoredPair.of("crop", "stranger", 0.1),  # not asked for
    ]
    engine = state_with_pairs(tmp_path, found)
    with write_transaction(engine) as connection:
        content_store.mark_scanned(connection, ["original", "crop", "stranger"])

    asked = [("crop", "original"), ("original", "stranger"), ("awaiting", "original"), ("crop", "never-compared")]
    with read_transaction(engine) as connection:
        read = sorted((pair.first, pair.second, pair.score) for pair in content_store.compared_pairs(connection, asked))

    assert read == [("crop", "original", 0.8), ("original", "stranger", 0.2)]


def test_a_scans_new_contents_fingerprints_are_looked_up_by_key_not_found_by_walking_every_one(tmp_path):
    engine = open_state(tmp_path / "state.db")
    with write_transaction(engine) as connection:
        for number in range(300):
            fingerprints.store(connection, f"{number:064x}", "analyser-1", b"DSF3" + bytes(64))
    new = [f"{number:064x}" for number in range(200, 300)]  # a scan of 100 new pictures asks for theirs
    rows: list[tuple[str, bytes, float]] = []
    present: set[str] = set()

    def read(connection: Connection) -> None:
        rows.extend(fingerprints.hash_rows(connection, "analyser-1", new))
        present.update(fingerprints.present(connection, [*new, "never analysed"], "analyser-1"))

    plans = plans_of_selects(engine, read)

    assert [key for key, *_ in rows] == new and present == set(new)
    assert len(plans) == 2 and all("ix_feature_hashes_analyser" not in plan for plan in plans), plans  # every row has the analyser


def plans_of_selects(engine, run) -> list[str]:
    """SQLite's query plan of each SELECT ``run(connection)`` makes, in a read transaction."""
    statements: list[tuple[str, tuple]] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cursor, statement, parameters, *_: statements.append((statement, parameters)))
    with read_transaction(engine) as connection:
        run(connection)
    database = engine.url.database
    with sqlite3.connect(database) as raw:
        return [str(raw.execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()) for statement, parameters in statements
                if statement.lstrip().upper().startswith("SELECT")]


def test_the_verdicts_a_scan_asks_for_are_looked_up_pair_by_pair_not_found_by_walking_every_content(tmp_path):
    found = [ScoredPair.of(f"{number:064x}", f"{number + 1:064x}", 0.5) for number in range(0, 600, 2)]
    engine = state_with_pairs(tmp_path, found)
    with write_transaction(engine) as connection:
        content_store.mark_scanned(connection, [key for pair in found for key in (pair.first, pair.second)])
    asked = [(pair.first, pair.second) for pair in found[:100]]

    read: list[ScoredPair] = []
    plans = plans_of_selects(engine, lambda connection: read.extend(content_store.compared_pairs(connection, asked)))

    assert sorted((pair.first, pair.second) for pair in read) == sorted(asked)
    assert len(plans) == 1 and "ix_contents_needs_scan" not in plans[0] and "(first=? AND second=?)" in plans[0], plans


def test_the_matching_pairs_are_read_on_the_scores_index_not_found_among_every_verdict(tmp_path):
    rejected = [ScoredPair.of(f"{number:064x}", f"{number + 1:064x}", 0.3) for number in range(0, 600, 2)]
    matching = [ScoredPair.of("original", "crop", 0.9), ScoredPair.of("crop", "caption", 0.6)]
    engine = state_with_pairs(tmp_path, [*rejected, *matching])

    read: list[ScoredPair] = []
    plans = plans_of_selects(engine, lambda connection: read.extend(content_store.matching_pairs(connection, 0.6)))

    assert {(pair.first, pair.second) for pair in read} == {(pair.first, pair.second) for pair in matching}
    assert len(plans) == 1 and "USING INDEX ix_pairs_score (score>?)" in plans[0], plans  # not SCAN pairs


def state_downgraded_to(tmp_path, revision: str):
    """A new state taken back to ``revision``, as an older version left it."""
    from alembic import command

    from dupe_scanner.store.database import alembic_config

    engine = open_state(tmp_path / "state.db")
    with engine.connect() as connection:
        command.downgrade(alembic_config(connection), revision)
        connection.commit()
    return engine


def indexed(connection, held: list[tuple[str, str]]) -> None:
    """Each (path, content) of ``held`` seen and indexed, as the indexer records them."""
    for path, digest in held:
        file_store.mark_seen(connection, path, STAT, now=1.0)
        content_store.record_content(connection, digest, ImageInfo(4, 3, "JPEG"), now=1.0)
        file_store.mark_indexed(connection, known(connection, path), digest, STAT, now=1.0)


def file_counts(connection) -> dict[str, int]:
    """Each content's kept count of the file rows naming it, beside the count of those rows."""
    from sqlalchemy import select

    from dupe_scanner.store.schema import contents, files

    kept = {row.hash: row.file_count for row in connection.execute(select(contents.c.hash, contents.c.file_count))}
    named = {content: 0 for content in kept}
    for (content,) in connection.execute(select(files.c.content_hash).where(files.c.content_hash.is_not(None))):
        named[content] += 1
    assert kept == named, "the kept counts drifted from the files"
    return kept


def test_each_contents_count_of_files_follows_every_change_of_the_files_naming_it(tmp_path):
    engine = open_state(tmp_path / "state.db")
    with write_transaction(engine) as connection:
        indexed(connection, [("/p/a.jpg", "h1"), ("/p/copy-of-a.jpg", "h1"), ("/p/b.jpg", "h2")])
        content_store.record_content(connection, "h2", ImageInfo(4, 3, "JPEG"), now=2.0)  # analysed again: the count stays
        assert file_counts(connection) == {"h1": 2, "h2": 1}
        assert file_store.copied_contents(connection) == {"h1"}

        file_store.mark_seen(connection, "/p/copy-of-a.jpg", FileStat(99, 5_000, 1, 1), now=3.0)  # edited: waits, still names h1
        file_store.mark_indexed(connection, known(connection, "/p/copy-of-a.jpg"), "h2", STAT, now=3.0)  # now holds h2
        assert file_counts(connection) == {"h1": 1, "h2": 2}

        assert file_store.move(connection, "/p/b.jpg", "/q/b.jpg", STAT, now=4.0)
        file_store.mark_gone(connection, ["/p/a.jpg"], now=4.0)  # a gone file still names its content
        assert file_counts(connection) == {"h1": 1, "h2": 2}
        assert file_store.forget_gone(connection, older_than=5.0) == 1
        assert file_counts(connection) == {"h1": 0, "h2": 2}
        assert content_store.orphaned_contents(connection, gone_before=5.0) == ["h1"]

        file_store.requeue_contents(connection, ["h2"], now=6.0)  # to be indexed again, still naming h2
        assert file_counts(connection) == {"h1": 0, "h2": 2}
        for path in ("/q/b.jpg", "/p/copy-of-a.jpg"):
            file_store.mark_indexed(connection, known(connection, path), "h2", STAT, now=7.0)
        content_store.delete_contents(connection, ["h2"])  # its files' link is set to NULL
        content_store.record_content(connection, "h2", ImageInfo(4, 3, "JPEG"), now=8.0)
        assert file_counts(connection) == {"h1": 0, "h2": 0}

        content_store.delete_all_contents(connection)
        file_store.delete_all(connection)
        assert file_counts(connection) == {}


def test_the_files_of_contents_stored_before_the_upgrade_are_counted_and_a_downgrade_keeps_every_row(tmp_path):
    engine = open_state(tmp_path / "state.db")
    with write_transaction(engine) as connection:
        indexed(connection, [("/p/a.jpg", "h1"), ("/p/copy-of-a.jpg", "h1"), ("/p/b.jpg", "h2")])
        content_store.record_content(connection, "unheld", ImageInfo(4, 3, "JPEG"), now=1.0)
        content_store.replace_pairs(connection, [ScoredPair.of("h1", "h2", 0.8)], changed=None)
    engine.dispose()

    engine = state_downgraded_to(tmp_path, "0005")
    with read_transaction(engine) as connection:
        assert [(pair.first, pair.second) for pair in content_store.stored_pairs(connection, 0.0)] == [("h1", "h2")]
        assert known(connection, "/p/b.jpg").content_hash == "h2"
    upgrade(engine)

    with read_transaction(engine) as connection:
        assert file_counts(connection) == {"h1": 2, "h2": 1, "unheld": 0}


def test_copies_and_unheld_contents_are_found_on_the_counts_index_not_by_a_pass_over_every_file(tmp_path):
    engine = open_state(tmp_path / "state.db")
    with write_transaction(engine) as connection:
        indexed(connection, [(f"/p/{number}.jpg", f"{number:064x}") for number in range(50)])

    plans = plans_of_selects(engine, lambda connection: (file_store.copied_contents(connection), content_store.orphaned_contents(connection, 2.0)))

    assert "ix_contents_file_count (file_count>?)" in plans[0], plans
    assert "ix_contents_file_count (file_count=?)" in plans[1], plans


def contents_without_fingerprint(connection) -> int:
    """The count the state's triggers keep of contents with no fingerprint, checked against them."""
    from sqlalchemy import select

    from dupe_scanner.store.schema import contents, feature_hashes, tallies

    kept = connection.scalar(select(tallies.c.value).where(tallies.c.name == fingerprints.WITHOUT_FINGERPRINT))
    fingerprinted = set(connection.scalars(select(feature_hashes.c.hash)))
    counted = sum(1 for content in connection.scalars(select(contents.c.hash)) if content not in fingerprinted)
    assert kept == counted, "the kept count drifted from the contents and their fingerprints"
    return kept


def test_the_count_of_contents_without_a_fingerprint_follows_every_change_of_either(tmp_path):
    engine = open_state(tmp_path / "state.db")
    info = ImageInfo(4, 3, "JPEG")
    with write_transaction(engine) as connection:
        fingerprints.store(connection, "h1", "analyser-1", b"fingerprint")  # analysed, its content recorded after
        content_store.record_content(connection, "h1", info, now=1.0)
        content_store.record_content(connection, "h2", info, now=1.0)  # a content with none (a crash between the two)
        content_store.record_content(connection, "h2", info, now=1.5)  # recorded again, still with none
        assert contents_without_fingerprint(connection) == 1

        fingerprints.store(connection, "h2", "analyser-1", b"fingerprint")
        fingerprints.store(connection, "h2", "analyser-2", b"again")  # written over: still one
        connection.exec_driver_sql("INSERT OR REPLACE INTO features (hash, analyser, data) VALUES ('h2', 'analyser-2', x'00')")  # replaced
        content_store.record_content(connection, "h2", info, now=2.0)  # recorded again
        assert contents_without_fingerprint(connection) == 0

        fingerprints.forget(connection, ["h1"])
        assert contents_without_fingerprint(connection) == 1
        content_store.delete_contents(connection, ["h1"])
        assert contents_without_fingerprint(connection) == 0
        fingerprints.store(connection, "orphan", "analyser-1", b"fingerprint")  # of no content the state knows
        assert contents_without_fingerprint(connection) == 0

        fingerprints.forget_all(connection)
        assert contents_without_fingerprint(connection) == 1
        content_store.delete_all_contents(connection)
        assert contents_without_fingerprint(connection) == 0


def test_contents_without_a_fingerprint_before_the_upgrade_are_counted(tmp_path):
    engine = open_state(tmp_path / "state.db")
    with write_transaction(engine) as connection:
        for content in ("h1", "h2", "h3"):
            content_store.record_content(connection, content, ImageInfo(4, 3, "JPEG"), now=1.0)
        fingerprints.store(connection, "h1", "analyser-1", b"fingerprint")
    engine.dispose()

    engine = state_downgraded_to(tmp_path, "0006")
    upgrade(engine)

    with read_transaction(engine) as connection:
        assert contents_without_fingerprint(connection) == 2
        assert fingerprints.outdated(connection, "analyser-1") == {"h2", "h3"}


def test_outdated_analyses_are_found_on_indexes_without_a_pass_over_every_content(tmp_path):
    engine = open_state(tmp_path / "state.db")
    with write_transaction(engine) as connection:
        for number in range(50):
            content_store.record_content(connection, f"{number:064x}", ImageInfo(4, 3, "JPEG"), now=1.0)
            fingerprints.store(connection, f"{number:064x}", "analyser-2" if number else "analyser-1", b"fingerprint")

    found: list[set[str]] = []
    plans = plans_of_selects(engine, lambda connection: found.append(fingerprints.outdated(connection, "analyser-2")))

    assert found == [{f"{0:064x}"}]
    assert not any("SCAN contents" in plan for plan in plans), plans
