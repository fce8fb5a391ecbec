"""Offline next-item evaluation: any INDEX dir or model beside the baseline scorers.

For every consecutive pair ``(a, b)`` in a held-out session, each scorer's top-K related items of
``a`` are checked for ``b`` (:mod:`.scorecard`: HR, MRR, NDCG at 10 and 20, the breakdown by the
query's popularity and the share of unseen queries). Every scorer sees the same pairs. The
baselines (:mod:`.baselines`) are scorers ``pin2vec run`` can ship, so the verdict never names a
winner the user cannot have.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from recommender.core.artifacts import read_manifest
from recommender.core.errors import ArtifactError, ConfigError
from recommender.evaluate.baselines import Candidate, baseline_candidates, build
from recommender.evaluate.scorecard import (
    KS,
    EvalSplit,
    Score,
    make_split,
    score_table,
    time_split_lists,
)
from recommender.scorers import EaseTooLarge

BASELINE_FAMILIES = ("co-occurrence", "sequential rules", "item-kNN", "EASE")


def load_split(sessions_dir: str | Path, test_sessions_dir: str | Path | None = None,
               test_fraction: float = 0.2, target_window: int = 1) -> EvalSplit:
    """Training sessions and held-out pairs: from two SESSIONS dirs, or a time split of one.

    ``target_window`` > 1 scores any of the next N items of the session (``--target window N``).
    """
    if test_sessions_dir is None:
        return make_split(*time_split_lists(sessions_dir, test_fraction), target_window)
    from recommender.core.sessions import read_sessions_table

    train = read_sessions_table(sessions_dir, ("items",)).column(0).combine_chunks()
    test = read_sessions_table(test_sessions_dir, ("items",)).column(0).combine_chunks()
    return make_split(train, test, target_window)


def index_score(index_dir: str | Path, split: EvalSplit, name: str | None = None, ks=KS
                ) -> Score:
    """The scorecard line of an INDEX dir's stored table (any scoring)."""
    manifest = read_manifest(index_dir, "index")
    path = Path(index_dir)
    try:
        neighbors = np.load(path / "neighbors.npy", mmap_mode="r", allow_pickle=False)
        ids = pq.read_table(path / "items.parquet", columns=["item_id"]).column(0)
    except (OSError, ValueError) as e:
        raise ArtifactError(f"cannot read the related table in {path}: {e}") from None
    label = manifest.get("label") or f"pin2vec ({manifest.get('scoring', 'similar')})"
    if neighbors.shape[1] < max(ks):
        raise ConfigError(f"{path} stores K={neighbors.shape[1]} related items per item; the "
                          f"evaluation reports @{max(ks)}: rebuild it with --k {max(ks)}")
    return score_table(name or label, ids.combine_chunks(), np.asarray(neighbors), split, ks,
                       settings=manifest.get("settings", {"scoring": manifest.get("scoring")}))


def candidate_scores(candidates: list[Candidate], split: EvalSplit, vectors=None,
                     ks=KS, ease_max_items: int | None = None) -> tuple[list[Score], list[str]]:
    """Build each candidate on ``split.train`` and score it; EASE that does not fit is a note."""
    scores, notes, cache = [], [], {}
    for cand in candidates:
        try:
            table = build(cand, split.train, vectors, max(ks), cache, ease_max_items)
        except EaseTooLarge as e:
            notes.append(str(e))
            continue
        scores.append(score_table(cand.name, table.item_ids, table.neighbors, split, ks,
                                  settings=cand.params))
    return scores, notes


def baseline_scores(split: EvalSplit, ease_lambda: float | None = 100.0, ks=KS,
                    ease_max_items: int | None = None, cooc_window: int = 5
                    ) -> tuple[list[Score], list[str]]:
    """Most-popular, co-occurrence, sequential rules, item-kNN and EASE (where it fits)."""
    return candidate_scores(baseline_candidates(ease_lambda, cooc_window), split, ks=ks,
                            ease_max_items=ease_max_items)


def family_of(score: Score) -> str:
    for fam in BASELINE_FAMILIES:
        if score.name.lower().startswith(fam.lower()):
            return fam
    return score.name


def verdict(scores: list[Score], shipped: Score, k: int = 10) -> str:
    """One plain sentence: does ``shipped`` beat the best count-based baseline at HR@k?"""
    others = [s for s in scores if s is not shipped and family_of(s) in BASELINE_FAMILIES]
    popular = next((s for s in scores if s.name == "most-popular"), None)
    if not others:
        return f"{shipped.name}: HR@{k} {shipped.hr(k):.4f} (no baseline to compare)"
    best = max(others, key=lambda s: s.hr(k))
    a, b = shipped.hr(k), best.hr(k)
    if a > b:
        lift = f"{a / b:.3f}x" if b > 0 else "infinitely"
        msg = (f"{shipped.name} beats the best baseline, {best.name}, by {lift} at HR@{k} "
               f"({a:.4f} vs {b:.4f}).")
    elif a == b:
        msg = f"{shipped.name} ties the best baseline, {best.name} (HR@{k} {a:.4f})."
    else:
        msg = (f"WARNING: {best.name} beats {shipped.name} on this test (HR@{k} {b:.4f} vs "
               f"{a:.4f}); ship {best.name} instead (`pin2vec run` chooses on validation, "
               "`pin2vec cooccurrence` builds count-based indexes).")
    if popular is not None and a <= popular.hr(k):
        msg += " It does not even beat most-popular."
    return msg


def report(scores: list[Score], verdict_text: str, notes: list[str] = (), ks=KS) -> dict:
    return {"ks": list(ks), "results": [asdict(s) for s in scores], "verdict": verdict_text,
            "notes": list(notes)}


def leakage_warning(model_manifest: dict | None, sessions_dir, test_sessions_dir) -> str | None:
    """A warning when the model was trained on the very sessions it is tested on."""
    from recommender.core.artifacts import file_digest

    source = (model_manifest or {}).get("source_digest")
    if not source:
        return None
    tested = Path(test_sessions_dir or sessions_dir) / "manifest.json"
    if source == file_digest(tested):
        part = ("the test sessions" if test_sessions_dir
                else "all of --sessions, test period included")
        return (f"WARNING: the model was trained on {part}: these numbers are optimistic. Train on "
                "the earlier part only (`pin2vec run` splits by time for you).")
    return None


def _model_manifest(index_dir) -> dict | None:
    model_dir = read_manifest(index_dir, "index").get("model_dir")
    try:
        return read_manifest(model_dir, "model") if model_dir else None
    except ArtifactError:
        return None  # the model was moved or deleted: nothing to compare against
