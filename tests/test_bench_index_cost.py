"""bench.index_cost: a library indexed by this code and by another version, in turn, through the real command line."""

from __future__ import annotations

import subprocess
import sys

from tests.cli import REPO
from tests.photos import make_photo, save


def test_each_version_indexes_each_library_in_every_round_and_the_means_compare_them(tmp_path):
    library = tmp_path / "library"
    save(make_photo(3), library / "original.jpg")
    save(make_photo(3).resize((320, 240)), library / "smaller copy.png")
    (library / ".hidden-marker").write_text("not a picture")

    printed = subprocess.run(
        [sys.executable, "-m", "bench.index_cost", "--library", str(library), "--before", sys.executable, "--rounds", "2"],
        capture_output=True, text=True, check=True, cwd=REPO,
    ).stdout

    runs = [line.split() for line in printed.splitlines() if line.split()[:2] == ["library", "2"]]
    assert [(run[2], run[3]) for run in runs] == [("now", "1"), ("before", "1"), ("before", "2"), ("now", "2")]
    assert all(float(run[5]) > 0 for run in runs), printed  # CPU seconds, the workers' included
    means = printed.split("Means over the rounds")[1]
    ratio = next(line for line in means.splitlines() if " before " in line).split()[-1]
    assert 0.2 < float(ratio) < 5, printed  # the same code twice
