"""Cold rows for a count-based INDEX: catalogue items no session engaged with.

A co-occurrence, EASE or hybrid table only has rows for items seen in the training sessions.
When ``pin2vec run`` ships one of them from a model trained with catalogue attributes, every
catalogue item absent from the table that has a known attribute value gets a row too, found
exactly as the embedding index finds related items for cold rows
(:mod:`recommender.index.cold`: the model's validated cold scoring -- cosine in attribute space
or attribute vector · context vectors, plus its popularity weight), among the table's items that
the model knows. So the shipped product answers ``related(new_item)`` whichever scorer won.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa

from recommender.core.attributes import SAME, AttributeVectors, SharedValues, cold_scores
from recommender.index.cold import ColdConfig, half_life, resolve, scored_top_k
from recommender.scorers.table import ScoredTable


def add_cold_rows(table: ScoredTable, attrs: AttributeVectors, model_ids, vectors: np.ndarray,
                  context: np.ndarray, cold: ColdConfig = ColdConfig(),
                  block: int = 1024) -> tuple[ScoredTable, dict | None]:
    """``table`` with a row appended per cold catalogue item, and the manifest's ``cold``
    entry (None and ``table`` unchanged when the catalogue has no such item)."""
    if attrs.item_ids is None:
        return table, None
    ids = table.item_ids.cast(pa.string()).to_pylist()
    known = set(ids)
    by_id = dict(zip(attrs.item_ids, attrs.item_tokens))
    cold_ids = [i for i in attrs.item_ids if i not in known]
    cold_vecs, cold_has = attrs.compose([by_id[i] for i in cold_ids])
    cold_ids = [i for i, h in zip(cold_ids, cold_has) if h]
    cold_vecs = cold_vecs[cold_has]
    if not cold_ids:
        return table, None
    scoring, popularity, how, recency = resolve(cold, attrs)
    # Candidates: the table's items the model has vectors for, in table row order.
    model_row = {i: r for r, i in enumerate(model_ids)}
    cand = np.array([r for r, i in enumerate(ids) if i in model_row], np.int64)
    src = np.array([model_row[ids[r]] for r in cand], np.int64)
    own, has = attrs.compose([by_id.get(ids[r], []) for r in cand])
    space = np.where(has[:, None], own, np.asarray(vectors)[src]) if len(cand) else own
    ctx = np.asarray(context)[src]
    # The engagements the popularity term reads: the model's recent ones if it chose them.
    counts = attrs.recent[src] if recency else np.asarray(table.counts)[cand]
    shared = (SharedValues([by_id.get(ids[r], []) for r in cand], scoring[len(SAME):])
              if scoring.startswith(SAME) else None)

    def scores_of(s: int, e: int) -> np.ndarray:
        return cold_scores(cold_vecs[s:e], scoring, popularity, counts, space, ctx,
                           shared([by_id[i] for i in cold_ids[s:e]]) if shared else None)

    top, out = scored_top_k(len(cold_ids), table.k, scores_of, block)
    nbrs = np.append(cand, -1)[top].astype(np.int32)  # table rows; -1 (no neighbour) stays
    extended = replace(
        table, item_ids=pa.concat_arrays([table.item_ids.cast(pa.string()),
                                          pa.array(cold_ids, pa.string())]),
        counts=np.concatenate([np.asarray(table.counts, np.int64),
                               np.zeros(len(cold_ids), np.int64)]),
        neighbors=np.concatenate([table.neighbors.astype(np.int32), nbrs]),
        scores=np.concatenate([table.scores.astype(np.float32), out]))
    return extended, {"scoring": scoring, "popularity": popularity, "chosen_by": how,
                      "recency": recency, "half_life": half_life(attrs, recency),
                      "cold_catalogue": len(cold_ids), "warm": len(ids),
                      "candidates": int(len(cand))}
