"""bench.scan_cost: a first scan's CPU by stage, read from the real scan's stage marks."""

from __future__ import annotations

import subprocess
import sys

from bench.scan_cost import BETWEEN, END, START, Sample, stage_costs
from dupe_scanner.scanning import COMPARING, INTERIM_STAGE
from tests.cli import REPO
from tests.photos import make_photo, save


def test_each_stage_gets_the_cpu_read_between_its_marks_and_interim_reports_their_own():
    # CPU read every second: the main process burns 1 CPU s a second, the workers 2 from t=2 to t=6
    samples = [Sample(float(t), float(t), 2.0 * max(0, min(t, 6) - 2)) for t in range(11)]
    marks = [(1.0, "forgetting deleted images", True), (2.0, "forgetting deleted images", False), (2.0, COMPARING, True),
             (4.0, INTERIM_STAGE, True), (5.0, INTERIM_STAGE, False), (6.0, COMPARING, False),
             (6.0, "writing reports", True), (9.0, "writing reports", False)]

    costs = {cost.name: cost for cost in stage_costs(samples, marks, started=0.0, ended=10.0)}

    assert list(costs) == [START, "forgetting deleted images", BETWEEN, COMPARING, INTERIM_STAGE, "writing reports", END]
    assert (costs[COMPARING].seconds, costs[COMPARING].main, costs[COMPARING].workers) == (3.0, 3.0, 6.0)
    assert (costs[INTERIM_STAGE].main, costs[INTERIM_STAGE].workers) == (1.0, 2.0)
    assert (costs["writing reports"].main, costs["writing reports"].workers) == (3.0, 0.0)
    assert (costs[START].seconds, costs[END].seconds) == (1.0, 1.0)
    assert sum(cost.main for cost in costs.values()) == 10.0


def test_a_real_first_scan_is_measured_stage_by_stage(tmp_path):
    library = tmp_path / "library"
    save(make_photo(3), library / "original.jpg")
    save(make_photo(3).resize((320, 240)), library / "smaller copy.png")
    save(make_photo(4), library / "another.jpg")

    printed = subprocess.run(
        [sys.executable, "-m", "bench.scan_cost", "--library", str(library)],
        capture_output=True, text=True, check=True, cwd=REPO,
    ).stdout

    table = printed.split("\n\n")[0].splitlines()[2:]
    stages = [row[25:59].strip() for row in table]  # the columns are right-aligned, 24 and 34 wide
    assert stages[0] == START and COMPARING in stages and "writing reports" in stages, printed
    ratio_row = next(line for line in printed.splitlines() if line.split()[:2] == ["library", "3"])
    _, _, index_cpu, scan_cpu, ratio, without_verification, _ = ratio_row.split()
    assert float(index_cpu) > 0 and float(scan_cpu) > 0
    assert float(without_verification) < float(ratio)  # the copy was verified in a worker
