"""Where the wall time of a training with ``--processes N`` goes, per worker.

Each run is a fresh process that trains the dense log (``reallike.dense_log``, each user's last 5
items held out, as in ``bench_trainer.py --log dense``) with ``TrainConfig(processes=N)`` through
the Python API, then prints from the pool's record of every unit (``ProcessTrainer.units``):

- start: from the call of ``train()`` to the first unit's start (vocabulary, batch maker, forks);
- busy: the worker's summed unit time, and the same per token (the work);
- between units: the worker's time from its first unit's start to its last unit's end that was
  not inside a unit (hand-offs, waiting at meetings between epochs);
- end: from the last unit's end to the return of ``train()``.

    python benchmarks/bench_timeline.py                         # dense log, 2 processes, 3 runs
    python benchmarks/bench_timeline.py --scale 10 --runs 3     # the dense log x10

Issue 9's final round used it (with an instrumented copy of the code before) to find the
meetings between epochs, the first-unit page faults and the numpy.ma import.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[4])
from bench_trainer import _sessions
from recommender.train import parallel, trainer
from recommender.train.trainer import TrainConfig, train

pools = []
class Recorded(parallel.ProcessTrainer):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        pools.append(self)
trainer.ProcessTrainer = Recorded

data = np.load(sys.argv[1])
sessions = _sessions(data["flat"], data["lengths"])
t0 = time.perf_counter()
train(sessions, TrainConfig(processes=int(sys.argv[2]), seed=int(sys.argv[3]), progress=False))
t1 = time.perf_counter()
print(json.dumps({"t0": t0, "t1": t1, "units": pools[0].units}))
"""


def _summary(run: dict) -> dict:
    units = run["units"]  # (epoch, raw tokens, pid, start, end)
    workers = {}
    for _, raw, pid, start, end in units:
        workers.setdefault(pid, []).append((start, end, raw))
    out = {"total_ms": (run["t1"] - run["t0"]) * 1e3,
           "start_ms": (min(u[3] for u in units) - run["t0"]) * 1e3,
           "end_ms": (run["t1"] - max(u[4] for u in units)) * 1e3, "workers": []}
    for rows in workers.values():
        busy = sum(e - s for s, e, _ in rows)
        span = max(e for _, e, _ in rows) - min(s for s, _, _ in rows)
        out["workers"].append({"units": len(rows), "busy_ms": busy * 1e3,
                               "between_ms": (span - busy) * 1e3,
                               "ns_per_token": busy * 1e9 / sum(r for _, _, r in rows)})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=1.0, help="size factor of the dense log (1)")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    if args.processes < 2:
        raise SystemExit("--processes must be 2 or more (one process has no units to time)")
    sys.path.insert(0, str(HERE))
    from bench_trainer import _dense_corpus, checkout_env

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "dense.npz"
        flat, lengths, _, _ = _dense_corpus(args.scale)
        np.savez(corpus, flat=flat, lengths=lengths)
        print(f"dense log x{args.scale:g}: {len(flat):,} training tokens; "
              f"processes={args.processes}; one fresh process per run")
        env = checkout_env(HERE.parent)
        runs = []
        for run in range(args.runs):
            out = subprocess.run([sys.executable, "-c", CHILD, str(corpus), str(args.processes),
                                  str(args.seed), str(HERE)], env=env, cwd=tmp, check=True,
                                 capture_output=True, text=True).stdout
            runs.append(_summary(json.loads(out.strip().splitlines()[-1])))
            r = runs[-1]
            print(f"  run {run + 1}: total {r['total_ms']:.0f} ms, start {r['start_ms']:.0f}, "
                  f"end {r['end_ms']:.0f}; " + "; ".join(
                      f"worker {i}: {w['units']} units, busy {w['busy_ms']:.0f} ms "
                      f"({w['ns_per_token']:.0f} ns/token), between units {w['between_ms']:.0f}"
                      for i, w in enumerate(r["workers"])), flush=True)
    med = lambda xs: statistics.median(xs)  # noqa: E731
    allw = [w for r in runs for w in r["workers"]]
    print(f"\nmedians over {args.runs} runs and {len(allw)} workers")
    print(f"{'total ms':>10s}{'start ms':>10s}{'end ms':>8s}{'busy ms':>9s}{'ns/token':>10s}"
          f"{'between units ms':>18s}{'units':>7s}")
    print(f"{med(r['total_ms'] for r in runs):10.0f}{med(r['start_ms'] for r in runs):10.0f}"
          f"{med(r['end_ms'] for r in runs):8.0f}{med(w['busy_ms'] for w in allw):9.0f}"
          f"{med(w['ns_per_token'] for w in allw):10.0f}{med(w['between_ms'] for w in allw):18.0f}"
          f"{med(w['units'] for w in allw):7.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
