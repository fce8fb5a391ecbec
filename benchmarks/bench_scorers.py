"""Every scorer and baseline side by side, as ``pin2vec run`` measures and ships them.

    python benchmarks/bench_scorers.py [--logs dense,sparse,samples] [--work DIR]

For the two real-shaped logs of :mod:`reallike` (dense: MovieLens-100k-like ratings; sparse:
e-commerce click sessions, most test queries rare or unseen) and ``data_samples/``, runs
``pin2vec run`` with its defaults (validation split carved from the training period, candidates
scored on it, the winner shipped) and prints the test scorecard of each log: HR/MRR/NDCG at 10
and 20 of every scorer, the one ``run`` shipped marked ``*``, and the shipped scorer's HR@10
against the best of co-occurrence / sequential rules / item-kNN (every variant) and EASE.

``--normalizations`` then prints, on the same test split, HR@10 of co-occurrence, sequential
rules and item-kNN under each normalisation (raw, cosine, shrunk with several constants): the
measurement behind ``shrunk`` as the default.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COUNT_FAMILIES = ("co-occurrence", "sequential rules", "item-kNN")


def make_logs(work: Path, names) -> dict[str, list[str]]:
    """``pin2vec run`` arguments per log (writing the synthetic logs first)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    args = {}
    for name in names:
        if name == "samples":
            args[name] = []  # run's defaults: data_samples/ with its train_config.json
            continue
        import reallike

        folder = work / name
        if not (folder / "events.parquet").is_file():
            data = reallike.dense_log(seed=0) if name == "dense" else reallike.sparse_log(seed=0)
            reallike.write_log(data, folder)
        args[name] = ["--input", str(folder / "events.parquet")]
        if name == "sparse":
            args[name] += ["--session-column", "session_id"]
    return args


def family(name: str) -> str:
    for fam in (*COUNT_FAMILIES, "EASE", "hybrid", "pin2vec", "most-popular"):
        if name.startswith(fam):
            return fam
    return name


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--logs", default="dense,sparse,samples")
    p.add_argument("--work", type=Path, default=Path("/tmp/pin2vec-bench-scorers"))
    p.add_argument("--normalizations", action="store_true",
                   help="also compare raw / cosine / shrunk on each log's test split")
    p.add_argument("--skip-run", action="store_true", help="reuse the earlier runs' outputs")
    args = p.parse_args()
    names = args.logs.split(",")
    args.work.mkdir(parents=True, exist_ok=True)
    for name, run_args in make_logs(args.work, names).items():
        out = args.work / f"run-{name}"
        if args.skip_run:
            continue
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "recommender.cli.main", "run", *run_args,
                               "--output", str(out), "--overwrite", "--quiet",
                               "--examples", "0"], capture_output=True, text=True, cwd=ROOT)
        if proc.returncode:
            sys.exit(f"pin2vec run on {name} failed:\n{proc.stderr[-3000:]}")
        seconds = time.perf_counter() - started
        report = json.loads((out / "evaluation.json").read_text())
        lines = report["results"]
        print(f"== {name}: pin2vec run in {seconds:.0f} s; shipped: "
              f"{report['shipped']['name']}")
        w = max(len(r["name"]) for r in lines) + 2
        print(f"  {'scorer':<{w}}{'HR@10':>8}{'HR@20':>8}{'MRR@10':>8}{'MRR@20':>8}"
              f"{'NDCG@10':>9}{'NDCG@20':>9}{'head':>7}{'torso':>7}{'tail':>7}")
        for r in lines:
            m, b = r["metrics"], r["buckets"]
            print(f"{'*' if r['shipped'] else ' '} {r['name']:<{w}}{m['hr@10']:>8.4f}"
                  f"{m['hr@20']:>8.4f}{m['mrr@10']:>8.4f}{m['mrr@20']:>8.4f}{m['ndcg@10']:>9.4f}"
                  f"{m['ndcg@20']:>9.4f}{b['head']['hr@10']:>7.3f}{b['torso']['hr@10']:>7.3f}"
                  f"{b['tail']['hr@10']:>7.3f}")
        b = lines[0]["buckets"]
        print("  query shares: " + ", ".join(f"{k} {v['share']:.0%}" for k, v in b.items()))
        shipped = next(r for r in lines if r["shipped"])["metrics"]["hr@10"]
        counts = max((r["metrics"]["hr@10"] for r in lines if not r["shipped"]
                      and family(r["name"]) in COUNT_FAMILIES), default=0.0)
        ease = max((r["metrics"]["hr@10"] for r in lines if family(r["name"]) == "EASE"),
                   default=0.0)
        best = max(counts, ease)
        print(f"  shipped HR@10 {shipped:.4f} = {shipped / counts:.2f}x the best of co-occurrence"
              f" / sequential rules / item-kNN ({counts:.4f}), {shipped / best:.2f}x the best "
              f"of those and EASE ({best:.4f})")
        print(f"  verdict: {report['verdict']}")
        for note in report["notes"]:
            print(f"  note: {note}")
        print(flush=True)
    if args.normalizations:
        for name in names:
            normalizations(name, args.work / f"run-{name}")


def normalizations(name: str, out: Path) -> None:
    """HR@10 of the count scorers under each normalisation, on ``run``'s train/test split."""
    sys.path.insert(0, str(ROOT))
    from recommender.evaluate.next_item import load_split
    from recommender.evaluate.scorecard import score_table
    from recommender.scorers import CooccurrenceConfig as C
    from recommender.scorers import cooccurrence

    split = load_split(out / "train_sessions", out / "test_sessions")
    norms = [("raw", 0.0), ("cosine", 0.0), ("shrunk", 1.0), ("shrunk", 10.0), ("shrunk", 50.0)]
    rows = {"co-occurrence ±2": dict(window=2), "co-occurrence ±5": dict(window=5),
            "sequential rules 10, 1/d": dict(window=10, directed=True, weighting="distance"),
            "item-kNN": dict(window=0, binary=True)}
    print(f"== {name}: HR@10 by normalisation ({split.n_pairs:,} test pairs)")
    print(f"  {'scorer':<28}" + "".join(f"{n + (f' {b:g}' if n == 'shrunk' else ''):>12}"
                                        for n, b in norms))
    for label, kw in rows.items():
        line = f"  {label:<28}"
        for norm, shrink in norms:
            t = cooccurrence(split.train, C(**kw, normalize=norm, shrink=shrink or 10.0))
            line += f"{score_table(label, t.item_ids, t.neighbors, split).hr(10):>12.4f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
