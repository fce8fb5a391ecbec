"""Page faults and time of a training run in a process whose allocator is still at its defaults.

glibc's malloc hands out blocks above its mmap threshold (128 KB at start) as fresh pages and
gives them back on free; it raises that threshold only after a large block has been freed. A
training step that allocated its ~2 MB of temporaries per batch therefore faulted them in again
every batch in a process that had not freed a large block before training, such as one holding
its sessions in memory from arrays that stay alive. This script builds exactly that process:
each run is a fresh subprocess that loads the dense log (``reallike.dense_log``, each user's last
5 items held out), keeps its arrays, builds the sessions as lists of str and calls ``train``.
``bench_trainer.py``'s workers free large blocks before training, so they do not show it.

    python benchmarks/bench_page_faults.py --processes 2 --runs 5
    python benchmarks/bench_page_faults.py --against /tmp/pin2vec-base   # another checkout too

Prints the medians of the training call's seconds and minor page faults (the training processes
included) per checkout, and the per-run time ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CHILD = """
import resource, sys, time
import numpy as np
data = np.load(sys.argv[1])  # kept alive: no large block is freed before training
flat, lengths = data["flat"], data["lengths"]
ends = np.cumsum(lengths)
sessions = [[str(x) for x in flat[e - n:e]] for e, n in zip(ends, lengths)]
from recommender.train import TrainConfig, train

def faults():
    return sum(resource.getrusage(w).ru_minflt
               for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))

f0, t0 = faults(), time.perf_counter()
model = train(sessions, TrainConfig(progress=False, processes=int(sys.argv[2]), seed=1))
print(time.perf_counter() - t0, faults() - f0, model.manifest["batch_size"])
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--runs", type=int, default=5, help="runs per checkout, alternating (5)")
    p.add_argument("--against", metavar="DIR", help="another pin2vec checkout, run alternately")
    args = p.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from bench_trainer import _dense_corpus

    roots = {"this checkout": HERE.parent}
    if args.against:
        roots["--against"] = Path(args.against).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "dense.npz"
        flat, lengths, _, _ = _dense_corpus(1.0)
        np.savez(corpus, flat=flat, lengths=lengths)
        got: dict[str, list[tuple[float, int, int]]] = {name: [] for name in roots}
        for run in range(args.runs):
            order = list(roots) if run % 2 == 0 else list(roots)[::-1]
            for name in order:
                env = dict(os.environ, PYTHONPATH=str(roots[name]))
                out = subprocess.run([sys.executable, "-c", CHILD, str(corpus),
                                      str(args.processes)], env=env, cwd=tmp, check=True,
                                     capture_output=True, text=True).stdout.split()
                got[name].append((float(out[0]), int(out[1]), int(out[2])))
    print(f"dense log, processes={args.processes}, medians of {args.runs} fresh processes")
    print(f"{'':16s}{'seconds':>10s}{'page faults':>14s}{'batch':>8s}")
    for name, rows in got.items():
        print(f"{name:16s}{statistics.median(r[0] for r in rows):10.3f}"
              f"{statistics.median(r[1] for r in rows):14,.0f}{rows[0][2]:8d}")
    if args.against:
        ratio = [b[0] / a[0] for a, b in zip(got["this checkout"], got["--against"])]
        print(f"time of --against / this checkout per run: median {statistics.median(ratio):.2f}"
              f" (range {min(ratio):.2f}-{max(ratio):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
