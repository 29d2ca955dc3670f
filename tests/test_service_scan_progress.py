"""The scan's progress as the service says it: STATUS= at each stage, the log every 30 s, an estimate."""

import logging

from dupe_scanner.service.scan_progress import LOG_SECONDS, ScanReport


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_stage_is_announced_at_once_and_counts_at_most_every_second():
    clock = Clock()
    said: list[str] = []
    report = ScanReport(said.append, clock)
    report("forming groups", 0, 1)
    report("verifying candidate pairs", 0, 40_000)
    clock.now += 0.5
    report("verifying candidate pairs", 100, 40_000)  # too soon after the last word
    clock.now += 0.6
    report("verifying candidate pairs", 200, 40_000)
    assert said[0] == "scan: forming groups: 0 of 1"
    assert said[1] == "scan: verifying candidate pairs: 0 of 40,000"
    assert said[2].startswith("scan: verifying candidate pairs: 200 of 40,000, about ")
    assert len(said) == 3


def test_the_log_says_it_every_30_seconds_with_the_time_left(caplog):
    clock = Clock()
    report = ScanReport(lambda _line: None, clock)
    caplog.set_level(logging.INFO, logger="dupe_scanner.service")
    report("verifying candidate pairs", 0, 40_000)
    clock.now += LOG_SECONDS - 1
    report("verifying candidate pairs", 9_000, 40_000)
    assert caplog.messages == []
    clock.now += 1  # 12,000 in 30 s: 28,000 more take 70 s
    report("verifying candidate pairs", 12_000, 40_000)
    assert caplog.messages == ["scan: verifying candidate pairs: 12,000 of 40,000, about 70 s left"]
    clock.now += 60  # 20,000 in 90 s: 20,000 more take 90 s
    report("verifying candidate pairs", 20_000, 40_000)
    assert caplog.messages[-1] == "scan: verifying candidate pairs: 20,000 of 40,000, about 2 min left"


def test_no_estimate_before_anything_is_done_or_once_all_is():
    clock = Clock()
    report = ScanReport(lambda _line: None, clock)
    report("writing reports", 0, 1)
    clock.now += 5
    assert report.line() == "scan: writing reports: 0 of 1"
    report("writing reports", 1, 1)
    assert report.line() == "scan: writing reports: 1 of 1"
