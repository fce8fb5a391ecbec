"""Budgeted hyperparameter search for related items, scored by next-item HR@K on a time split.

Caselles-Dupré et al. (RecSys 2018) showed that word2vec's NLP defaults are far from best for
recommendation: the negative-sampling exponent (negative values included), the window, subsampling
and the number of epochs matter most. ``tune`` searches those plus ``dim``, ``negative`` and the
scoring (every trained model is scored both ways, which costs one table, not another training run).

The search: trial 0 is the defaults; then random draws from :data:`SPACE`; the second half of the
budget mutates the best configuration so far one or two settings at a time. The validation split
is the latest ``test_fraction`` of the given sessions by start time; the winner is retrained on
all of them and indexed, ready for ``RelatedItems.load(OUTPUT/index)``.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from recommender.core.artifacts import prepare_output_dir, write_json, write_parquet
from recommender.core.errors import ConfigError
from recommender.core.progress import progress_bar
from recommender.core.sessions import read_sessions_manifest
from recommender.core.vectors import unit_rows
from recommender.evaluate.next_item import baselines, evaluate, load_eval_data, model_recommender
from recommender.evaluate.splits import time_split

log = logging.getLogger(__name__)

SPACE: dict[str, list] = {
    "window": [1, 2, 3, 5, 8, 12, 0],
    "negative": [3, 5, 10, 15, 20],
    "ns_exponent": [-1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0],
    "sample": [0.0, 1e-5, 1e-4, 1e-3, 1e-2],
    "epochs": [5, 10, 20, 40],
    "dim": [32, 64, 128],
}
SCORINGS = ("similar", "complementary")


@dataclass(frozen=True)
class TuneConfig:
    trials: int = 20  # training runs, each scored with both scorings
    time_budget: float | None = None  # seconds; no new trial starts after it
    k: int = 10  # HR@k is the objective
    test_fraction: float = 0.2  # latest sessions held out for validation
    seed: int = 0  # drives the search and every trial's training seed
    workers: int = 2
    progress: bool = True

    def __post_init__(self):
        if self.trials < 1:
            raise ConfigError(f"trials must be at least 1, got {self.trials}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise ConfigError(f"time budget must be positive seconds, got {self.time_budget}")
        if self.k < 1:
            raise ConfigError(f"k must be at least 1, got {self.k}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"test fraction must be in (0, 1), got {self.test_fraction}")


def propose(trial: int, trials: int, best: dict | None, rng: random.Random, seen: set) -> dict:
    """The settings for trial ``trial``: defaults, then random, then mutations of the best."""
    from recommender.train.trainer import TrainConfig

    defaults = {name: getattr(TrainConfig(), name) for name in SPACE}
    for _ in range(100):
        if trial == 0:
            params = dict(defaults)
        elif best is None or trial < max(trials // 2, 1):
            params = {name: rng.choice(values) for name, values in SPACE.items()}
        else:
            params = dict(best)
            for name in rng.sample(sorted(SPACE), rng.choice((1, 2))):
                params[name] = rng.choice(SPACE[name])
        key = tuple(sorted(params.items()))
        if key not in seen:
            seen.add(key)
            return params
    return params


def mean_cosine(vectors, pairs: int = 4096, seed: int = 0) -> float:
    """Mean cosine of random item pairs: near 1 means the vectors share one direction.

    Such embeddings can still rank well, but their scores are squeezed towards 1; the leaderboard
    shows it so that a user can prefer a close runner-up with informative scores.
    """
    unit = unit_rows(vectors)
    rng = np.random.default_rng(seed)
    i, j = rng.integers(len(unit), size=(2, pairs))
    keep = i != j
    return float(np.einsum("nd,nd->n", unit[i[keep]], unit[j[keep]]).mean())


def tune(sessions_dir: str | Path, output_dir: str | Path, config: TuneConfig,
         overwrite: bool = False) -> dict:
    """Search, then train and index the best settings on all of ``sessions_dir``.

    Writes ``leaderboard.parquet`` (one row per trial and scoring, best first), ``best.json``,
    ``model/`` and ``index/`` into ``output_dir`` and returns the content of ``best.json``.
    """
    from recommender.index.build import IndexConfig, build_index
    from recommender.train.trainer import TrainConfig, train

    read_sessions_manifest(sessions_dir)
    out = prepare_output_dir(output_dir, overwrite, inputs=[sessions_dir])
    work = out / ".split"
    time_split(sessions_dir, work / "train", work / "valid", config.test_fraction, overwrite=True)
    data = load_eval_data(work / "train", work / "valid")
    base = {r.name: r for r in evaluate(baselines(data.counter, config.k), data, config.k)}
    k = config.k

    rng, seen, rows, best = random.Random(config.seed), set(), [], None
    started = time.monotonic()
    bar = progress_bar(range(config.trials), enabled=config.progress, desc="tune", unit="trial")
    for trial in bar:
        if config.time_budget and time.monotonic() - started > config.time_budget:
            log.info("time budget of %.0f s used after %d trials", config.time_budget, trial)
            break
        params = propose(trial, config.trials, best and best["params"], rng, seen)
        t0 = time.monotonic()
        cfg = TrainConfig(**params, seed=config.seed + trial, workers=config.workers,
                          progress=False)
        model = train(work / "train", cfg)
        seconds = time.monotonic() - t0
        spread = mean_cosine(model.vectors)
        recs = [model_recommender(model, s, k) for s in SCORINGS]
        for scoring, result in zip(SCORINGS, evaluate(recs, data, k)):
            row = {"trial": trial, **params, "scoring": scoring, f"hr@{k}": result.hr,
                   f"mrr@{k}": result.mrr, f"ndcg@{k}": result.ndcg,
                   "coverage": result.coverage, "mean_cosine": spread,
                   "train_seconds": round(seconds, 3)}
            rows.append(row)
            if best is None or (result.hr, result.mrr) > (best["hr"], best["mrr"]):
                best = {"params": params, "scoring": scoring, "hr": result.hr,
                        "mrr": result.mrr, "trial": trial}
        bar.set_postfix(best_hr=f"{best['hr']:.4f}", cooc=f"{base['co-occurrence'].hr:.4f}")
    bar.close()

    rows.sort(key=lambda r: (-r[f"hr@{k}"], -r[f"mrr@{k}"], r["trial"]))
    write_parquet(out / "leaderboard.parquet", pa.Table.from_pylist(rows))
    shutil.rmtree(work)

    final = TrainConfig(**best["params"], seed=config.seed, workers=config.workers,
                        progress=config.progress)
    train(sessions_dir, final).save(out / "model")
    index = build_index(out / "model", out / "index",
                        IndexConfig(k=max(20, k), scoring=best["scoring"],
                                    progress=config.progress))
    summary = {
        "format_version": 1,
        "kind": "tune",
        "sessions": str(sessions_dir),
        "objective": f"hr@{k}",
        "trials": len({r["trial"] for r in rows}),
        "seconds": round(time.monotonic() - started, 1),
        "best": {"train_config": dataclasses.asdict(final), "scoring": best["scoring"],
                 f"hr@{k}": best["hr"], f"mrr@{k}": best["mrr"], "trial": best["trial"]},
        "baselines": {name: {f"hr@{k}": r.hr, f"mrr@{k}": r.mrr} for name, r in base.items()},
        "index_recall@10": index.get("recall_at_10", index.get("recall@10")),
    }
    write_json(out / "best.json", summary)
    return summary
