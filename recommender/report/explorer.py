"""The explorer's data: the most popular items and, per scorer, their related items with scores.

Embedded in the page as JSON (``<script type="application/json">``) and drawn by
``assets/explorer.js``; capped at :data:`~recommender.report.data.EXPLORER_ITEMS` items so that
the page stays small at any catalogue size.
"""

from __future__ import annotations

import json

import numpy as np

from recommender.report.data import EXPLORER_ITEMS, EXPLORER_K, RunData


def _e(value) -> str:
    import html

    return html.escape(str(value), quote=True)


def explorer_data(data: RunData, tables: dict) -> dict | None:
    """Top items by popularity and, per scorer, their related items with scores (JSON-ready)."""
    if not tables:
        return None
    ids, _, _ = next(iter(tables.values()))
    if data.counts is not None and len(data.counts) == len(data.item_ids):
        pop = dict(zip(data.item_ids, data.counts.tolist()))
    else:
        pop = {}
    ranked = sorted(ids, key=lambda i: (-pop.get(i, 0), i))[:EXPLORER_ITEMS]
    universe: dict[str, int] = {}

    def uid(item: str) -> int:
        if item not in universe:
            universe[item] = len(universe)
        return universe[item]

    queries = [uid(i) for i in ranked]
    scorers = []
    for name, (sids, neighbors, scores) in tables.items():
        row_of = {s: r for r, s in enumerate(sids)}
        related, values = [], []
        for item in ranked:
            r = row_of.get(item)
            if r is None:
                related.append([])
                values.append([])
                continue
            nb = np.asarray(neighbors[r])[:EXPLORER_K]
            sc = (np.asarray(scores[r])[:EXPLORER_K] if scores is not None
                  else np.full(len(nb), np.nan))
            keep = nb >= 0
            related.append([uid(sids[j]) for j in nb[keep]])
            values.append([None if s != s else round(float(s), 4) for s in sc[keep]])
        scorers.append({"name": name, "related": related, "scores": values})
    items = []
    for item in universe:
        title, cat = data.catalog.get(item, (None, None))
        items.append([item, title or "", cat or "", int(pop.get(item, 0))])
    return {"items": items, "queries": queries, "scorers": scorers,
            "total": len(ids), "capped": len(ids) > EXPLORER_ITEMS}


def explorer_html(payload: dict | None) -> tuple[str, str]:
    """``(body, lead)`` of the explorer section: controls, an empty output and the JSON data."""
    if payload is None:
        return '<p class="muted">No related-item table to explore.</p>', ""
    shown = len(payload["queries"])
    cap = (f"The {shown:,} most popular of the {payload['total']:,} items are embedded (to keep "
           "the page small); look up any other with <code>pin2vec related</code>."
           if payload["capped"] else f"All {shown:,} items are embedded.")
    names = ", ".join(_e(s["name"]) for s in payload["scorers"])
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")
    body = (
        '<div class="explorer-controls"><label for="explorer-input">Item</label>'
        '<input id="explorer-input" list="explorer-items" autocomplete="off" '
        'placeholder="type an id or a title">'
        '<datalist id="explorer-items"></datalist>'
        '<button id="explorer-random" type="button">random item</button></div>'
        '<div id="explorer-title" class="explorer-title"></div>'
        '<div id="explorer-out" class="explorer-out"></div>'
        f'<script type="application/json" id="explorer-data">{data}</script>'
    )
    lead = (f"Top {EXPLORER_K} related items of one item by each scorer ({names}). {cap} "
            "Click a related item to follow it; green rows are items more than one scorer "
            "returns. Scores: cosine for pin2vec, session co-occurrence counts for "
            "co-occurrence.")
    return body, lead
