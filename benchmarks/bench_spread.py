"""How far item vectors spread: pin2vec vs gensim on the same sessions, side by side.

Prints the mean cosine of random item pairs (near 1 = the vectors share one direction, so cosine
scores are squeezed towards 1) and next-item HR@10 for a few settings. Needs the `bench` extra
(gensim) and a SESSIONS dir split by `pin2vec run` (default: ./pin2vec-out from `pin2vec run`).

    python benchmarks/bench_spread.py [--run-dir pin2vec-out]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recommender.core.sessions import iter_sessions
from recommender.evaluate.next_item import evaluate, load_eval_data, model_recommender
from recommender.evaluate.tune import mean_cosine
from recommender.train.trainer import TrainConfig, train

SETTINGS = [
    dict(dim=128, window=2, negative=15, ns_exponent=0.25, sample=1e-4, epochs=40),
    dict(dim=128, window=2, negative=15, ns_exponent=0.25, sample=0.0, epochs=40),
    dict(dim=32, window=3, negative=5, ns_exponent=-0.5, sample=1e-3, epochs=20, alpha=0.05),
]


class _GensimModel:
    def __init__(self, wv, syn1neg):
        self.item_ids = list(wv.index_to_key)
        self.vectors = wv.vectors
        self.context_vectors = syn1neg


def main() -> None:
    from gensim.models import Word2Vec

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", default="pin2vec-out", help="output dir of `pin2vec run`")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    run = Path(args.run_dir)
    sessions = list(iter_sessions(run / "train_sessions"))
    data = load_eval_data(run / "train_sessions", run / "test_sessions")
    print(f"{'settings':<82}{'mean cos':>18}{'HR@10':>18}")
    print(f"{'':<82}{'pin2vec  gensim':>18}{'pin2vec  gensim':>18}")
    for s in SETTINGS:
        ours = train(sessions, TrainConfig(**s, seed=args.seed, progress=False))
        g = Word2Vec(sessions, vector_size=s["dim"], window=s["window"], negative=s["negative"],
                     ns_exponent=s["ns_exponent"], sample=s["sample"], epochs=s["epochs"],
                     alpha=s.get("alpha", 0.025), sg=1, min_count=1, workers=2, seed=args.seed)
        theirs = _GensimModel(g.wv, g.syn1neg)
        hr = [evaluate([model_recommender(m, "similar", 10)], data, 10)[0].hr
              for m in (ours, theirs)]
        label = " ".join(f"{k}={v}" for k, v in s.items())
        print(f"{label:<82}{mean_cosine(ours.vectors):>9.3f}{mean_cosine(theirs.vectors):>8.3f}"
              f"{hr[0]:>10.4f}{hr[1]:>8.4f}")


if __name__ == "__main__":
    main()
