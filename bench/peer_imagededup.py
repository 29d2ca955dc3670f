"""Run imagededup's hash methods over a folder; executed by the bench's own environment.

Usage: python peer_imagededup.py IMAGE_DIR OUTPUT_JSON [MAX_DISTANCE] [METHODS]
Writes {method: {"seconds": encode seconds, "images": n, "pairs": [[a, b, distance], ...]}}
with names relative to IMAGE_DIR. Speed-only runs pass MAX_DISTANCE 0.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path


def main() -> None:
    image_dir, output = Path(sys.argv[1]), Path(sys.argv[2])
    max_distance = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    names = sys.argv[4].split(",") if len(sys.argv) > 4 else ["PHash", "DHash", "WHash", "AHash"]
    logging.disable(logging.WARNING)
    from imagededup import methods

    results = {}
    for name in names:
        method = getattr(methods, name)(verbose=False)
        start = time.perf_counter()
        encodings = method.encode_images(image_dir=str(image_dir), recursive=True, num_enc_workers=os.cpu_count() or 1)
        seconds = time.perf_counter() - start
        pairs = []
        if max_distance > 0:
            found = method.find_duplicates(encoding_map=encodings, max_distance_threshold=max_distance, scores=True)
            for first, matches in found.items():
                for second, distance in matches:
                    if first < second:
                        pairs.append([_relative(first, image_dir), _relative(second, image_dir), int(distance)])
        results[name] = {"seconds": seconds, "images": len(encodings), "pairs": pairs}
        print(f"{name}: {len(encodings)} images in {seconds:.1f}s, {len(pairs)} pairs", file=sys.stderr)
    output.write_text(json.dumps(results))


def _relative(name: str, image_dir: Path) -> str:
    path = Path(name)
    return path.relative_to(image_dir).as_posix() if path.is_absolute() else path.as_posix()


if __name__ == "__main__":
    main()
