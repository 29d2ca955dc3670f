"""bench.rescore: two versions' verdicts on the same stored pairs, compared pair by pair."""

from __future__ import annotations

import json

from bench.rescore import compare


def _write(path, rows):
    lines = (json.dumps({"pair": list(pair), "score": score, "verified": score >= 0.6, "cpu": cpu}) for pair, score, cpu in rows)
    path.write_text("".join(line + "\n" for line in lines))


def test_verdicts_that_changed_and_scores_that_moved_are_counted_and_shown(tmp_path, capsys):
    before, after = tmp_path / "before.jsonl", tmp_path / "after.jsonl"
    _write(before, [(("a", "b"), 0.9, 2.0), (("a", "c"), 0.61, 2.0), (("b", "c"), 0.3, 4.0), (("b", "d"), 0.2, 1.0)])
    _write(after, [(("a", "b"), 0.9, 1.0), (("a", "c"), 0.4, 1.0), (("b", "c"), 0.35, 2.0), (("b", "d"), 0.2 + 4e-16, 1.0), (("c", "d"), 0.7, 9.0)])

    assert compare(before, after) == 0

    printed = capsys.readouterr().out
    assert "pairs scored by both: 4" in printed
    assert "(0.56)" in printed  # CPU of the pairs both scored: 5.0 against 9.0
    assert "verdicts changed: 1; scores moved (by more than 1e-09): 2" in printed  # not the last bit of a float
    assert "0.6100 -> 0.4000  verdict changed" in printed


def test_files_that_share_no_pair_are_refused(tmp_path, capsys):
    before, after = tmp_path / "before.jsonl", tmp_path / "after.jsonl"
    _write(before, [(("a", "b"), 0.9, 1.0)])
    _write(after, [(("c", "d"), 0.9, 1.0)])

    assert compare(before, after) == 2
    assert "share no pair" in capsys.readouterr().err
