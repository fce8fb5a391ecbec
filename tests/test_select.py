"""Validated model selection picks the scorer that wins on the validation pairs."""

from __future__ import annotations

import pyarrow as pa

from recommender.evaluate.scorecard import make_split
from recommender.evaluate.select import select


def test_selection_picks_sequential_rules_when_order_matters():
    # Chains x -> y -> z always in this order: asked for y, the next item is z. Symmetric
    # counts see x and z equally often next to y (x wins the tie, the lower row), so at K=1
    # only the directed scorer (sequential rules) hits.
    train = [[f"x{i}", f"y{i}", f"z{i}"] for i in range(20) for _ in range(3)]
    valid = [[f"y{i}", f"z{i}"] for i in range(20)]
    split = make_split(pa.array(train, pa.list_(pa.string())),
                       pa.array(valid, pa.list_(pa.string())))
    sel = select(split, None, k=1, table_k=2, ease_max_items=100)
    assert sel.winner.family == "sequential rules"
    hr = {c.name: s.metrics["hr@1"] for c, s in sel.scores}
    assert hr["co-occurrence (±5)"] == 0.0 and hr[sel.winner.name] == 1.0
    assert {"most-popular", "co-occurrence", "item-kNN", "EASE"} <= set(sel.family_best)
