"""pin2vec's numpy trainer against gensim's Word2Vec on one synthetic corpus, side by side.

Corpus: sessions of items with Zipf popularity and planted topics (each session mostly stays inside
one topic, ``--noise`` of its items are drawn from the whole catalogue); the last 10% of sessions
are held out. Both trainers get identical settings (skip-gram, workers, dim, window, negative,
sample, epochs, alpha) and the same list of sessions; each run is its own subprocess so peak RSS is
clean, runs alternate between the two trainers, and the table shows medians.

- words/s: raw corpus tokens x epochs / wall seconds of the whole training call, vocabulary scan
  included (``Word2Vec(sentences, ...)`` and ``train(sessions, config)``); same definition for both.
  Imports are done before the clock starts (until this round gensim's 1.5 s import was timed,
  which flattered pin2vec on small corpora: on the dense log it was half of gensim's time).
- peak RSS: ``VmHWM`` of the run's process (corpus in memory as Python lists included); with
  ``--processes N`` the parent's only (the workers are forked and share its pages).
- purity@10: share of the 10 nearest neighbours (cosine) in the query item's topic, for 2,000
  random items seen at least 10 times (planted corpus only).
- HR@10: on held-out sessions, how often the next item is among the 10 nearest neighbours of the
  current one (up to 20,000 consecutive pairs); on ``--log dense`` with the team's protocol
  (``refscore``: each user's last 5 items held out), by cosine and by input . output vector.
- mean cos: mean cosine of random item pairs (near 1 = collapsed onto one direction).
- page faults: minor page faults during the training call, the training processes included (a
  step that allocates its big temporaries per batch faults them in again every batch).

``--log dense`` trains on ``reallike.dense_log`` instead (about 950 users with long histories, a
heavy head, many rare items; ``--scale`` multiplies its size) so a heavy-head log is timed too.

Full run (about 15 minutes on 2 cores)::

    python benchmarks/bench_trainer.py

Quick run::

    python benchmarks/bench_trainer.py --tokens 300000 --items 10000 --runs 1 --epochs 2

Real-shaped log (about 100k tokens per unit of ``--scale``)::

    python benchmarks/bench_trainer.py --log dense --scale 1

Against an earlier commit, in the same run (its checkout as an extra column, base-pN)::

    git worktree add /tmp/pin2vec-base <commit>
    python benchmarks/bench_trainer.py --log dense --processes 2 --runs 21 \
        --against /tmp/pin2vec-base

Memory check (50M tokens, 200k items, dim 64, 1 epoch, streamed from a SESSIONS dir on disk)::

    python benchmarks/bench_trainer.py --memory-check --workdir /tmp/pin2vec-mem
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_corpus(tokens, items, topics, noise=0.1, zipf=1.0, mean_len=10, seed=0):
    """``(flat item ids int32, session lengths int64, topic of each item)``, fully vectorised."""
    rng = np.random.default_rng(seed)
    topic_of = rng.permutation(items) % topics
    pop = 1.0 / np.arange(1, items + 1) ** zipf
    pop = pop[rng.permutation(items)]
    pop /= pop.sum()
    order = np.argsort(topic_of, kind="stable")  # items grouped by topic
    topic_pop = np.bincount(topic_of, weights=pop, minlength=topics)
    within = pop[order] / topic_pop[topic_of[order]]
    # Within-topic popularity sums to 1 per topic, so topic t spans (t, t+1] of this cumsum.
    cum = np.cumsum(within)
    starts = np.concatenate([[0], np.cumsum(np.bincount(topic_of, minlength=topics))])
    n_sessions = int(tokens / mean_len * 1.1) + 10
    lengths = np.maximum(rng.geometric(1 / mean_len, n_sessions), 2)
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), tokens) + 1]
    session_topic = np.searchsorted(np.cumsum(topic_pop), rng.random(len(lengths)))
    session_topic = np.minimum(session_topic, topics - 1)
    tok_topic = np.repeat(session_topic, lengths)
    pick = np.searchsorted(cum, tok_topic + rng.random(len(tok_topic)), "right")
    pick = np.clip(pick, starts[tok_topic], starts[tok_topic + 1] - 1)
    flat = order[pick]
    noisy = rng.random(len(flat)) < noise
    flat[noisy] = np.minimum(np.searchsorted(np.cumsum(pop), rng.random(noisy.sum())), items - 1)
    return flat.astype(np.int32), lengths.astype(np.int64), topic_of


def _sessions(flat, lengths):
    ids = np.char.add("i", flat.astype(str)).tolist()
    ends = np.cumsum(lengths)
    return [ids[e - n:e] for e, n in zip(ends.tolist(), lengths.tolist())]


def _quality(item_ids, vectors, topic_of, counts, test_sessions, rng):
    index = {item: i for i, item in enumerate(item_ids)}
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    topic = np.array([topic_of[int(i[1:])] for i in item_ids])
    frequent = np.flatnonzero(np.asarray(counts) >= 10)
    queries = rng.choice(frequent, min(2000, len(frequent)), replace=False)
    purity = []
    for chunk in np.array_split(queries, max(1, len(queries) // 500)):
        sims = unit[chunk] @ unit.T
        sims[np.arange(len(chunk)), chunk] = -np.inf
        nn = np.argpartition(-sims, 10, axis=1)[:, :10]
        purity.append((topic[nn] == topic[chunk, None]).mean(axis=1))
    pairs = [(index[a], index[b]) for s in test_sessions for a, b in zip(s, s[1:])
             if a != b and a in index and b in index][:20_000]
    hits = 0
    for start in range(0, len(pairs), 500):
        q = np.array([a for a, _ in pairs[start:start + 500]])
        t = np.array([b for _, b in pairs[start:start + 500]])
        sims = unit[q] @ unit.T
        sims[np.arange(len(q)), q] = -np.inf
        top = np.argpartition(-sims, 10, axis=1)[:, :10]
        hits += int((top == t[:, None]).any(axis=1).sum())
    return float(np.concatenate(purity).mean()), hits / max(len(pairs), 1)


def peak_rss_mb() -> float:
    """High-water RSS of this process since exec (``VmHWM``; ``ru_maxrss`` would include the
    parent's RSS at fork time, which a child inherits on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def checkout_env(root: Path) -> dict:
    """The environment of a subprocess that imports pin2vec from the checkout ``root``."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(root)] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))


def _minor_faults() -> int:
    """Minor page faults of this process and its finished children (the training processes)."""
    return sum(resource.getrusage(who).ru_minflt
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def run_one(args) -> dict:
    """One training run in this process (called in a subprocess); returns the figures."""
    data = np.load(args.corpus, allow_pickle=False)
    sessions = _sessions(data["flat"], data["lengths"])
    if "test_flat" in data:  # dense log: training prefixes and held-out tails given
        train_sessions = sessions
        test_sessions = _sessions(data["test_flat"], data["test_lengths"])
    else:
        split = int(len(sessions) * 0.9)
        train_sessions, test_sessions = sessions[:split], sessions[split:]
    tokens = sum(map(len, train_sessions))
    # Imports happen before the clock starts: gensim's takes ~1.5 s, pin2vec's ~0.2 s, which on
    # a small log (the dense one trains in 1-3 s) would decide the ratio.
    if args.worker == "gensim":
        from gensim.models import Word2Vec
    else:
        from recommender.train.trainer import TrainConfig, train
    faults0 = _minor_faults()
    t0 = time.perf_counter()
    if args.worker == "gensim":
        model = Word2Vec(train_sessions, vector_size=args.dim, window=args.window, sg=1,
                         negative=args.negative, ns_exponent=args.ns_exponent,
                         sample=args.sample, epochs=args.epochs,
                         alpha=args.alpha, min_alpha=0.0001, workers=args.workers, min_count=1,
                         seed=args.seed)
        seconds = time.perf_counter() - t0
        ids, vectors, context = model.wv.index_to_key, model.wv.vectors, model.syn1neg
        counts = [model.wv.get_vecattr(i, "count") for i in ids]
    else:
        config = TrainConfig(dim=args.dim, window=args.window, negative=args.negative,
                             ns_exponent=args.ns_exponent,
                             sample=args.sample, epochs=args.epochs, alpha=args.alpha,
                             workers=args.workers, seed=args.seed, progress=False,
                             processes=int(args.processes),
                             batch_size=args.batch_size)
        model = train(train_sessions, config)
        seconds = time.perf_counter() - t0
        ids, vectors, context = model.item_ids, model.vectors, model.context_vectors
        counts = model.counts
    from recommender.train.model import mean_pair_cosine

    out = {"words_per_s": tokens * args.epochs / seconds, "seconds": seconds,
           "peak_rss_mb": peak_rss_mb(), "page_faults": _minor_faults() - faults0,
           "mean_cos": mean_pair_cosine(vectors)}
    if "test_flat" in data:
        out["hr10"], out["hr10_wc"] = _dense_quality(ids, vectors, context, train_sessions,
                                                     test_sessions)
    else:
        out["purity10"], out["hr10"] = _quality(ids, vectors, data["topic_of"], counts,
                                                test_sessions, np.random.default_rng(0))
    return out


def _dense_quality(ids, vectors, context, train_sessions, test_sessions):
    """HR@10 by cosine and by input . output vector, with ``refscore``'s protocol."""
    from refscore import embedding, hr_at_k, next_item_pairs, popularity, top_k

    n = max(int(i[1:]) for s in (train_sessions, test_sessions) for x in s for i in x) + 1
    w, c = np.zeros((n, vectors.shape[1]), np.float32), np.zeros((n, vectors.shape[1]), np.float32)
    rows = np.array([int(i[1:]) for i in ids])
    w[rows], c[rows] = vectors, context
    as_int = [np.array([int(i[1:]) for i in s]) for s in test_sessions]
    q, target = next_item_pairs(as_int)
    pop = popularity([np.array([int(i[1:]) for i in s]) for s in train_sessions], n)
    return (hr_at_k(top_k(embedding(w), q, pop, 10), target),
            hr_at_k(top_k(embedding(w, c, cosine=False), q, pop, 10), target))


def _dense_corpus(scale: float):
    """Train prefixes and held-out tails of ``reallike.dense_log`` as integer-id arrays."""
    from reallike import dense_log, user_sequences
    from refscore import encode, holdout_last

    train_s, tails = holdout_last(user_sequences(dense_log(0, scale).events), 5)
    (train_s, tails), _ = encode(train_s, tails)
    flat = lambda seqs: np.concatenate(seqs).astype(np.int32)  # noqa: E731
    lens = lambda seqs: np.array([len(x) for x in seqs], np.int64)  # noqa: E731
    return flat(train_s), lens(train_s), flat(tails), lens(tails)


def compare(args) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench_trainer_"))
    corpus = workdir / "corpus.npz"
    if args.log == "dense":
        flat, lengths, test_flat, test_lengths = _dense_corpus(args.scale)
        np.savez(corpus, flat=flat, lengths=lengths, test_flat=test_flat,
                 test_lengths=test_lengths)
        print(f"dense log: {len(flat):,} training tokens, {len(lengths):,} users, "
              f"{len(np.unique(flat)):,} items (last 5 items of each user held out)")
    else:
        flat, lengths, topic_of = make_corpus(args.tokens, args.items, args.topics, args.noise)
        np.savez(corpus, flat=flat, lengths=lengths, topic_of=topic_of)
        print(f"corpus: {len(flat):,} tokens, {len(lengths):,} sessions, "
              f"{len(np.unique(flat)):,} items, {args.topics} topics (90% train / 10% held out)")
    variants = {("pin2vec" if n == 1 else f"pin2vec-p{n}"): n
                for n in (int(x) for x in str(args.processes).split(","))}
    roots = {}  # --against's column -> the checkout whose ``recommender`` it imports
    pair = None
    if args.against:
        root = Path(args.against).resolve()
        if not (root / "recommender" / "train" / "trainer.py").is_file():
            raise SystemExit(f"--against {root}: not a pin2vec checkout (no recommender/train)")
        processes = max(variants.values())
        name = f"base-p{processes}"
        # The A/B pair: this checkout's column with as many processes, and the other checkout's.
        pair = (next(t for t, n in variants.items() if n == processes), name)
        variants[name] = processes
        roots[name] = root
    trainers = list(variants) + ([] if args.skip_gensim else ["gensim"])
    results: dict[str, list[dict]] = {t: [] for t in trainers}
    here = Path(__file__).resolve().parents[1]  # this checkout, whatever pip installed
    for run in range(args.runs):
        order = trainers if run % 2 == 0 else trainers[::-1]  # same noise for all, both orders
        for trainer in order:
            worker = "gensim" if trainer == "gensim" else "pin2vec"
            # Each pin2vec column imports its own checkout's package (until issue 9's last
            # round this checkout's column imported whichever one pip had installed).
            env = None if worker == "gensim" else checkout_env(roots.get(trainer, here))
            cmd = [sys.executable, __file__, "--worker", worker,
                   "--corpus", str(corpus), f"--processes={variants.get(trainer, 1)}"]
            cmd += [f"--{k.replace('_', '-')}={getattr(args, k)}" for k in (
                "dim", "window", "negative", "ns_exponent", "sample", "epochs", "alpha", "workers",
                "seed")]
            if args.batch_size:
                cmd.append(f"--batch-size={args.batch_size}")
            out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                                 env=env).stdout
            results[trainer].append(json.loads(out.strip().splitlines()[-1]))
            print(f"  run {run + 1} {trainer:8s} {results[trainer][-1]}", flush=True)
    med = {t: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for t, rs in results.items()}
    print(f"\nsettings: sg, dim={args.dim}, window={args.window}, negative={args.negative}, "
          f"ns_exponent={args.ns_exponent}, sample={args.sample}, epochs={args.epochs}, "
          f"alpha={args.alpha}, "
          f"workers={args.workers}; median of {args.runs} run(s); pin2vec-pN: processes=N"
          + (f"; base-pN: {args.against}" if args.against else ""))
    ours = [t for t in trainers if t != "gensim"]
    ratios = [] if args.skip_gensim else ours
    print(f"{'':12s}" + "".join(f"{t:>14s}" for t in trainers)
          + "".join(f"{t + '/gensim':>20s}" for t in ratios))
    for key, label, fmt in (("words_per_s", "words/s", "{:14,.0f}"),
                            ("peak_rss_mb", "peak RSS MB", "{:14,.0f}"),
                            ("page_faults", "page faults", "{:14,.0f}"),
                            ("mean_cos", "mean cos", "{:14.3f}"),
                            ("purity10", "purity@10", "{:14.4f}"), ("hr10", "HR@10", "{:14.4f}"),
                            ("hr10_wc", "HR@10 W.C", "{:14.4f}")):
        if key not in med[trainers[0]]:
            continue
        row = f"{label:12s}" + "".join(fmt.format(med[t][key]) for t in trainers)
        row += "".join(f"{med[t][key] / max(med['gensim'][key], 1e-12):20.2f}" for t in ratios)
        print(row)
    if ratios and args.runs > 1:
        # Each run's words/s against gensim's in the same round: the spread shows the noise.
        per_run = {t: [a["words_per_s"] / b["words_per_s"]
                       for a, b in zip(results[t], results["gensim"])] for t in ratios}
        print(f"{'words/s ratio per run (median, range)':>40s}")
        for t in ratios:
            r = per_run[t]
            print(f"  {t + '/gensim':20s} {statistics.median(r):.2f} ({min(r):.2f}-{max(r):.2f})")
    if pair and args.runs > 1:
        # The checkout against --against, run by run (each pair ran back to back): the A/B.
        mine, base = pair
        r = [a["words_per_s"] / b["words_per_s"] for a, b in zip(results[mine], results[base])]
        print(f"  {mine + '/' + base:20s} {statistics.median(r):.2f} ({min(r):.2f}-{max(r):.2f})"
              f"  <- this checkout against --against, per run")


def memory_check(args) -> None:
    """Write a big SESSIONS dir in chunks, then train 1 epoch from it in a subprocess."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from recommender.core.artifacts import write_manifest, write_parquet

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_mem_"))
    sessions_dir = workdir / "sessions"
    if not (sessions_dir / "manifest.json").is_file():
        sessions_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        flat, lengths, _ = make_corpus(args.mem_tokens, args.mem_items, args.topics, args.noise)
        schema = pa.schema([("session_id", pa.string()), ("user_id", pa.string()),
                            ("start", pa.timestamp("us", tz="UTC")),
                            ("end", pa.timestamp("us", tz="UTC")),
                            ("items", pa.list_(pa.string())), ("length", pa.int32())])
        ends = np.cumsum(lengths)
        per_file = 1_000_000
        for f, s0 in enumerate(range(0, len(lengths), per_file)):
            s1 = min(s0 + per_file, len(lengths))
            t_lo, t_hi = ends[s0] - lengths[s0], ends[s1 - 1]
            values = pc.binary_join_element_wise(
                "i", pc.cast(pa.array(flat[t_lo:t_hi]), pa.string()), "")
            offsets = pa.array(np.concatenate([[0], np.cumsum(lengths[s0:s1])]).astype(np.int32))
            n = s1 - s0
            ts = pa.array(np.full(n, 1_700_000_000_000_000), pa.timestamp("us", tz="UTC"))
            sid = pc.cast(pa.array(np.arange(s0, s1)), pa.string())
            table = pa.table([sid, sid, ts, ts, pa.ListArray.from_arrays(offsets, values),
                              pa.array(lengths[s0:s1].astype(np.int32))], schema=schema)
            pq.write_table(table, sessions_dir / f"sessions-{f:05d}.parquet",
                           row_group_size=65_536)
        ids, counts = np.unique(flat, return_counts=True)
        write_parquet(sessions_dir / "items.parquet", pa.table({
            "item_id": pc.binary_join_element_wise("i", pc.cast(pa.array(ids), pa.string()), ""),
            "engagements": pa.array(counts, pa.int64()), "sessions": pa.array(counts, pa.int64())}))
        write_manifest(sessions_dir, {
            "format_version": 1, "kind": "sessions", "inputs": ["<bench_trainer>"], "options": {},
            "counts": {"sessions": len(lengths), "items": len(ids), "tokens": int(len(flat))}})
        print(f"wrote {sessions_dir}: {len(flat):,} tokens, {len(lengths):,} sessions, "
              f"{len(ids):,} items in {time.perf_counter() - t0:.0f}s", flush=True)
        del flat, lengths
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); from bench_trainer import "
            "peak_rss_mb; from recommender.train.trainer import TrainConfig, train; "
            "t = time.perf_counter(); "
            f"m = train({str(sessions_dir)!r}, TrainConfig(dim=64, epochs=1, progress=False)); "
            "print(len(m.item_ids), m.manifest['corpus']['tokens'], time.perf_counter() - t, "
            "m.manifest['words_per_second'], peak_rss_mb())")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], check=True,
                         capture_output=True, text=True)
    items, tokens, seconds, wps, rss = out.stdout.split()
    print(f"memory check: {int(tokens):,} tokens, {int(items):,} items, dim 64, 1 epoch from "
          f"{sessions_dir}: peak RSS {float(rss):,.0f} MB (limit 3,072 MB), "
          f"{float(seconds):.0f}s total, {float(wps):,.0f} words/s in the epoch")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--log", choices=["planted", "dense"], default="planted",
                   help="planted-topic corpus (default) or reallike.dense_log")
    p.add_argument("--scale", type=float, default=1.0, help="size factor of --log dense (1)")
    p.add_argument("--tokens", type=int, default=2_000_000, help="corpus tokens (2M)")
    p.add_argument("--items", type=int, default=50_000, help="catalogue size (50k)")
    p.add_argument("--topics", type=int, default=500, help="planted topics (500)")
    p.add_argument("--noise", type=float, default=0.1, help="share of off-topic items (0.1)")
    p.add_argument("--runs", type=int, default=3, help="runs per trainer; medians shown (3)")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--negative", type=int, default=5)
    p.add_argument("--ns-exponent", type=float, default=0.75)
    p.add_argument("--sample", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--alpha", type=float, default=0.025)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--processes", default="1",
                   help="pin2vec's processes; a comma list runs each as its own column, e.g. "
                   "1,2 (1 = reproducible; N > 1 = Hogwild on shared weights)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=None, help="pin2vec batch size (auto)")
    p.add_argument("--skip-gensim", action="store_true", help="only run pin2vec")
    p.add_argument("--against", metavar="DIR",
                   help="another pin2vec checkout (e.g. `git worktree add DIR <commit>`) timed in "
                   "the same run as column base-pN, N the largest --processes")
    p.add_argument("--memory-check", action="store_true",
                   help="50M tokens / 200k items from a SESSIONS dir, 1 epoch, report peak RSS")
    p.add_argument("--mem-tokens", type=int, default=50_000_000)
    p.add_argument("--mem-items", type=int, default=200_000)
    p.add_argument("--workdir", help="where the memory check keeps its SESSIONS dir (reused)")
    p.add_argument("--worker", choices=["pin2vec", "gensim"], help=argparse.SUPPRESS)
    p.add_argument("--corpus", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(run_one(args)))
    elif args.memory_check:
        memory_check(args)
    else:
        compare(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
