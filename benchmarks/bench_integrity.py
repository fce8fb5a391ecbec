"""What integrity checking costs: digest speed per GiB, and ``RelatedItems.load`` with and without
``verify``, side by side in one run (medians of ``--repeats`` runs; files in the page cache).

    PYTHONPATH=. python benchmarks/bench_integrity.py [--mib 512] [--items 50000] [--repeats 3]

The digest the manifests record is ``xxh3_128`` (the ``xxhash`` package); ``blake2b`` and
``sha256`` (hashlib, no extra package) are shown for comparison, all through the same streamed
4 MiB-block reader (:func:`recommender.core.integrity.fast_digest`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import clustered, write_model  # noqa: E402

from recommender import RelatedItems  # noqa: E402
from recommender.core.integrity import fast_digest  # noqa: E402
from recommender.index.build import IndexConfig, build_index  # noqa: E402


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mib", type=int, default=512, help="size of the file hashed")
    p.add_argument("--items", type=int, default=50_000, help="items in the index loaded")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        blob = tmp / "blob.bin"
        with open(blob, "wb") as f:
            for _ in range(args.mib):
                f.write(os.urandom(1 << 20))
        gib = args.mib / 1024
        fast_digest(blob)  # into the page cache
        rows = []
        base = None
        for algorithm in ("xxh3_128", "blake2b", "sha256"):
            s = median_seconds(lambda a=algorithm: fast_digest(blob, a), args.repeats) / gib
            base = base or s
            rows.append((algorithm, s, 1 / s, s / base))
        print(f"digest of a {args.mib} MiB file in the page cache (median of {args.repeats})")
        print(f"{'algorithm':<10} {'s/GiB':>7} {'GiB/s':>7} {'vs xxh3':>8}")
        for name, s, rate, ratio in rows:
            print(f"{name:<10} {s:7.3f} {rate:7.2f} {ratio:7.1f}x")

        model = write_model(tmp / "model", clustered(args.items, 64))
        build_index(model, tmp / "index", IndexConfig(k=20, progress=False, recall_sample=0))
        size = sum(f.stat().st_size for f in (tmp / "index").iterdir()) / 2**20
        fast = median_seconds(lambda: RelatedItems.load(tmp / "index", verify=False), args.repeats)
        full = median_seconds(lambda: RelatedItems.load(tmp / "index"), args.repeats)
        print(f"\nRelatedItems.load of a {args.items:,}-item index ({size:.0f} MiB, dim 64, K=20)")
        print(f"{'verify':<10} {'seconds':>8} {'vs off':>7}")
        print(f"{'False':<10} {fast:8.3f} {1.0:6.1f}x")
        print(f"{'True':<10} {full:8.3f} {full / fast:6.1f}x")


if __name__ == "__main__":
    main()
