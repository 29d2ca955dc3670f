"""When a long comparison writes the reports between its parts: not too often, and never
for more than a tenth of its time (a million files' reports take seconds to write)."""

from __future__ import annotations

from types import SimpleNamespace

from dupe_scanner.reports import PartialComparison
from dupe_scanner.scanning import INTERIM_REPORT_SECONDS, InterimReports


def test_reports_are_written_between_parts_every_few_minutes_and_less_often_when_they_take_long():
    clock = SimpleNamespace(now=0.0)
    written: list[tuple[float, PartialComparison]] = []
    writing_takes = [20.0]

    def write(partial: PartialComparison) -> int:
        written.append((clock.now, partial))
        clock.now += writing_takes[0]
        return 7

    between_parts = InterimReports(write, started=0.0, clock=lambda: clock.now)

    def part_ends_at(moment: float, compared: int) -> None:
        clock.now = moment
        between_parts(compared, 100_000)

    part_ends_at(INTERIM_REPORT_SECONDS - 1, 5_000)  # too soon after the scan started
    part_ends_at(INTERIM_REPORT_SECONDS + 50, 10_000)
    part_ends_at(2 * INTERIM_REPORT_SECONDS, 15_000)  # too soon after the last (they ended at +70)
    writing_takes[0] = 100.0  # a large library's reports: at most a tenth of the time, so 1,000 s apart
    part_ends_at(2 * INTERIM_REPORT_SECONDS + 80, 20_000)
    part_ends_at(2 * INTERIM_REPORT_SECONDS + 180 + 999, 25_000)
    part_ends_at(2 * INTERIM_REPORT_SECONDS + 180 + 1000, 30_000)

    assert [partial.compared for _, partial in written] == [10_000, 20_000, 30_000]
    assert {partial.pictures for _, partial in written} == {100_000}
