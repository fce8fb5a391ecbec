"""SCORERS stage: SESSIONS (+ optionally a MODEL) -> INDEX, without Annoy.

Count-based related items (co-occurrence, sequential rules, session item-kNN), EASE, most-popular
and the hybrid of counts and embedding neighbours. Every scorer returns a
:class:`~recommender.scorers.table.ScoredTable`; :func:`write_index` ships it as an INDEX dir
that ``RelatedItems``, ``pin2vec related`` and ``pin2vec evaluate --index`` read unchanged.
"""

from recommender.scorers.cooccurrence import (
    ITEM_KNN,
    SEQUENTIAL_RULES,
    CooccurrenceConfig,
    cooccurrence,
    popular,
)
from recommender.scorers.data import SessionData, from_lists, from_sessions_dir
from recommender.scorers.ease import EaseTooLarge, ease, ease_many
from recommender.scorers.hybrid import HybridConfig, HybridScorer, ItemVectors, hybrid
from recommender.scorers.table import ScoredTable, write_index

__all__ = [
    "CooccurrenceConfig", "SEQUENTIAL_RULES", "ITEM_KNN", "cooccurrence", "popular",
    "SessionData", "from_lists", "from_sessions_dir", "EaseTooLarge", "ease", "ease_many",
    "HybridConfig", "HybridScorer", "ItemVectors", "hybrid", "ScoredTable", "write_index",
]
