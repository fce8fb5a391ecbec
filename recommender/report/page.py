"""Assemble the report: one self-contained HTML file (inline CSS, SVG/PNG charts, JSON data, JS).

Nothing is fetched at view time: no CDN, no fonts, no images by URL. The explorer's data is
capped (:data:`~recommender.report.data.EXPLORER_ITEMS` most popular items) and the map sampled
(:data:`~recommender.report.data.MAP_POINTS` items), and the page says so, so the file stays a few
MB at 100k items.
"""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path

import numpy as np

from recommender.report import charts, scoring
from recommender.report.data import (
    COLLAPSED_COSINE,
    EXPLORER_K,
    MAP_POINTS,
    RunData,
    model_vectors,
    read_index_table,
    test_pairs,
)
from recommender.report.explorer import explorer_data, explorer_html

_ASSETS = Path(__file__).with_name("assets")
COOC_NAME = "co-occurrence"  # same rule as the evaluation's baseline: window 5, counts


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value, digits: int = 4) -> str:
    if value is None or value != value:
        return "–"
    if isinstance(value, float) and (not value.is_integer() or abs(value) <= 1):
        return f"{value:.{digits}f}"
    return f"{int(value):,}"


def _section(anchor: str, title: str, body: str, lead: str = "") -> str:
    lead = f'<p class="lead">{lead}</p>' if lead else ""
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{lead}{body}</section>'


def _tile(label: str, value: str, hint: str = "", warn: bool = False) -> str:
    cls = "tile warn" if warn else "tile"
    return (f'<div class="{cls}"><div class="tile-label">{_e(label)}</div>'
            f'<div class="tile-value">{value}</div><div class="tile-hint">{hint}</div></div>')


def _metric_columns(data: RunData) -> tuple[list[int], list[str]]:
    keys = {key for r in data.results for key in r.metrics}
    ks = sorted({k for _, k in keys})
    metrics = [m for m in ("hr", "mrr", "ndcg", "recall", "precision", "map")
               if any(m == km for km, _ in keys)]
    return ks, metrics


def _evaluation(data: RunData) -> str:
    if not data.results:
        return _section("evaluation", "Evaluation", '<p class="muted">No evaluation results in '
                        "this run directory.</p>")
    ks, metrics = _metric_columns(data)
    cols = [(m, k) for k in ks for m in metrics]
    best = {c: max((r.metrics.get(c, -1) for r in data.results), default=-1) for c in cols}
    extras = [x for x in ("coverage", "unknown", "queries")
              if any(x in r.extra for r in data.results)]
    head = "".join(f"<th>{m.upper()}@{k}</th>" for m, k in cols)
    head += "".join(f"<th>{_e(x)}</th>" for x in extras)
    rows = []
    for r in data.results:
        cells = []
        for c in cols:
            v = r.metrics.get(c)
            cls = ' class="best"' if v is not None and v == best[c] and v > 0 else ""
            cells.append(f"<td{cls}>{_fmt(v)}</td>")
        cells += [f"<td>{_fmt(r.extra.get(x), 3)}</td>" for x in extras]
        mark = '<span class="badge">shipped</span>' if r.shipped else ""
        cls = ' class="shipped"' if r.shipped else ""
        rows.append(f"<tr{cls}><th>{_e(r.name)} {mark}</th>{''.join(cells)}</tr>")
    table = (f'<table class="metrics"><thead><tr><th>scorer</th>{head}</tr></thead>'
             f"<tbody>{''.join(rows)}</tbody></table>")
    chart = charts.metrics_chart(data.results, ks, metrics) if cols else ""
    verdict = data.evaluation.get("verdict")
    extra = ""
    if verdict:
        cls = "callout warn" if str(verdict).startswith("WARNING") else "callout"
        extra = f'<p class="{cls}">{_e(verdict)}</p>'
    for key in ("warning", "note"):
        if data.evaluation.get(key):
            extra += f'<p class="callout warn">{_e(data.evaluation[key])}</p>'
    target = data.evaluation.get("target") or "next item"
    lead = (f"Held-out sessions after the time split; target: {_e(target)}. Bold = best in "
            "column. A query item the scorer has never seen counts as a miss. Chart: one panel "
            "per metric, the shipped scorer in blue.")
    return _section("evaluation", "Evaluation: every scorer side by side",
                    extra + table + f'<div class="figure">{chart}</div>', lead)


def _buckets(data: RunData, tables: dict) -> str:
    """HR by popularity bucket: from the evaluation JSON if it has breakdowns, else computed."""
    k = 10
    rows: dict[str, dict[str, float]] = {}
    queries: dict[str, int] = {}
    source = "evaluation.json"
    for r in data.results:
        for group, values in r.groups.items():
            label = group.split()[-1]
            v = values.get(("hr", k))
            if v is not None:
                rows.setdefault(r.name, {})[label] = v
    lead = ""
    if not rows:
        counts = scoring.train_counts(data.run_dir)
        pairs = test_pairs(data.run_dir)
        if counts is None or pairs is None or not tables:
            return _section("buckets", "Where it wins: head, torso, tail, unseen",
                            '<p class="muted">Needs train_sessions/, test_sessions/ and an '
                            "index: not all present.</p>")
        found = scoring.breakdown(tables, pairs, counts)
        th = found.pop("_thresholds")
        source = "computed by the report on test_sessions/ (next item)"
        for name, per in found.items():
            rows[name] = {b: v[f"hr@{k}"] for b, v in per.items() if f"hr@{k}" in v}
            queries = {b: v["queries"] for b, v in per.items()}
        lead = (f"Buckets by the query item's training count, each about a third of the training "
                f"events: head ≥ {th['head']:,}, torso ≥ {th['torso']:,}, tail below; unseen = "
                "not in the training sessions (cold).")
    buckets = [b for b in ("head", "torso", "tail", "unseen")
               if any(b in v for v in rows.values())]
    buckets += sorted({b for v in rows.values() for b in v} - set(buckets))
    if not buckets:
        return ""
    shipped = {r.name for r in data.results if r.shipped}
    chart = charts.bucket_chart(rows, buckets, k, shipped, queries, _bucket_shares(data))
    head = "".join(f"<th>{_e(b)}</th>" for b in buckets)
    top = {b: max((v.get(b, -1) for v in rows.values()), default=-1) for b in buckets}
    body = "".join(
        (f'<tr class="shipped"><th>{_e(name)} <span class="badge">shipped</span></th>'
         if name in shipped else f"<tr><th>{_e(name)}</th>")
        + "".join(_heat_cell(v.get(b), top[b]) for b in buckets) + "</tr>"
        for name, v in rows.items())
    qrow = ("<tr class='muted'><th>queries</th>" + "".join(
        f"<td>{queries.get(b, 0):,}</td>" for b in buckets) + "</tr>") if queries else ""
    table = (f'<table class="metrics"><thead><tr><th>HR@{k}</th>{head}</tr></thead>'
             f"<tbody>{body}{qrow}</tbody></table>")
    lead = (lead + f" Source: {source}.").strip()
    return _section("buckets", "Where it wins: head, torso, tail, unseen",
                    f'<div class="figure">{chart}</div>{table}', lead)


def _bucket_shares(data: RunData) -> dict[str, float]:
    """Share of the test queries per bucket, as the evaluation wrote it (same for every scorer)."""
    results = data.evaluation.get("results")
    for r in results if isinstance(results, list) else []:
        groups = r.get("buckets") if isinstance(r, dict) else None
        if isinstance(groups, dict):
            return {b: float(v["share"]) for b, v in groups.items()
                    if isinstance(v, dict) and isinstance(v.get("share"), (int, float))}
    return {}


def _heat_cell(value, best: float) -> str:
    """A table cell shaded by its value relative to the column's best (a heatmap you can read)."""
    if value is None or value != value:
        return "<td>–</td>"
    share = value / best if best > 0 else 0.0
    cls = ' class="best"' if best > 0 and value == best else ""
    return (f'<td{cls} style="background:rgba(37,99,235,{0.04 + 0.26 * share:.2f})">'
            f"{_fmt(value)}</td>")


def _training(data: RunData) -> str:
    epochs = data.model.get("epochs") or []
    if not epochs:
        return _section("training", "Training", '<p class="muted">No per-epoch record in '
                        "model/manifest.json.</p>")
    cfg = data.model.get("config", {})
    facts = ", ".join(f"{k} {cfg[k]}" for k in ("architecture", "dim", "window", "negative",
                                                  "epochs", "alpha") if k in cfg)
    corpus = data.model.get("corpus", {})
    wps = data.model.get("words_per_second")
    lead = (f"{facts}. Corpus: {corpus.get('sessions', 0):,} sessions, "
            f"{corpus.get('tokens', 0):,} tokens."
            + (f" Overall {wps:,.0f} words/s." if wps else ""))
    losses = [e.get("loss") for e in epochs if e.get("loss") is not None]
    body = f'<div class="figure">{charts.training_chart(epochs)}</div>'
    if len(losses) >= 2 and losses[-1] > 0.95 * losses[0]:
        body = (f'<p class="callout warn">The loss barely moved ({losses[0]:.4f} in epoch 1, '
                f"{losses[-1]:.4f} in the last): the model has hardly learned. Try a larger "
                "alpha, more epochs or more data (pin2vec tune searches them).</p>") + body
    elif len(losses) >= 3 and losses[-1] > 0.99 * losses[-2]:
        body = ('<p class="callout">The loss changed by less than 1% in the last epoch: '
                "training has levelled off, more epochs are unlikely to help.</p>") + body
    return _section("training", "Training", body, lead)


def _index(data: RunData) -> str:
    if not data.indexes:
        return _section("index", "Index", '<p class="muted">No INDEX dir found.</p>')
    rows = []
    for name, m in data.indexes:
        recall = m.get("recall_at_10", m.get("recall@10"))
        rows.append(
            f"<tr><th>{_e(name)}/</th><td>{_e(m.get('scoring', '–'))}</td>"
            f"<td>{_fmt((m.get('counts') or {}).get('items'))}</td><td>{_fmt(m.get('k'))}</td>"
            f"<td>{_fmt(m.get('trees'))}</td><td>{_fmt(m.get('search_k'))}</td>"
            f"<td>{_fmt(recall)}</td><td>{_fmt(m.get('build_seconds'), 2)}</td></tr>")
    table = ('<table class="metrics"><thead><tr><th>dir</th><th>scoring</th><th>items</th>'
             "<th>k</th><th>trees</th><th>search_k</th><th>recall@10 vs exact</th>"
             f"<th>build s</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")
    return _section("index", "Index", table,
                    "Recall: share of the exact top-10 neighbours the approximate search returns "
                    "on a sample of items.")


def _vector_map(data: RunData) -> str:
    vectors = model_vectors(data.run_dir)
    if vectors is None or len(vectors) < 3:
        return ""
    n = len(vectors)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(n, MAP_POINTS, replace=False)) if n > MAP_POINTS else np.arange(n)
    v = np.asarray(vectors[sample], np.float64)
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)  # cosine geometry
    v -= v.mean(axis=0)
    u, s, _ = np.linalg.svd(v, full_matrices=False)
    xy = u[:, :2] * s[:2]
    explained = (s[:2] ** 2).sum() / max((s ** 2).sum(), 1e-12)
    ids = [data.item_ids[i] for i in sample] if data.item_ids else []
    labels = None
    cats = [data.catalog.get(i, (None, None))[1] for i in ids]
    if ids and any(c for c in cats):
        top = [c for c, _ in sorted(_count(cats).items(), key=lambda x: -x[1]) if c][:9]
        labels = [c if c in top else "other" for c in cats]
    counts = (data.counts[sample] if data.counts is not None and len(data.counts) == n
              else np.ones(len(sample)))
    sizes = 4 + 10 * np.log1p(counts) / max(np.log1p(counts).max(), 1)
    png = charts.map_png(xy, labels, sizes)
    outside = int(((xy < np.percentile(xy, 0.5, axis=0)) |
                   (xy > np.percentile(xy, 99.5, axis=0))).any(axis=1).sum())
    sampled = (f"A random sample of {len(sample):,} of the {n:,} items is drawn."
               if n > MAP_POINTS else f"All {n:,} items.")
    attribute = data.catalog_attribute
    coloured = (f"Coloured by the catalogue's <code>{_e(attribute)}</code> (first value; top 9, "
                "the rest grey)." if labels else "No catalogue attribute to colour by.")
    lead = (f"PCA of the unit-length item vectors (first two components, "
            f"{explained:.0%} of the variance). {sampled} {coloured} Dot size: popularity. "
            f"The view holds the central 99% on each axis ({outside:,} outliers are off it).")
    return _section("map", "Item vectors in 2-D",
                    f'<div class="figure"><img class="map" alt="item vector map" src="{png}">'
                    "</div>", lead)


def _count(values) -> dict:
    out: dict = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def render(data: RunData) -> str:
    """The whole page as a string."""
    tables: dict[str, tuple] = {}
    for name, manifest in data.indexes:
        try:
            label = f"pin2vec ({manifest.get('scoring', '?')})"
            label = label if label not in tables else f"{label} [{name}]"
            tables[label] = read_index_table(data.run_dir / name)
        except (OSError, ValueError, KeyError) as e:
            data.notes.append(f"{name}/ could not be read ({type(e).__name__}); skipped.")
    cooc = scoring.cooccurrence(data.run_dir, max(EXPLORER_K, 20))
    if cooc is not None and not any("cooc" in n for n in tables):
        tables[COOC_NAME] = cooc
    sections = [
        _evaluation(data),
        _buckets(data, tables),
        _training(data),
        _index(data),
        _vector_map(data),
        _section("explorer", "Explorer", *explorer_html(explorer_data(data, tables))),
    ]
    css = (_ASSETS / "report.css").read_text(encoding="utf-8")
    js = (_ASSETS / "explorer.js").read_text(encoding="utf-8")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>pin2vec report – {_e(data.run_dir.name)}</title><style>{css}</style></head>"
        f'<body><main>{_header(data)}{_notes(data)}{"".join(sections)}'
        '<footer>Written by <code>pin2vec report</code>. Self-contained: opens offline.'
        f"</footer></main><script>{js}</script></body></html>"
    )


def _header(data: RunData) -> str:
    counts = data.sessions.get("counts", {})
    tiles = []
    if counts:
        rejected = sum((counts.get("rejected") or {}).values())
        tiles.append(_tile("events", _fmt(counts.get("valid")),
                           f"{_fmt(counts.get('read'))} read, {rejected:,} rejected"))
        tiles.append(_tile("sessions", _fmt(counts.get("sessions")),
                           f"{_fmt(counts.get('items'))} items"))
    if data.split:
        cutoff = str(data.split.get("cutoff_start", "–"))
        tiles.append(_tile("time split", _e(cutoff[:10]), f"test from {_e(cutoff[11:16])} UTC"))
    shipped = next((r for r in data.results if r.shipped), None)
    if shipped:
        hr = shipped.metrics.get(("hr", 10))
        tiles.append(_tile("HR@10 shipped", _fmt(hr), _e(shipped.name)))
    if data.indexes:
        m = data.indexes[0][1]
        recall = m.get("recall_at_10", m.get("recall@10"))
        tiles.append(_tile("index recall@10", _fmt(recall, 3), "approximate vs exact"))
    if data.spread is not None:
        collapsed = data.spread > COLLAPSED_COSINE
        tiles.append(_tile("vector spread", f"{data.spread:.3f}",
                           f"collapsed: above {COLLAPSED_COSINE}" if collapsed else
                           "mean random-pair cosine", warn=collapsed))
    inputs = data.run.get("inputs") or data.sessions.get("inputs") or []
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sub = f"{_e(data.run_dir)} · written {when}"
    if inputs:
        sub += " · input " + _e(", ".join(map(str, inputs))[:200])
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in (
        ("evaluation", "evaluation"), ("buckets", "head/tail"), ("training", "training"),
        ("index", "index"), ("map", "map"), ("explorer", "explorer")))
    return (f'<header><h1>pin2vec run report</h1><p class="sub">{sub}</p>'
            f'<nav>{nav}</nav><div class="tiles">{"".join(tiles)}</div></header>')


def _notes(data: RunData) -> str:
    warnings = [f"sessionize: {w}" for w in data.sessions.get("warnings", [])]
    if data.spread is not None and data.spread > COLLAPSED_COSINE:
        warnings.append(
            f"The item vectors have collapsed: two random items have a mean cosine of "
            f"{data.spread:.2f} (above {COLLAPSED_COSINE}). Neighbours are then close to "
            "arbitrary; lower alpha, raise negative or check ns_exponent (pin2vec tune).")
    body = "".join(f'<p class="callout warn">{_e(w)}</p>' for w in warnings)
    body += "".join(f'<p class="callout muted">{_e(n)}</p>' for n in data.notes)
    return body
