"""The baselines every related-items model is measured against -- each one a shippable scorer.

Every baseline here is a :class:`Candidate` that :func:`build` turns into a
:class:`~recommender.scorers.ScoredTable` from the training sessions, the same kind of table
``pin2vec run`` can ship as an INDEX dir. So a verdict never names a winner the user cannot have.

- most-popular;
- co-occurrence: symmetric counts within ±5 positions (raw);
- sequential rules (Ludewig & Jannach): "b after a" within 10 steps, weighted 1/distance;
- session item-kNN: cosine of the items' session sets;
- EASE (Steck 2019) where the catalogue fits (``recommender.scorers.ease``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from recommender.scorers import (
    CooccurrenceConfig,
    HybridConfig,
    ItemVectors,
    ScoredTable,
    SessionData,
    cooccurrence,
    popular,
)


@dataclass(frozen=True)
class Candidate:
    """A named scorer recipe: ``kind`` plus the parameters :func:`build` needs."""

    name: str
    kind: str  # "popular" | "counts" | "ease" | "embedding" | "hybrid"
    family: str  # the row group in tables: "co-occurrence", "sequential rules", ...
    params: dict = field(default_factory=dict)
    baseline: bool = False

    @property
    def needs_vectors(self) -> bool:
        return self.kind in ("embedding", "hybrid")

    def to_json(self) -> dict:
        return asdict(self)


def counts_candidate(name: str, config: CooccurrenceConfig, baseline: bool = False) -> Candidate:
    return Candidate(name, "counts", config.label, asdict(config), baseline)


POPULAR = Candidate("most-popular", "popular", "most-popular", {}, True)
COOCCURRENCE = counts_candidate("co-occurrence (±5)", CooccurrenceConfig(window=5), True)
SEQUENTIAL_RULES = counts_candidate("sequential rules (10, 1/d)", CooccurrenceConfig(
    window=10, directed=True, weighting="distance"), True)
ITEM_KNN = counts_candidate("item-kNN (cosine)", CooccurrenceConfig(
    window=0, binary=True, normalize="cosine"), True)


def ease_candidate(lam: float, baseline: bool = False) -> Candidate:
    return Candidate(f"EASE (λ={lam:g})", "ease", "EASE", {"lambda": lam}, baseline)


def baseline_candidates(ease_lambda: float | None = 100.0, cooc_window: int = 5
                        ) -> list[Candidate]:
    """The classic baselines (EASE only when ``ease_lambda`` is given)."""
    cooc = COOCCURRENCE if cooc_window == 5 else counts_candidate(
        f"co-occurrence (±{cooc_window})" if cooc_window else "co-occurrence (session)",
        CooccurrenceConfig(window=cooc_window), True)
    out = [POPULAR, cooc, SEQUENTIAL_RULES, ITEM_KNN]
    return out + ([ease_candidate(ease_lambda, True)] if ease_lambda is not None else [])


def embedding_table(data: SessionData, vectors: ItemVectors, scoring: str, k: int
                    ) -> ScoredTable:
    """Exact embedding neighbours (``similar``: cosine; ``complementary``: input · context)
    over ``data``'s items; items without a vector get popular items."""
    from recommender.scorers.hybrid import HybridScorer

    # A hybrid whose count weight is 0 everywhere ranks by the vectors alone: one code path.
    config = HybridConfig(counts=CooccurrenceConfig(window=1), vectors=scoring,
                          candidates=k, k=k)
    table = HybridScorer(data, vectors, config).table(evidence=float("inf"))
    return ScoredTable(table.item_ids, table.counts, table.neighbors, table.scores, scoring,
                       f"pin2vec ({scoring})", {"k": k})


def build(candidate: Candidate, data: SessionData, vectors: ItemVectors | None, k: int,
          cache: dict | None = None, ease_max_items: int | None = None) -> ScoredTable:
    """The table of ``candidate`` on ``data`` (``vectors`` for embedding and hybrid kinds).

    ``cache`` (a dict the caller keeps) shares EASE's Gram matrix and hybrids' candidate sets
    between candidates that differ only in λ or the blend weight. EASE raises ``EaseTooLarge``
    above ``ease_max_items`` (default: the memory limit, ``scorers.ease.MAX_ITEMS``).
    """
    from recommender.scorers.ease import MAX_ITEMS, check_fits, ease_weights, gram, top_k_dense
    from recommender.scorers.hybrid import HybridScorer

    cache = {} if cache is None else cache
    p = candidate.params
    if candidate.kind == "popular":
        return popular(data, k)
    if candidate.kind == "counts":
        return cooccurrence(data, CooccurrenceConfig(**{**p, "k": k}))
    if candidate.kind == "ease":
        check_fits(data.n_items, ease_max_items or MAX_ITEMS)
        key = ("gram", id(data))
        if key not in cache:
            cache[key] = gram(data)
        nbrs, scores = top_k_dense(ease_weights(cache[key].copy(), p["lambda"]), k)
        return ScoredTable(data.item_ids, data.counts, nbrs, scores, "ease", "EASE",
                           {"lambda": p["lambda"], "k": k})
    if vectors is None:
        raise ValueError(f"{candidate.name} needs item vectors")
    if candidate.kind == "embedding":
        return embedding_table(data, vectors, p["scoring"], k)
    if candidate.kind == "hybrid":
        counts = CooccurrenceConfig(**{**p["counts"], "k": k})
        key = ("hybrid", id(data), id(vectors), counts, p["vectors"])
        if key not in cache:
            cache[key] = HybridScorer(data, vectors, HybridConfig(counts=counts,
                                                                  vectors=p["vectors"], k=k))
        return cache[key].table(p["evidence"])
    raise ValueError(f"unknown candidate kind {candidate.kind!r}")
