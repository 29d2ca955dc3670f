import sys, time
from pathlib import Path
from bench.dataset import find_seeds, build, add_real_stereo
sk = Path("/root/.cache/dupe-scanner-bench/venv/lib/python3.11/site-packages/skimage/data")
root = Path(sys.argv[1])
t = time.time()
labels = build(root, find_seeds(sk))
add_real_stereo(root, sk, labels)
print("built", len(labels["images"]), time.time() - t)
