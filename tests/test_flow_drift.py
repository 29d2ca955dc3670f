"""Drift between Flow's docs and the state's contents: a pure comparison."""

from __future__ import annotations

from dupe_scanner.backends.flow_drift import Drift, compare
from tests.flow_standin.pictures import picture


def test_in_step():
    drift = compare(iter(["b", "a"]), ["a", "b", "a"])

    assert drift == Drift(unknown_to_state=[], missing_in_flow=[])
    assert drift.in_step and drift.summary() == "Flow and the state agree"


def test_both_directions_sorted():
    drift = compare(["z", "a", "shared"], ["shared", "m", "b"])

    assert drift.unknown_to_state == ["a", "z"]
    assert drift.missing_in_flow == ["b", "m"]
    assert not drift.in_step


def test_summary_shows_counts_and_a_few_examples():
    drift = compare([f"f{n}" for n in range(5)], ["s1"])

    assert drift.summary() == (
        "5 in Flow but unknown to the state (f0, f1, f2, ...); 1 indexed in the state but missing in Flow (s1)"
    )


def test_drift_of_a_live_flow(flow_standin, flow_backend):
    flow_standin.put_document("indexed-elsewhere", picture(1, (64, 48)))
    flow_standin.put_document("known", picture(2, (64, 48)))

    drift = compare(flow_backend.document_ids(), ["known", "lost"])

    assert drift == Drift(unknown_to_state=["indexed-elsewhere"], missing_in_flow=["lost"])
