"""Count-based related items: co-occurrence, sequential rules and session item-kNN.

One configuration covers the family (Ludewig & Jannach 2018, "Evaluation of session-based
recommendation algorithms"):

- co-occurrence: undirected pairs within ``window`` positions (``0`` = whole session);
- sequential rules: ``directed=True`` ("b came after a"), ``weighting="distance"`` (1/d);
- session item-kNN: ``binary=True`` (sessions as sets), ``normalize="cosine"``.

Normalisations of the pair weight ``n_ab`` (``n_a``: the item's occurrences, or the sessions
holding it for ``binary``):

- ``raw``: ``n_ab`` -- favours popular partners;
- ``cosine``: ``n_ab / sqrt(n_a n_b)`` -- favours specific partners, noisy for rare ones (one
  co-occurrence with an item seen once scores 1.0);
- ``shrunk``: ``n_ab / (sqrt(n_a n_b) + shrink)`` -- cosine where evidence is ample; where
  ``sqrt(n_a n_b)`` is small next to ``shrink`` it ranks like raw counts, i.e. it shrinks rare
  items' scores toward popularity. (Within one query row the ``n_a`` factors only rescale.)

Rows with fewer than K scored partners are filled with popular items (score 0) unless
``fill_popular=False``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from recommender.core.errors import ConfigError
from recommender.scorers.data import SessionData
from recommender.scorers.pairs import PairCounts, count_pairs
from recommender.scorers.table import ScoredTable, fill_popular, top_k_pairs

NORMALIZE = ("raw", "cosine", "shrunk")
WEIGHTING = ("none", "distance")


@dataclass(frozen=True)
class CooccurrenceConfig:
    """Settings of one count-based scorer (``pin2vec cooccurrence`` maps its flags onto this)."""

    window: int = 5  # positions apart; 0 = whole session (capped at WHOLE_SESSION_SPAN)
    directed: bool = False  # True: only "b after a" counts for a's row (sequential rules)
    weighting: str = "none"  # "none" | "distance" (1/d)
    normalize: str = "raw"  # "raw" | "cosine" | "shrunk"
    shrink: float = 10.0  # the shrunk normalisation's constant (ignored otherwise)
    binary: bool = False  # each pair once per session, sessions as sets (item-kNN)
    k: int = 20  # related items per item
    fill_popular: bool = True  # fill short rows with popular items (score 0)

    def __post_init__(self):
        if not isinstance(self.window, int) or self.window < 0:
            raise ConfigError(f"window must be an integer >= 0 (0 = whole session), got "
                              f"{self.window!r}")
        if self.weighting not in WEIGHTING:
            raise ConfigError(f"weighting must be one of {WEIGHTING}, got {self.weighting!r}")
        if self.normalize not in NORMALIZE:
            raise ConfigError(f"normalize must be one of {NORMALIZE}, got {self.normalize!r}")
        if not self.shrink >= 0:
            raise ConfigError(f"shrink must be >= 0, got {self.shrink!r}")
        if not isinstance(self.k, int) or self.k < 1:
            raise ConfigError(f"k must be a positive integer, got {self.k!r}")

    @property
    def label(self) -> str:
        if self.binary:
            return "item-kNN"
        if self.directed:
            return "sequential rules"
        return "co-occurrence"


SEQUENTIAL_RULES = CooccurrenceConfig(window=10, directed=True, weighting="distance")
ITEM_KNN = CooccurrenceConfig(window=0, binary=True, normalize="cosine")


def item_evidence(data: SessionData, config: CooccurrenceConfig) -> np.ndarray:
    """``n_a`` of the normalisation: occurrences, or sessions holding the item (``binary``)."""
    if not config.binary:
        return data.counts.astype(np.float64)
    from recommender.scorers.pairs import distinct_per_session

    rows, _ = distinct_per_session(data.rows, data.offsets)
    return np.bincount(rows, minlength=data.n_items).astype(np.float64)


def pair_counts(data: SessionData, config: CooccurrenceConfig) -> PairCounts:
    """The aggregated (unnormalised) pair weights of ``data`` under ``config``."""
    return count_pairs(data.rows, data.offsets, data.n_items, config.window, config.directed,
                       config.weighting, config.binary)


def normalise(pairs: PairCounts, n: np.ndarray, config: CooccurrenceConfig) -> np.ndarray:
    """Scores of ``pairs`` under ``config.normalize`` (``n``: per-item evidence)."""
    if config.normalize == "raw":
        return pairs.weights.copy()
    root = np.sqrt(n[pairs.a] * n[pairs.b])
    if config.normalize == "cosine":
        return pairs.weights / root
    return pairs.weights / (root + config.shrink)


def table_from_pairs(pairs: PairCounts, n: np.ndarray, config: CooccurrenceConfig,
                     data: SessionData) -> ScoredTable:
    """Normalise, take the top K per item (ties: the more popular partner), fill, label."""
    score = normalise(pairs, n, config)
    nbrs, scores = top_k_pairs(pairs.a, pairs.b, score, data.n_items, config.k,
                               tiebreak=data.counts[pairs.b])
    filled = fill_popular(nbrs, scores, data.popularity_order()) if config.fill_popular else 0
    settings = {**asdict(config), "filled_slots": filled}
    return ScoredTable(data.item_ids, data.counts, nbrs, scores, "cooccurrence", config.label,
                       settings)


def cooccurrence(data: SessionData, config: CooccurrenceConfig = CooccurrenceConfig()
                 ) -> ScoredTable:
    """The count-based related table of ``data`` (numpy reference; the Beam job matches it)."""
    return table_from_pairs(pair_counts(data, config), item_evidence(data, config), config, data)


def popular(data: SessionData, k: int = 20) -> ScoredTable:
    """Most-popular: the K most frequent items for every query (minus the query itself)."""
    v = data.n_items
    nbrs = np.full((v, k), -1, dtype=np.int32)
    scores = np.full((v, k), np.nan, dtype=np.float32)
    fill_popular(nbrs, scores, data.popularity_order())
    total = max(int(data.counts.sum()), 1)
    ok = nbrs >= 0
    scores[ok] = data.counts[nbrs[ok]] / total  # share of engagements, like RelatedItems.popular
    return ScoredTable(data.item_ids, data.counts, nbrs, scores, "popular", "most-popular",
                       {"k": k})


@dataclass(frozen=True)
class BatchCounter:
    """The co-occurrence arithmetic in the pieces a distributed job needs (plain, picklable).

    ``pipeline/cooccurrence_job.py`` calls these on each batch and bucket, so the Beam table is
    computed by exactly the code of :func:`cooccurrence` -- the pipeline imports no scorer.
    """

    config: CooccurrenceConfig

    def item_counts(self, rows: np.ndarray, offsets: np.ndarray, n_items: int) -> np.ndarray:
        """int64 [2, V]: occurrences, and sessions holding the item, in one batch."""
        from recommender.scorers.pairs import distinct_per_session

        return np.stack([np.bincount(rows, minlength=n_items),
                         np.bincount(distinct_per_session(rows, offsets)[0], minlength=n_items)])

    def pairs(self, rows: np.ndarray, offsets: np.ndarray, n_items: int
              ) -> tuple[np.ndarray, np.ndarray]:
        """The batch's pairs summed per packed key ``a * V + b`` (sorted keys, weights)."""
        c = self.config
        p = count_pairs(rows, offsets, n_items, c.window, c.directed, c.weighting, c.binary)
        return p.keys(), p.weights

    @staticmethod
    def merge(keys: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Partial sums merged: distinct sorted keys and their summed weights."""
        from recommender.scorers.pairs import aggregate_keys

        return aggregate_keys(keys, weights)

    def top_k(self, keys: np.ndarray, weights: np.ndarray, counts: np.ndarray, n_items: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows of the table for the query items among ``keys`` (all their pairs present)."""
        from recommender.scorers.table import top_k_rows

        c = self.config
        pairs = PairCounts((keys // n_items).astype(np.int32), (keys % n_items).astype(np.int32),
                           weights, n_items)
        n = (counts[1] if c.binary else counts[0]).astype(np.float64)
        return top_k_rows(pairs.a, pairs.b, normalise(pairs, n, c), c.k,
                          tiebreak=counts[0][pairs.b])

    def finish(self, item_ids, counts: np.ndarray, nbrs: np.ndarray, scores: np.ndarray
               ) -> ScoredTable:
        """The whole table: items that occur only (rows renumbered), short rows filled."""
        import pyarrow as pa

        used = counts[0] > 0  # items.parquet may list items no session holds: drop them
        remap = np.cumsum(used) - 1
        nbrs, scores, ids = nbrs[used], scores[used], item_ids.filter(pa.array(used))
        nbrs = np.where(nbrs >= 0, remap[np.maximum(nbrs, 0)], -1).astype(np.int32)
        occurrences = counts[0][used]
        filled = 0
        if self.config.fill_popular:
            order = np.lexsort((np.arange(len(occurrences)), -occurrences))
            filled = fill_popular(nbrs, scores, order)
        return ScoredTable(ids, occurrences, nbrs, scores, "cooccurrence", self.config.label,
                           {**asdict(self.config), "filled_slots": filled})
