"""``pin2vec index``: MODEL dir -> INDEX dir (Annoy index + related-item tables + measured recall).

``--scoring similar`` (default) indexes the input vectors with Annoy's angular metric: related
items are the ones whose vectors point the same way (cosine). ``--scoring complementary`` indexes
the context (output) vectors with Annoy's ``dot`` metric and queries each item's input vector:
related items are the ones skip-gram predicts to appear next to it in a session (inner product).

The table of every item's top-K is computed in-process (one process per core) or, above
``IndexConfig.beam_threshold`` items or with ``--beam``, by the Beam pipeline in
``pipeline/table_job.py``; both give identical tables. The build then measures recall@10 of
the table against exact neighbours on a sample of items and records it in the manifest.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from recommender.core.artifacts import (
    file_digest,
    prepare_output_dir,
    read_manifest,
    save_npy,
    write_json,
    write_parquet,
)
from recommender.core.errors import ArtifactError, ConfigError
from recommender.index import table as related_table
from recommender.index.cold import ColdConfig, cold_table, extend_rows
from recommender.index.exact import exact_neighbors, recall

__all__ = ["IndexConfig", "build_index", "exact_neighbors", "recall", "auto_trees"]
log = logging.getLogger(__name__)

METRICS = {"similar": "angular", "complementary": "dot"}


def auto_trees(n_items: int) -> int:
    """Default number of Annoy trees: ``clip(round(8 * log2(V / 1000) + 10), 10, 64)``.

    10 trees for 1k items, ~37 for 10k, 64 from ~190k items up. At a fixed ``search_k`` more trees
    give better candidates (1M clustered items, dim 64, search_k 3200: 32 trees recall@10 0.946, 64
    trees 0.977), but each tree costs build time and file size; 64 keeps a 1M-item build near 80 s
    on 2 cores.
    """
    return int(np.clip(round(8 * math.log2(max(n_items, 1) / 1000) + 10), 10, 64))


def auto_search_k(trees: int, k: int) -> int:
    """Default ``search_k``: ``50 * trees`` nodes inspected per query (at least ``trees * (k+1)``).

    Annoy's own default (``trees * n``, here ``21 * trees``) gives recall@10 of only ~0.77-0.92
    on 1M items at dim 64; 50 per tree reaches ~0.98 there at ~1,400 queries/s per core, and
    100 per tree 0.99 at half the speed (see benchmarks/bench_index.py).
    """
    return max(50 * trees, trees * (k + 1))


@dataclass(frozen=True)
class IndexConfig:
    """How to build an INDEX dir (``pin2vec index`` maps its flags onto this)."""

    k: int = 20  # related items stored per item (K)
    trees: int | None = None  # Annoy trees; None = auto_trees(V)
    search_k: int | None = None  # nodes inspected per query; None = auto_search_k(trees, k)
    scoring: str = "similar"  # "similar" (angular, cosine) | "complementary" (dot, input x context)
    beam_threshold: int = 2_000_000  # catalogues larger than this compute the table with Beam
    use_beam: bool | None = None  # True/False force the Beam/in-process table; None = by threshold
    recall_sample: int = 1000  # items whose exact top-10 measures recall@10 (0 = skip)
    seed: int = 0  # Annoy tree seed and recall sample seed
    n_jobs: int = -1  # threads for the Annoy build and processes for the table; -1 = all cores
    on_disk_build_items: int = 5_000_000  # build the Annoy file on disk from this many items up
    batch_size: int = 1024  # items per table batch (the unit of work for processes and Beam)
    progress: bool = True  # tqdm progress bars

    def __post_init__(self):
        def positive(name, value, allow_none=False):
            if value is None and allow_none:
                return
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")

        positive("k", self.k)
        positive("trees", self.trees, allow_none=True)
        positive("beam_threshold", self.beam_threshold)
        positive("on_disk_build_items", self.on_disk_build_items)
        positive("batch_size", self.batch_size)
        if self.search_k is not None and (not isinstance(self.search_k, int) or self.search_k < 1):
            raise ConfigError(f"search_k must be a positive integer or None, got {self.search_k!r}")
        if self.scoring not in METRICS:
            raise ConfigError(
                f"scoring must be one of {sorted(METRICS)}, got {self.scoring!r}"
            )
        if not isinstance(self.recall_sample, int) or self.recall_sample < 0:
            raise ConfigError(f"recall_sample must be >= 0 (0 skips), got {self.recall_sample!r}")
        if not isinstance(self.n_jobs, int) or self.n_jobs == 0 or self.n_jobs < -1:
            raise ConfigError(f"n_jobs must be -1 (all cores) or >= 1, got {self.n_jobs!r}")
        if self.use_beam not in (None, True, False):
            raise ConfigError(f"use_beam must be True, False or None, got {self.use_beam!r}")

    @property
    def metric(self) -> str:
        return METRICS[self.scoring]


def _load_model(model_dir: Path) -> tuple[dict, list[str], pa.Array, np.ndarray, np.ndarray]:
    manifest = read_manifest(model_dir, "model")
    try:
        vectors = np.load(model_dir / "vectors.npy", mmap_mode="r", allow_pickle=False)
        context = np.load(model_dir / "context_vectors.npy", mmap_mode="r", allow_pickle=False)
        items = pq.read_table(model_dir / "items.parquet", columns=["item_id", "count"])
    except (OSError, ValueError, pa.ArrowException) as e:
        raise ArtifactError(f"cannot read MODEL dir {model_dir}: {e}") from None
    ids = items.column("item_id").to_pylist()
    for name, m in (("vectors.npy", vectors), ("context_vectors.npy", context)):
        if m.ndim != 2 or m.dtype != np.float32 or m.shape[0] != len(ids):
            raise ArtifactError(
                f"{model_dir / name} is {m.dtype}{list(m.shape)}; expected float32 "
                f"[{len(ids)}, d] to match items.parquet"
            )
    if context.shape != vectors.shape:
        raise ArtifactError(f"{model_dir}: context_vectors.npy and vectors.npy differ in shape")
    for name, m in (("vectors.npy", vectors), ("context_vectors.npy", context)):
        if not np.isfinite(m).all():
            raise ArtifactError(f"{model_dir / name} contains NaN or inf values; retrain the model")
    if len(ids) < 2:
        raise ArtifactError(f"{model_dir} holds {len(ids)} item(s); related items need at least 2")
    if len(set(ids)) != len(ids):
        raise ArtifactError(f"{model_dir / 'items.parquet'} has duplicate item_id values")
    return manifest, ids, items.column("count").combine_chunks(), vectors, context


def _build_annoy(path: Path, matrix: np.ndarray, metric: str, trees: int, config: IndexConfig):
    from annoy import AnnoyIndex

    n, dim = matrix.shape
    index = AnnoyIndex(dim, metric)
    index.set_seed(config.seed)
    tmp = path.with_name(f".{path.name}.tmp")
    on_disk = n >= config.on_disk_build_items
    if on_disk:  # nodes go straight to the file instead of RAM; must be set before add_item
        index.on_disk_build(str(tmp))
    for i in tqdm(range(n), desc="annoy add", unit="item", disable=not config.progress):
        index.add_item(i, matrix[i].tolist())
    log.info("building %d Annoy trees over %d items (%s)", trees, n, metric)
    index.build(trees, n_jobs=config.n_jobs)
    if not on_disk:
        index.save(str(tmp))
    index.unload()
    os.replace(tmp, path)


def build_index(
    model_dir: str | Path,
    output_dir: str | Path,
    config: IndexConfig = IndexConfig(),
    beam_args: list[str] | None = None,
    overwrite: bool = False,
    cold: ColdConfig = ColdConfig(),
) -> dict:
    """Build the INDEX dir of docs/architecture.md from a MODEL dir and return its manifest.

    Files: ``items.ann``, ``items.parquet`` (row -> ``item_id``, ``count``), ``vectors.npy`` (the
    input vectors, for ``RelatedItems.vector`` and session queries), ``neighbors.npy`` int32 [V, K],
    ``scores.npy`` float32 [V, K] (padding: -1 / NaN), ``related.parquet`` and ``manifest.json``
    (written last).
    """
    model_dir, output_dir = Path(model_dir), Path(output_dir)
    model_manifest, ids, counts, vectors, context = _load_model(model_dir)
    rows = extend_rows(model_dir, ids, counts, vectors, cold, config.scoring)  # cold items
    if rows is not None:
        ids, counts, vectors = rows.ids, rows.counts, rows.vectors
    n, dim = vectors.shape
    n_ann = rows.candidates if rows is not None else n  # rows [0, n_ann) are in Annoy
    trees = config.trees or auto_trees(n)
    search_k = config.search_k or auto_search_k(trees, config.k)
    out = prepare_output_dir(output_dir, overwrite)

    started = time.perf_counter()
    save_npy(out / "vectors.npy", vectors)
    write_parquet(out / "items.parquet", pa.table({"item_id": pa.array(ids, pa.string()),
                                                   "count": counts.cast(pa.int64())}))
    indexed = vectors if config.scoring == "similar" else context
    _build_annoy(out / "items.ann", indexed[:n_ann], config.metric, trees, config)
    build_seconds = time.perf_counter() - started

    started = time.perf_counter()
    similar = config.scoring == "similar"
    item_path = out / "vectors.npy" if similar else model_dir / "context_vectors.npy"
    spec = related_table.TableSpec(
        str(out / "items.ann"), str(out / "vectors.npy"), str(item_path.resolve()),
        dim, config.metric, config.k, search_k,
    )
    n_query = rows.model_rows if rows is not None else n  # rows queried through Annoy
    use_beam = n_query > config.beam_threshold if config.use_beam is None else config.use_beam
    if use_beam:
        from pipeline.table_job import compute_table_beam

        ranges = related_table.batch_ranges(n_query, config.batch_size)
        nbrs, scores = compute_table_beam(spec, related_table.TableQuerier, ranges, out,
                                          beam_args or [])
    else:
        nbrs, scores = related_table.compute_table(
            spec, n_query, config.batch_size, config.n_jobs, config.progress
        )
    if rows is not None:  # cold rows: matched in attribute space
        nbrs, scores = (np.concatenate(x) for x in zip((nbrs, scores), cold_table(rows, config.k,
                                                                           cold.popularity)))
    related_table.write_table(out, ids, nbrs, scores)
    table_seconds = time.perf_counter() - started

    started = time.perf_counter()
    measured, sample, depth = _measure_recall(vectors[:n_query], np.asarray(indexed[:n_ann]),
                                              nbrs[:n_query], config)
    recall_seconds = time.perf_counter() - started
    files = ["items.ann", "items.parquet", "vectors.npy", "neighbors.npy", "scores.npy",
             "related.parquet"]
    if rows is not None:  # what related_to_attributes needs
        files += rows.attributes.write(out, with_items=False)
        save_npy(out / "attribute_space.npy", rows.space[:n_ann])
        files.append("attribute_space.npy")
    manifest = {
        "format_version": 1,
        "kind": "index",
        "k": config.k,
        "trees": trees,
        "search_k": search_k,
        "scoring": config.scoring,
        "metric": config.metric,
        "dim": dim,
        "model_dir": str(model_dir),
        "model_digest": file_digest(model_dir / "manifest.json"),
        "model_config": model_manifest.get("config"),
        "table_engine": "beam" if use_beam else "in-process",
        "build_seconds": round(build_seconds, 3),
        "table_seconds": round(table_seconds, 3),
        "recall_seconds": round(recall_seconds, 3),
        "recall_at_10": measured,
        "recall_sample": sample,
        "recall_depth": depth,  # 10, or K (or V - 1) if smaller: recall_at_10 is recall@depth
        "padding": {"neighbor": related_table.PAD_NEIGHBOR, "score": "NaN"},
        "counts": {
            "items": n,
            "related_pairs": int((nbrs >= 0).sum()),
            "short_rows": int((nbrs[:, -1] < 0).sum()),
            "indexed": n_ann,
            **(rows.stats if rows is not None else {}),
        },
        "cold": asdict(cold) if rows is not None else None,
        "files": {f: {"bytes": (out / f).stat().st_size} for f in files},
        "config": asdict(config),
    }
    write_json(out / "manifest.json", manifest)
    log.info(
        "index: %d items, K=%d, %d trees, search_k=%d, recall@10=%s, build %.1fs, table %.1fs",
        n, config.k, trees, search_k, measured, build_seconds, table_seconds,
    )
    return manifest


def _measure_recall(
    vectors: np.ndarray, indexed: np.ndarray, nbrs: np.ndarray, config: IndexConfig
) -> tuple[float | None, int, int]:
    """(recall@depth, sample size, depth) of the table against exact neighbours.

    ``depth`` is 10, or less when K or the catalogue is smaller.
    """
    n = len(vectors)
    size = min(config.recall_sample, n)
    depth = min(10, config.k, n - 1)
    if size == 0:
        return None, 0, depth
    rows = np.sort(np.random.default_rng(config.seed).choice(n, size, replace=False))
    exact, _ = exact_neighbors(
        np.asarray(vectors[rows]), indexed, depth,
        metric="cosine" if config.scoring == "similar" else "dot", exclude_self_rows=rows,
    )
    return round(recall(nbrs[rows, :depth], exact), 4), size, depth
