"""Budgeted search for related items: training settings, scorings and count-based scorers.

Caselles-Dupré et al. (RecSys 2018) showed that word2vec's NLP defaults are far from best for
recommendation: the negative-sampling exponent (negative values included), the window, subsampling
and the number of epochs matter most. ``tune`` searches those plus ``dim``, ``negative`` and the
scoring (every trained model is scored both ways, which costs one table, not another training run).

The search: the count-based scorers and EASE (``evaluate.select``) are scored first -- they are
cheap and rank on the same leaderboard. Then training trials: trial 0 is the defaults; then
random draws from :data:`SPACE` (``alpha`` included); the second half mutates the best settings
so far. Each trained model is scored as ``similar``, ``complementary`` and as hybrids with the
best co-occurrence and sequential-rule scorers over a grid of blend weights.

The time budget is hard. Every trial trains in a child process that is killed at its deadline
(the budget minus what the final retrain of the best will take), a trial whose estimated cost --
tokens x epochs x window at the speed measured so far -- cannot fit is not started, and the final
retrain is itself bounded: total wall time stays within ``budget x 1.05``. The validation split is
the latest ``test_fraction`` of the sessions by start time; the winner is rebuilt on all of them
and written to ``OUTPUT/index``, ready for ``RelatedItems.load``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import shutil
import subprocess
import sys
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
from recommender.evaluate.splits import time_split

log = logging.getLogger(__name__)

SPACE: dict[str, list] = {
    "window": [1, 2, 3, 5, 8, 12, 0],
    "negative": [3, 5, 10, 15, 20],
    "ns_exponent": [-1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0],
    "sample": [0.0, 1e-5, 1e-4, 1e-3, 1e-2],
    "epochs": [5, 10, 20, 40],
    "dim": [32, 64, 128],
    "alpha": [0.0125, 0.025, 0.05, 0.1],
}
SCORINGS = ("similar", "complementary")


@dataclass(frozen=True)
class TuneConfig:
    trials: int = 20  # training runs, each scored with both scorings
    time_budget: float | None = None  # seconds, hard: trials are stopped, total <= 1.05x
    k: int = 10  # HR@k is the objective
    test_fraction: float = 0.2  # latest sessions held out for validation
    seed: int = 0  # drives the search and every trial's training seed
    workers: int = 2
    ease_max_items: int = 10_000  # EASE is scored only up to this many items
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


def _trial_command(spec_path: Path) -> list[str]:
    """The child process that trains one trial (tests replace it with a fake slow one)."""
    return [sys.executable, "-m", "recommender.evaluate.tune", str(spec_path)]


def run_trial(spec: dict, work: Path, timeout: float) -> tuple[str, float]:
    """Train ``spec`` in a child process killed after ``timeout`` seconds.

    Returns (status, seconds): ``"done"`` (the MODEL dir is at ``spec["output"]``), ``"stopped"``
    (killed at the deadline) or ``"failed"``.
    """
    path = work / f"trial-{spec['trial']}.json"
    path.write_text(json.dumps(spec))
    t0 = time.monotonic()
    proc = subprocess.Popen(_trial_command(path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(timeout=None if timeout == float("inf") else max(timeout, 0.01))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return "stopped", time.monotonic() - t0
    if proc.returncode != 0:
        log.warning("trial %s failed: %s", spec["trial"], err.decode(errors="replace")[-500:])
        return "failed", time.monotonic() - t0
    return "done", time.monotonic() - t0


def _train_child(spec_path: str) -> None:
    from recommender.train import TrainConfig, train

    spec = json.loads(Path(spec_path).read_text())
    train(spec["sessions"], TrainConfig(**spec["config"])).save(spec["output"], overwrite=True)


def process_age() -> float:
    """Seconds since this process started (Linux ``/proc``; 0 where unknown)."""
    try:
        import os

        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


class Clock:
    """The budget: seconds left for trials, given what the final rebuild is expected to cost."""

    def __init__(self, budget: float | None, started: float | None = None):
        self.started = time.monotonic() if started is None else started
        self.budget = budget

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def left(self, reserve: float = 0.0) -> float:
        if self.budget is None:
            return float("inf")
        return self.budget - self.elapsed() - reserve

    def hard_left(self) -> float:
        """Seconds to the end of the budget itself: the final rebuild aims there, and the
        5% above it absorb process start-up and the last writes."""
        return float("inf") if self.budget is None else self.budget - self.elapsed()


def _cost_units(params: dict, tokens: int) -> float:
    """Training work of ``params``: tokens x epochs x (window, 0 = ~10), the pairs it trains."""
    window = params["window"] or 10
    return tokens * params["epochs"] * (window + 1) * (1 + params["negative"] / 5) / 2


def _row(trial, params, cand_name, kind, score, k, seconds=None, status="done", spread=None):
    return {"trial": trial, "scorer": cand_name, "kind": kind,
            **{n: params.get(n) for n in SPACE},
            f"hr@{k}": score.metrics[f"hr@{k}"] if score else None,
            f"mrr@{k}": score.metrics[f"mrr@{k}"] if score else None,
            f"ndcg@{k}": score.metrics[f"ndcg@{k}"] if score else None,
            "mean_cosine": spread, "train_seconds": None if seconds is None else round(seconds, 3),
            "status": status}


def tune(sessions_dir: str | Path, output_dir: str | Path, config: TuneConfig,
         overwrite: bool = False, started: float | None = None) -> dict:
    """Search, then rebuild the best scorer on all of ``sessions_dir`` into ``output_dir/index``.

    Writes ``leaderboard.parquet`` (one row per scorer and trial, best first, stopped and
    skipped trials included), ``best.json``, ``index/`` (and ``model/`` when the winner uses
    vectors) and returns the content of ``best.json``.
    """
    from recommender.evaluate.baselines import Candidate
    from recommender.evaluate.next_item import load_split
    from recommender.evaluate.select import HYBRID_EVIDENCE, hybrid_candidates, select
    from recommender.scorers import ItemVectors
    from recommender.train import Model, TrainConfig

    clock = Clock(config.time_budget, started)
    read_sessions_manifest(sessions_dir)
    out = prepare_output_dir(output_dir, overwrite, inputs=[sessions_dir])
    work = out / ".split"
    time_split(sessions_dir, work / "train", work / "valid", config.test_fraction, overwrite=True)
    val = load_split(work / "train", work / "valid")
    k, tokens = config.k, len(val.train.rows)
    # The count-based scorers are cheap next to training, but not free on a busy machine: they
    # get at most half of the budget; what they took sets the reserve for the final rebuild.
    t0 = time.monotonic()
    counts_deadline = None if config.time_budget is None else \
        clock.started + 0.5 * config.time_budget
    counts = select(val, None, k, max(20, k), config.ease_max_items, hybrids=False,
                    deadline=counts_deadline)
    count_seconds = (time.monotonic() - t0) / max(len(counts.scores), 1)
    rows = [_row(None, {}, c.name, c.kind, s, k) for c, s in counts.scores]
    best = max(((s.metrics[f"hr@{k}"], s.metrics[f"mrr@{k}"], c, None) for c, s in counts.scores),
               key=lambda t: t[:2])
    hybrid_from = [c for f, c in counts.family_best.items()
                   if f in ("co-occurrence", "sequential rules")]
    baselines = {s.name: s for c, s in counts.scores if c.baseline}

    from recommender.evaluate.select import EXACT_MAX_ITEMS

    rng, seen, best_params, rate = random.Random(config.seed), set(), None, None
    n_trials = config.trials
    if val.train.n_items > EXACT_MAX_ITEMS:
        log.warning("%d items: embeddings are not scored exactly above %d; ranking the "
                    "count-based scorers only", val.train.n_items, EXACT_MAX_ITEMS)
        n_trials = 0
    trial_seconds, score_seconds = [], 0.0
    bar = progress_bar(range(n_trials), enabled=config.progress, desc="tune", unit="trial")
    for trial in bar:
        params = propose(trial, n_trials, best_params, rng, seen)
        bar.set_description("trial {}: {}".format(trial, " ".join(
            f"{n}={params[n]}" for n in SPACE)))
        # The final rebuild of an embedding winner costs about one trial on more data.
        reserve = 1.3 * max(trial_seconds, default=0.0) + 2.0 + 2 * count_seconds + score_seconds
        left = clock.left(reserve)
        est = _cost_units(params, tokens) / rate if rate else 0.0
        if left <= 0 or est > left:
            rows.append(_row(trial, params, "pin2vec", "embedding", None, k, status="skipped"))
            if left <= 0:
                break
            continue
        spec = {"trial": trial, "sessions": str(work / "train"), "output": str(work / "model"),
                "config": dataclasses.asdict(TrainConfig(
                    **params, seed=config.seed + trial, workers=config.workers,
                    progress=False))}
        status, seconds = run_trial(spec, work, left)
        if status != "done":
            rows.append(_row(trial, params, "pin2vec", "embedding", None, k, seconds, status))
            continue
        trial_seconds.append(seconds)
        rate = _cost_units(params, tokens) / max(seconds, 1e-3)
        model = Model.load(work / "model")
        vectors, spread = ItemVectors.from_model(model), mean_cosine(model.vectors)
        cands = [Candidate(f"pin2vec ({s})", "embedding", "embedding", {"scoring": s})
                 for s in ("similar", "complementary")]
        cands += hybrid_candidates(hybrid_from, HYBRID_EVIDENCE)
        t_score = time.monotonic()
        trial_sel = _score(cands, val, vectors, k)
        score_seconds = max(score_seconds, time.monotonic() - t_score)
        for cand, s in trial_sel:
            rows.append(_row(trial, params, cand.name, cand.kind, s, k, seconds, spread=spread))
            key = (s.metrics[f"hr@{k}"], s.metrics[f"mrr@{k}"])
            if key > best[:2]:
                best, best_params = (*key, cand, params), params
        bar.set_postfix(best_hr=f"{best[0]:.4f}", best=best[2].kind)
    bar.close()

    hr_key, mrr_key = f"hr@{k}", f"mrr@{k}"
    rows.sort(key=lambda r: (-(r[hr_key] or -1), -(r[mrr_key] or -1), r["trial"] or -1))
    write_parquet(out / "leaderboard.parquet", pa.Table.from_pylist(rows))
    winner, params = best[2], best[3]
    ranked = [(s.metrics[hr_key], s.metrics[mrr_key], c) for c, s in counts.scores]
    fallback = max([r for r in ranked if r[2].kind == "counts"] or ranked, key=lambda t: t[:2])[2]
    shipped = _ship(sessions_dir, out, winner, params, config, clock, work, fallback,
                    build_seconds=score_seconds / max(len(HYBRID_EVIDENCE), 1) + 2 * count_seconds,
                    fallback_seconds=2 * count_seconds,
                    train_seconds=max(trial_seconds, default=0.0) / max(tokens, 1))
    shutil.rmtree(work, ignore_errors=True)
    done = [r for r in rows if r["kind"] == "embedding" and r["status"] == "done"]
    summary = {
        "format_version": 1,
        "kind": "tune",
        "sessions": str(sessions_dir),
        "objective": hr_key,
        "time_budget": config.time_budget,
        "trials": len({r["trial"] for r in done}),
        "stopped": len({r["trial"] for r in rows if r["status"] == "stopped"}),
        "skipped": len({r["trial"] for r in rows if r["status"] == "skipped"}),
        "seconds": round(clock.elapsed(), 1),
        "best": {"scorer": winner.name, "kind": winner.kind, "candidate": winner.to_json(),
                 "train_config": params, hr_key: best[0], mrr_key: best[1],
                 "validated": shipped is winner},
        "shipped": shipped.to_json(),
        "baselines": {name: {hr_key: s.metrics[hr_key], mrr_key: s.metrics[mrr_key]}
                      for name, s in baselines.items()},
    }
    write_json(out / "best.json", summary)
    return summary


def _score(cands, split, vectors, k):
    from recommender.evaluate.baselines import build
    from recommender.evaluate.scorecard import score_table

    cache, out = {}, []
    for cand in cands:
        table = build(cand, split.train, vectors, max(20, k), cache)
        out.append((cand, score_table(cand.name, table.item_ids, table.neighbors, split,
                                      tuple(sorted({k, 20})))))
    return out


def _ship(sessions_dir, out: Path, winner, params, config: TuneConfig, clock: Clock, work: Path,
          fallback, build_seconds: float = 0.0, fallback_seconds: float = 0.0,
          train_seconds: float = 0.0):
    """Rebuild ``winner`` on all sessions into ``out/index`` within the hard budget.

    If retraining the model (or EASE's solve) cannot finish in time, ``fallback`` -- the best
    count-based scorer -- is shipped instead (``best.json`` says so with ``validated: false``).
    """
    from recommender.evaluate.baselines import build
    from recommender.evaluate.select import ease_seconds
    from recommender.scorers import ItemVectors, from_sessions_dir, write_index
    from recommender.train import Model, TrainConfig

    data = from_sessions_dir(sessions_dir)
    vectors = None
    if winner.kind == "ease" and ease_seconds(data.n_items) > clock.hard_left():
        log.warning("EASE on all sessions would overrun the time budget; shipping %s",
                    fallback.name)
        winner = fallback
    if winner.needs_vectors:
        spec = {"trial": "final", "sessions": str(sessions_dir), "output": str(out / "model"),
                "config": dataclasses.asdict(TrainConfig(**params, seed=config.seed,
                                                         workers=config.workers,
                                                         progress=False))}
        # Leave time to build the table from the new vectors, or else the fallback, and write
        # the index; do not start a retrain that is expected to overrun (seconds per token of
        # the slowest trial, times the tokens of all sessions, +30%).
        left = clock.hard_left() - max(2 * build_seconds, fallback_seconds) - 2.0
        expected = 1.3 * train_seconds * len(data.rows)
        status = "skipped" if expected > left else run_trial(spec, work, left)[0]
        if status == "done":
            vectors = ItemVectors.from_model(Model.load(out / "model"))
        else:
            log.warning("retraining the best model did not fit the time budget; shipping %s",
                        fallback.name)
            winner = fallback
    table = build(winner, data, vectors, max(20, config.k))
    extra = {"candidate": winner.to_json(), "sessions_dir": str(sessions_dir)}
    if vectors is not None:
        extra["model_dir"] = str(out / "model")
    write_index(table, out / "index", overwrite=True, extra=extra)
    return winner


if __name__ == "__main__":
    _train_child(sys.argv[1])
