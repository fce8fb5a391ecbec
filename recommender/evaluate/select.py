"""Validated model selection: score candidate scorers on a validation split, pick the winner.

``pin2vec run`` carves the validation split from the end of the training period (the latest
sessions before the test cutoff), scores every candidate on it with the same pairs, and ships
the one with the best validation HR@K (ties: MRR@K, then the simpler scorer -- earlier in the
pool). Families whose best variant is reported on the test set: most-popular, co-occurrence,
sequential rules, item-kNN, EASE (when it fits), the two embedding scorings and the hybrid.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from recommender.evaluate.baselines import (
    Candidate,
    baseline_candidates,
    build,
    counts_candidate,
    ease_candidate,
)
from recommender.evaluate.scorecard import EvalSplit, Score, score_table
from recommender.scorers import CooccurrenceConfig, EaseTooLarge, ItemVectors
from recommender.scorers.ease import check_fits

log = logging.getLogger(__name__)

EASE_LAMBDAS = (20.0, 200.0, 1000.0)
HYBRID_EVIDENCE = (1.0, 5.0, 20.0, 100.0)
EASE_RUN_MAX_ITEMS = 10_000  # run's default: one EASE solve costs minutes above this on 2 cores
# Embedding and hybrid candidates are scored with exact neighbours ([V, V] products in blocks):
# above this many items that takes too long for a selection step, and they are skipped.
EXACT_MAX_ITEMS = 100_000


def usable_vectors(vectors, n_items: int, notes: list[str]):
    """``vectors``, or None with a note when the catalogue is too large to score them exactly."""
    if vectors is not None and n_items > EXACT_MAX_ITEMS:
        notes.append(f"embedding and hybrid candidates skipped: {n_items:,} items is more than "
                     f"{EXACT_MAX_ITEMS:,} for exact neighbours; use `pin2vec index` + `evaluate`")
        return None
    return vectors


def count_variants() -> list[Candidate]:
    """Co-occurrence, sequential-rule and item-kNN variants tried on validation."""
    c = CooccurrenceConfig
    return [
        counts_candidate("co-occurrence (±2, shrunk)", c(window=2, normalize="shrunk")),
        counts_candidate("co-occurrence (±5, shrunk)", c(window=5, normalize="shrunk")),
        counts_candidate("sequential rules (10, 1/d, shrunk)", c(
            window=10, directed=True, weighting="distance", normalize="shrunk")),
        counts_candidate("sequential rules (10, 1/d, shrunk 50)", c(
            window=10, directed=True, weighting="distance", normalize="shrunk", shrink=50.0)),
        counts_candidate("item-kNN (shrunk)", c(window=0, binary=True, normalize="shrunk")),
    ]


def embedding_candidates() -> list[Candidate]:
    return [Candidate(f"pin2vec ({s})", "embedding", "embedding", {"scoring": s})
            for s in ("similar", "complementary")]


def hybrid_candidates(counts: list[Candidate], evidences=HYBRID_EVIDENCE) -> list[Candidate]:
    """Hybrids of each given count scorer with each embedding scoring and blend weight."""
    out = []
    for c in counts:
        for vec in ("similar", "complementary"):
            for e in evidences:
                out.append(Candidate(f"hybrid ({c.name} + {vec}, evidence {e:g})", "hybrid",
                                     "hybrid", {"counts": c.params, "vectors": vec,
                                                "evidence": e}))
    return out


@dataclass
class Selection:
    """Validation scores of every candidate, the winner and each family's best."""

    scores: list[tuple[Candidate, Score]]
    winner: Candidate
    family_best: dict[str, Candidate]
    notes: list[str]
    seconds: float


def _key(score: Score, k: int) -> tuple:
    return (score.metrics[f"hr@{k}"], score.metrics[f"mrr@{k}"])


def ease_seconds(n_items: int) -> float:
    """A generous estimate of one EASE solve on this kind of machine (2 shared cores).

    Measured: 4,211 items took 23 s (``np.linalg.inv`` under load); the solve grows as items³.
    """
    return 0.5 * (n_items / 1000) ** 3 + 1.0


def select(split: EvalSplit, vectors: ItemVectors | None, k: int = 10, table_k: int = 20,
           ease_max_items: int = EASE_RUN_MAX_ITEMS, hybrids: bool = True,
           progress=None, deadline: float | None = None) -> Selection:
    """Score the candidate pool on ``split`` and pick the winner (see the module docstring).

    With ``deadline`` (a ``time.monotonic()`` value) no candidate starts once it has passed,
    and no EASE solve starts that is estimated to end after it; the skipped ones are noted.
    """
    started = time.perf_counter()
    data, notes, cache = split.train, [], {}
    ks = tuple(sorted({k, table_k}))
    vectors = usable_vectors(vectors, data.n_items, notes)
    pool = [c for c in baseline_candidates(None)] + count_variants()
    try:
        check_fits(data.n_items, ease_max_items)
        pool += [ease_candidate(lam) for lam in EASE_LAMBDAS]
    except EaseTooLarge as e:
        notes.append(str(e))
    if vectors is not None:
        pool += embedding_candidates()
    scored: list[tuple[Candidate, Score]] = []

    def run(cands):
        for cand in cands:
            now = time.monotonic()
            if deadline is not None and scored and (now >= deadline or (
                    cand.kind == "ease" and now + ease_seconds(data.n_items) > deadline)):
                notes.append(f"{cand.name} not scored: the time budget would not allow it")
                continue
            if progress:
                progress(cand.name)
            table = build(cand, data, vectors, table_k, cache)
            scored.append((cand, score_table(cand.name, table.item_ids, table.neighbors, split,
                                             ks, settings=cand.params)))

    run(pool)
    if vectors is not None and hybrids:
        # The hybrid's count source: the best co-occurrence and the best sequential rules.
        best_counts = {}
        for cand, s in scored:
            if cand.kind == "counts" and cand.family in ("co-occurrence", "sequential rules"):
                if cand.family not in best_counts or _key(s, k) > _key(best_counts[cand.family][1],
                                                                          k):
                    best_counts[cand.family] = (cand, s)
        run(hybrid_candidates([c for c, _ in best_counts.values()]))
    family_best: dict[str, tuple[Candidate, Score]] = {}
    for cand, s in scored:
        fam = cand.family if cand.kind != "embedding" else cand.name
        if fam not in family_best or _key(s, k) > _key(family_best[fam][1], k):
            family_best[fam] = (cand, s)
    winner = max(scored, key=lambda cs: _key(cs[1], k))[0]  # max keeps the first of ties
    return Selection(scored, winner, {f: c for f, (c, _) in family_best.items()}, notes,
                     time.perf_counter() - started)
