"""Read whatever a ``pin2vec run`` output directory holds into plain values for the report.

Every part is optional: a missing or unreadable file becomes a note on the page, never an error,
because a report is most wanted exactly when a run went half wrong. The evaluation JSON is read by
shape rather than by a fixed schema (metric names such as ``hr``, ``HR@10``, ``hr_at_20`` or nested
``{"20": {"ndcg": ...}}`` are all understood) so that new scorers, cut-offs and breakdowns show up
without a change here.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recommender.core.errors import Pin2VecError

log = logging.getLogger(__name__)

METRICS = ("hr", "mrr", "ndcg", "recall", "precision", "map")
_METRIC_ALIASES = {"hit": "hr", "hitrate": "hr", "hit_rate": "hr"}
# words that only wrap a metric (``{"metrics": {"10": {...}}}``) and say nothing about a subgroup
_NEUTRAL = {"metrics", "metric", "at", "k", "results", "scores", "values", "overall", "all"}
COLLAPSED_COSINE = 0.8  # mean random-pair cosine above this: the vectors have collapsed
MAP_POINTS = 5_000  # items drawn on the 2-D map at most
EXPLORER_ITEMS = 2_000  # most popular items embedded in the explorer at most
EXPLORER_K = 10


@dataclass
class ScorerResult:
    """One row of the evaluation: overall metrics and any subgroup breakdowns."""

    name: str
    metrics: dict[tuple[str, int], float] = field(default_factory=dict)  # (metric, k) -> value
    groups: dict[str, dict[tuple[str, int], float]] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)  # coverage, unknown, queries ...
    shipped: bool = False


@dataclass
class RunData:
    """Everything the report shows; ``None`` / empty where the run dir lacks it."""

    run_dir: Path
    notes: list[str] = field(default_factory=list)
    run: dict = field(default_factory=dict)
    sessions: dict = field(default_factory=dict)  # manifest of sessions/
    split: dict = field(default_factory=dict)  # manifest "split" of test_sessions/
    evaluation: dict = field(default_factory=dict)  # raw JSON
    results: list[ScorerResult] = field(default_factory=list)
    model: dict = field(default_factory=dict)  # manifest of model/
    indexes: list[tuple[str, dict]] = field(default_factory=list)  # (dir name, manifest)
    spread: float | None = None
    item_ids: list[str] = field(default_factory=list)  # model rows
    counts: np.ndarray | None = None
    catalog: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    catalog_attribute: str | None = None  # the catalogue column the map is coloured by


def _read_json(path: Path, notes: list[str]) -> dict:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        notes.append(f"{path.name} in {path.parent.name}/ could not be read ({e}); skipped.")
        return {}
    return value if isinstance(value, dict) else {}


def _metric_key(path: tuple[str, ...], default_k: int | None):
    """``(metric, k, group)`` named by a JSON path, or None when the path is no ranking metric."""
    tokens = [t for seg in path for t in re.split(r"[@_\s/\-.:]+", str(seg).lower()) if t]
    metric, k, rest = None, None, []
    for t in tokens:
        m = re.fullmatch(r"(at)?(\d+)", t)
        if m and k is None:
            k = int(m.group(2))
        elif t in METRICS and metric is None:
            metric = t
        elif t in _METRIC_ALIASES and metric is None:
            metric = _METRIC_ALIASES[t]
        elif t not in _NEUTRAL:
            rest.append(t)
    if metric is None:
        return None
    k = k if k is not None else default_k
    if k is None:
        return None
    return metric, k, " ".join(rest)


def _walk(value, path=()):
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _walk(sub, (*path, str(key)))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path, float(value)


def parse_results(evaluation: dict) -> list[ScorerResult]:
    """Scorer rows of an evaluation JSON, whatever its exact shape (see module docstring)."""
    rows = evaluation.get("results") or evaluation.get("scorers") or []
    if isinstance(rows, dict):  # {"name": {...}} instead of [{"name": ...}]
        rows = [{"name": name, **(v if isinstance(v, dict) else {})} for name, v in rows.items()]
    default_k = evaluation.get("k") if isinstance(evaluation.get("k"), int) else None
    shipped_name = evaluation.get("shipped") or evaluation.get("winner")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            continue
        name = str(row.get("name") or row.get("scorer") or f"scorer {i + 1}")
        res = ScorerResult(name=name)
        res.shipped = bool(row.get("shipped")) or name == shipped_name
        k_row = row.get("k") if isinstance(row.get("k"), int) else default_k
        for path, value in _walk(row):
            if path in (("k",), ("shipped",)):
                continue
            key = _metric_key(path, k_row)
            if key is None:
                if len(path) == 1:
                    res.extra[path[0]] = value
                else:
                    res.extra[" ".join(path)] = value
                continue
            metric, k, group = key
            if group:
                res.groups.setdefault(group, {})[(metric, k)] = value
            else:
                res.metrics[(metric, k)] = value
        out.append(res)
    if out and not any(r.shipped for r in out):
        out[0].shipped = out[0].name.startswith("pin2vec")
    return out


def catalog_attribute(table: pa.Table) -> str | None:
    """The column to colour the map by: ``category`` if present, else the text column (not id or
    title) with the fewest distinct first values (``a|b`` lists count by ``a``), 2 to 200."""
    if "category" in table.column_names:
        return "category"
    best, fewest = None, 201
    for name in table.column_names:
        if name in ("item_id", "title") or not pa.types.is_string(table.schema.field(name).type):
            continue
        distinct = len({_first(v) for v in table.column(name).to_pylist()} - {None})
        if 2 <= distinct < fewest:
            best, fewest = name, distinct
    return best


def _first(value) -> str | None:
    if value is None:
        return None
    head = str(value).split("|")[0].strip()
    return head or None


def read_catalog(path: str | Path, options: dict | None = None
                 ) -> tuple[dict[str, tuple[str | None, str | None]], str | None]:
    """``(item_id -> (title, attribute value), attribute name)`` from a CSV/TSV/Parquet catalogue.

    The attribute is :func:`catalog_attribute`'s choice (``None`` when no column fits).
    ``options`` (:meth:`CatalogOptions.to_dict`, as ``run.json`` records them), when they read
    the file differently from the defaults, read it the way the run did (delimiter, encoding, no
    header, column names, id and title columns), with its categorical and multi-valued
    attributes as the candidates to colour by.
    """
    import pyarrow.csv as pacsv

    from recommender.core.catalog import READING, CatalogOptions

    path = Path(path)
    default = CatalogOptions().to_dict()
    if options is not None and any(options.get(k) != default[k] for k in READING):
        from recommender.core.catalog import read_catalog as read_with_options

        opts = CatalogOptions.from_dict(options)
        cat = read_with_options(path, opts)
        columns = {"item_id": cat.item_ids, "title": cat.titles}
        for spec in opts.attributes:
            if spec.kind in ("categorical", "multi") and spec.name not in columns:
                columns[spec.name] = ["|".join(v) if isinstance(v, list) else v
                                      for v in cat.values[spec.name]]
        table = pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()})
    elif path.suffix.lower() in (".parquet", ".pq"):
        table = pq.read_table(path)
    else:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        table = pacsv.read_csv(
            path, parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                column_types={"item_id": pa.string(), "title": pa.string(),
                              "category": pa.string()}),
        )
    if "item_id" not in table.column_names:
        raise ValueError("no item_id column")
    ids = [str(x) for x in table.column("item_id").to_pylist()]
    n = len(ids)
    titles = table.column("title").to_pylist() if "title" in table.column_names else [None] * n
    attribute = catalog_attribute(table)
    values = ([_first(v) for v in table.column(attribute).to_pylist()] if attribute
              else [None] * n)
    present = [v for v in values if v]
    if len(set(present)) > 12 and sum("/" in v for v in present) > len(present) / 2:
        values = [v.split("/")[0] if v else v for v in values]  # "c6/c6.7": colour by "c6"
        attribute = f"{attribute} (top level)"
    return {i: (t, c) for i, t, c in zip(ids, titles, values)}, attribute


def mean_pair_cosine(vectors: np.ndarray, pairs: int = 20_000, seed: int = 0) -> float | None:
    """Mean cosine of random distinct pairs of rows: near 1 when the vectors have collapsed."""
    n = len(vectors)
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, pairs)
    b = (a + rng.integers(1, n, pairs)) % n  # never a == b
    va, vb = np.asarray(vectors[a], np.float64), np.asarray(vectors[b], np.float64)
    norm = np.linalg.norm(va, axis=1) * np.linalg.norm(vb, axis=1)
    ok = norm > 0
    if not ok.any():
        return None
    return float(((va * vb).sum(axis=1)[ok] / norm[ok]).mean())


def _find_indexes(run_dir: Path, notes: list[str]) -> list[tuple[str, dict]]:
    """INDEX dirs in the run dir (``index/`` first, then any other, e.g. per-scorer candidates)."""
    found = []
    for manifest in sorted(run_dir.glob("*/manifest.json")) + sorted(
            run_dir.glob("*/*/manifest.json")):
        m = _read_json(manifest, notes)
        if m.get("kind") == "index" and (manifest.parent / "neighbors.npy").is_file():
            found.append((str(manifest.parent.relative_to(run_dir)), m))
    found.sort(key=lambda x: (x[0] != "index", x[0]))
    return found


def load_run(run_dir: str | Path, catalog: str | Path | None = None,
             catalog_options: dict | None = None) -> RunData:
    """Read a ``pin2vec run`` output dir; every missing part becomes a note. ``catalog`` (read
    with ``catalog_options``) replaces the run's own catalogue (read with the run's options)."""
    run_dir = Path(run_dir)
    data = RunData(run_dir=run_dir)
    notes = data.notes
    data.run = _read_json(run_dir / "run.json", notes)
    data.sessions = _read_json(run_dir / "sessions" / "manifest.json", notes)
    data.split = _read_json(run_dir / "test_sessions" / "manifest.json", notes).get("split", {})
    data.evaluation = _read_json(run_dir / "evaluation.json", notes) or data.run.get(
        "evaluation", {}) or {}
    data.results = parse_results(data.evaluation)
    if not data.results:
        notes.append("no evaluation.json with scorer results: the evaluation section is empty.")
    data.model = _read_json(run_dir / "model" / "manifest.json", notes)
    data.indexes = _find_indexes(run_dir, notes)
    model_dir = run_dir / "model"
    try:
        items = pq.read_table(model_dir / "items.parquet")
        data.item_ids = [str(x) for x in items.column("item_id").to_pylist()]
        if "count" in items.column_names:
            data.counts = np.asarray(items.column("count").fill_null(0), dtype=np.int64)
        vectors = np.load(model_dir / "vectors.npy", mmap_mode="r", allow_pickle=False)
        data.spread = mean_pair_cosine(vectors)
    except (OSError, ValueError, KeyError, pa.ArrowException) as e:
        notes.append(f"no readable model/ ({type(e).__name__}): no vector map or spread.")
    options = catalog_options if catalog else data.run.get("catalog_options")
    catalog = catalog or data.run.get("catalog")
    if catalog:
        try:
            data.catalog, data.catalog_attribute = read_catalog(catalog, options)
        except (OSError, ValueError, KeyError, pa.ArrowException, Pin2VecError) as e:
            notes.append(f"catalogue {catalog} could not be read ({e}); ids shown without titles.")
    return data


def model_vectors(run_dir: Path) -> np.ndarray | None:
    try:
        return np.load(run_dir / "model" / "vectors.npy", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None


def read_index_table(index_dir: Path):
    """``(item_ids, neighbors [V, K] int, scores [V, K] float or None)`` of an INDEX dir."""
    ids = pq.read_table(index_dir / "items.parquet", columns=["item_id"]).column(0)
    neighbors = np.load(index_dir / "neighbors.npy", mmap_mode="r", allow_pickle=False)
    try:
        scores = np.load(index_dir / "scores.npy", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        scores = None
    return [str(x) for x in ids.to_pylist()], neighbors, scores


def test_pairs(run_dir: Path) -> tuple[pa.Array, pa.Array] | None:
    """Consecutive (query, next item) pairs of ``test_sessions/``, or None when absent."""
    paths = sorted((run_dir / "test_sessions").glob("sessions-*.parquet"))
    if not paths:
        return None
    qs, ts = [], []
    for path in paths:
        items = pq.read_table(path, columns=["items"]).column(0).combine_chunks()
        flat = pc.list_flatten(items)
        if len(flat) < 2:
            continue
        parents = pc.list_parent_indices(items).to_numpy()
        starts = np.nonzero(parents[:-1] == parents[1:])[0]
        qs.append(flat.take(pa.array(starts)))
        ts.append(flat.take(pa.array(starts + 1)))
    if not qs:
        return None
    return pa.concat_arrays(qs), pa.concat_arrays(ts)
