"""Flow backend throughput: requests per indexed image and images per second, against the stand-in.

    .venv/bin/python bench/flow_throughput.py [--images 1000] [--workers 1 2 4 8] [--size 2048x1536]

The stand-in Flow server runs in its own process (``python -m tests.flow_standin``), so it
does not share the client's interpreter lock; on one machine the two still share the CPU,
so these numbers are a floor for the client, not a forecast for a real Flow server (whose
analysis is a neural network, far heavier than the stand-in's hash). Requests are counted
client-side, on the backend's own session, so retries would show.

The photos are generated once (100 photo-like originals, each saved ten times with a
different crop and JPEG quality, so every file is a distinct content) and cached under
bench/.cache/.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from PIL import Image  # noqa: E402

from dupe_scanner.backends.flow import FlowBackend, new_session  # noqa: E402
from dupe_scanner.settings import FlowSettings  # noqa: E402
from tests.photos import make_photo  # noqa: E402


def photos(count: int, size: tuple[int, int]) -> list[Path]:
    folder = ROOT / "bench" / ".cache" / f"flow-photos-{size[0]}x{size[1]}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"photo-{n:05d}.jpg" for n in range(count)]
    missing = [n for n, path in enumerate(paths) if not path.exists()]
    if missing:
        print(f"generating {len(missing)} photos in {folder} (once)...", file=sys.stderr)
        originals: dict[int, Image.Image] = {}
        for n in missing:
            seed = n % 100
            if seed not in originals:
                originals[seed] = make_photo(seed, (size[0] // 2 + 16, size[1] // 2 + 16)).resize(
                    (size[0] + 32, size[1] + 32)
                )
            variant = n // 100
            crop = originals[seed].crop((variant, variant, variant + size[0], variant + size[1]))
            crop.save(paths[n], quality=80 + variant % 15)
    return paths


def start_standin() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.flow_standin"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None  # a pipe
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        raise SystemExit(f"the stand-in did not start (said {url!r})")
    return process, url


class CountingSession:
    """Counts the backend session's requests by endpoint and the bytes it sends."""

    def __init__(self, pool_size: int):
        self.session = new_session(pool_size)
        self.counts: Counter = Counter()
        self.sent = 0
        self._lock = threading.Lock()
        self.session.hooks["response"].append(self._count)

    def _count(self, response, *args, **kwargs):
        request = response.request
        path = request.path_url.split("?")[0].rsplit("/", 1)[-1]
        endpoint = "commit" if path == "update" and "softCommit=true" in request.url else path
        with self._lock:
            self.counts[endpoint] += 1
            self.sent += len(request.body or b"")
        return response


def run(url: str, standin_pid: int, paths: list[Path], ids: list[str], workers: int, commit_every: int) -> dict:
    counting = CountingSession(workers)
    settings = FlowSettings(url=url, commit_every=commit_every, connect_timeout=5, read_timeout=60, retries=3)
    backend = FlowBackend(settings, "balanced", pool_size=workers, session=counting.session)
    backend.clear()
    counting.counts.clear()
    counting.sent = 0
    standin = psutil.Process(standin_pid)
    standin_cpu = sum(standin.cpu_times()[:2])
    client_cpu = time.process_time()
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(backend.index, ids, paths))
    backend.commit()
    elapsed = time.perf_counter() - started
    client_cpu = time.process_time() - client_cpu
    standin_cpu = sum(standin.cpu_times()[:2]) - standin_cpu
    index_counts = Counter(counting.counts)
    sent = counting.sent
    assert backend.document_count() == len(paths), "not every image arrived"
    counting.counts.clear()
    scan_started = time.perf_counter()
    pairs = list(backend.find_pairs(None, 0.6))
    scan_elapsed = time.perf_counter() - scan_started
    scan_counts = Counter(counting.counts)
    backend.close()
    return {
        "workers": workers,
        "seconds": elapsed,
        "client_cpu": client_cpu,
        "standin_cpu": standin_cpu,
        "counts": index_counts,
        "sent": sent,
        "scan_seconds": scan_elapsed,
        "scan_requests": sum(scan_counts.values()),
        "pairs": len(pairs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--size", default="2048x1536", help="photo size WIDTHxHEIGHT (default 2048x1536)")
    parser.add_argument("--commit-every", type=int, default=100)
    arguments = parser.parse_args()
    width, height = (int(side) for side in arguments.size.lower().split("x"))
    size = (width, height)
    paths = photos(arguments.images, size)
    ids = [hashlib.sha256(path.read_bytes()).hexdigest() for path in paths]
    megabytes = sum(path.stat().st_size for path in paths) / 1e6
    process, url = start_standin()
    try:
        results = [run(url, process.pid, paths, ids, workers, arguments.commit_every) for workers in arguments.workers]
    finally:
        if process.stdin is not None:  # a pipe
            process.stdin.close()
        process.wait(timeout=10)
    n = len(paths)
    print(
        f"{n} JPEG photos {size[0]}x{size[1]} ({megabytes / n:.2f} MB each), commit_every={arguments.commit_every}, "
        f"stand-in in its own process, {os.cpu_count()} CPUs"
    )
    print()
    print(f"load average at the end: {' '.join(f'{load:.1f}' for load in os.getloadavg())} (other work on the machine slows every row)")
    print()
    header = (
        "| workers | images/s | seconds | requests/image | analyze | update | commit | KB sent/image "
        "| client CPU ms/image | stand-in CPU ms/image | full scan s (requests, pairs) |"
    )
    print(header)
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for result in results:
        counts = result["counts"]
        total = sum(counts.values())
        print(
            f"| {result['workers']} | {n / result['seconds']:.1f} | {result['seconds']:.1f} | {total / n:.2f} | "
            f"{counts['analyze']} | {counts['update']} | {counts['commit']} | {result['sent'] / n / 1000:.0f} | "
            f"{result['client_cpu'] / n * 1000:.0f} | {result['standin_cpu'] / n * 1000:.0f} | "
            f"{result['scan_seconds']:.1f} ({result['scan_requests']}, {result['pairs']}) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
