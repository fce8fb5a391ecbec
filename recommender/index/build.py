"""``pin2vec index``: MODEL dir -> INDEX dir (search backend, related-item tables, recall@10).

``--scoring similar`` (default) ranks items by the cosine of their input vectors; ``--scoring
complementary`` by the inner product of an item's input vector with the others' context vectors
(the items skip-gram predicts next to it in a session).

``--backend`` chooses how each item's top-K is found (:mod:`recommender.index.backends`): ``exact``
(blocked matrix products, recall 1), ``annoy`` or ``hnsw`` (approximate), or ``auto``: exact while
its estimated cost (``V^2 * d``) is below the approximate one, else the fastest approximate backend
installed (HNSW, then Annoy; see :func:`choose_backend`). For an approximate backend the build
measures recall@10 against exact neighbours on a sample of items and, while it is below
``--target-recall`` (0.95), raises the query effort (Annoy ``search_k`` then trees, HNSW ``ef``
then ``M``); if the largest settings still fall short it stops with a message naming what was
reached and what to try. The manifest records the backend, target, reached recall and settings.

The table is computed in-process by a thread pool (:mod:`recommender.index.table`) or, above
``IndexConfig.beam_threshold`` items or with ``--beam``, by the Beam pipeline in
``pipeline/table_job.py``; both give identical tables for the deterministic backends.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recommender.core.artifacts import (
    file_digest,
    prepare_output_dir,
    read_manifest,
    save_npy,
    write_manifest,
    write_parquet,
)
from recommender.core.errors import ArtifactError, ConfigError, Pin2VecError
from recommender.core.integrity import check_table, verify_files
from recommender.index import table as related_table
from recommender.index.backends import BACKENDS, available, get_backend
from recommender.index.backends.annoy import auto_search_k, auto_trees
from recommender.index.cold import ColdConfig, cold_manifest, cold_table, extend_rows
from recommender.index.exact import exact_neighbors, recall

__all__ = ["IndexConfig", "build_index", "choose_backend", "exact_neighbors", "recall",
           "auto_trees", "auto_search_k", "RecallTargetError"]
log = logging.getLogger(__name__)

METRICS = {"similar": "angular", "complementary": "dot"}
SEARCH_METRIC = {"similar": "cosine", "complementary": "dot"}

# Cost model of `auto`: rough wall seconds of the whole table on two quiet cores. Exact: V^2 * d
# multiply-adds at 2.4e10/s including the top-K selection (the products run at ~50 GFLOP/s a core
# for d = 64; selection and merging add about as much again), and half of them for cosine scoring,
# whose symmetric tiles are computed once (95k items trained on the dense log: 21 CPU-s). ANN:
# build + calibration + queries per item at d = 64, scaled by d / 64, on vectors where it reaches
# recall 0.95 at all: HNSW 36 CPU-s at 100k clustered items and 721 CPU-s at 1M (ef_construction
# 100), Annoy 2.4 ms of CPU per item on trained vectors (search_k 400 per tree). So auto stays
# exact up to ~150k items for similar scoring (~75k for complementary), then HNSW (or Annoy).
# On vectors trained from the dense rating-like log HNSW does not reach 0.95 even at M 64 / ef
# 1024 (0.892 at 95k items: all cosines within a narrow cone), which is one more reason to stay
# exact while exact is affordable.
EXACT_MACS_PER_SECOND = 2.4e10
ANN_SECONDS_PER_ITEM = {"hnsw": 2.5e-4, "annoy": 1.2e-3}  # at d = 64, recall 0.95
ANN_PREFERENCE = ("hnsw", "annoy")  # fastest first at the recall target (bench_index.py)


class RecallTargetError(Pin2VecError):
    """The approximate backend could not reach the target recall at its largest settings."""


@dataclass(frozen=True)
class IndexConfig:
    """How to build an INDEX dir (``pin2vec index`` maps its flags onto this)."""

    k: int = 20  # related items stored per item (K)
    backend: str = "auto"  # "auto" | "exact" | "annoy" | "hnsw"
    target_recall: float = 0.95  # calibrate the ANN until recall@10 >= this (0 = no calibration)
    trees: int | None = None  # Annoy trees; None = auto_trees(V)
    search_k: int | None = None  # Annoy nodes inspected per query; None = auto_search_k(trees, k)
    hnsw_m: int | None = None  # HNSW graph degree M; None = 16
    ef: int | None = None  # HNSW query effort; None = max(32, K + 3)
    scoring: str = "similar"  # "similar" (angular, cosine) | "complementary" (dot, input x context)
    beam_threshold: int = 2_000_000  # catalogues larger than this compute the table with Beam
    use_beam: bool | None = None  # True/False force the Beam/in-process table; None = by threshold
    recall_sample: int = 1000  # items whose exact top-10 measures recall@10 (0 = skip)
    seed: int = 0  # ANN build seed and recall sample seed
    n_jobs: int = -1  # threads for the build and the table; -1 = all cores
    on_disk_build_items: int = 5_000_000  # build the Annoy file on disk from this many items up
    batch_size: int = 1024  # items per table batch (the unit of work for threads and Beam)
    progress: bool = True  # tqdm progress bars

    def __post_init__(self):
        def positive(name, value, allow_none=False):
            if value is None and allow_none:
                return
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")

        positive("k", self.k)
        positive("trees", self.trees, allow_none=True)
        positive("hnsw_m", self.hnsw_m, allow_none=True)
        positive("ef", self.ef, allow_none=True)
        positive("beam_threshold", self.beam_threshold)
        positive("on_disk_build_items", self.on_disk_build_items)
        positive("batch_size", self.batch_size)
        if self.search_k is not None and (not isinstance(self.search_k, int)
                                          or not 1 <= self.search_k <= 2**31 - 1):  # a C int
            raise ConfigError(f"search_k must be an integer in 1..2**31-1 or None, "
                              f"got {self.search_k!r}")
        if self.scoring not in METRICS:
            raise ConfigError(
                f"scoring must be one of {sorted(METRICS)}, got {self.scoring!r}"
            )
        if self.backend != "auto" and self.backend not in BACKENDS:
            raise ConfigError(
                f"backend must be auto or one of {sorted(BACKENDS)}, got {self.backend!r}"
            )
        if isinstance(self.target_recall, bool) or not isinstance(self.target_recall,
                                                                  (int, float)):
            raise ConfigError(f"target_recall must be a number in [0, 1], got "
                              f"{self.target_recall!r}")
        if not 0 <= self.target_recall <= 1:
            raise ConfigError(f"target_recall must be in [0, 1] (0 = no calibration), got "
                              f"{self.target_recall!r}")
        if not isinstance(self.recall_sample, int) or self.recall_sample < 0:
            raise ConfigError(f"recall_sample must be >= 0 (0 skips), got {self.recall_sample!r}")
        if not isinstance(self.n_jobs, int) or self.n_jobs == 0 or self.n_jobs < -1:
            raise ConfigError(f"n_jobs must be -1 (all cores) or >= 1, got {self.n_jobs!r}")
        if self.use_beam not in (None, True, False):
            raise ConfigError(f"use_beam must be True, False or None, got {self.use_beam!r}")

    @property
    def metric(self) -> str:
        return METRICS[self.scoring]

    def backend_settings(self, backend: str, n_items: int, dim: int) -> dict:
        """The backend's settings: its defaults, overridden by the ones given here."""
        settings = get_backend(backend).default_settings(n_items, dim, self.k)
        if backend == "annoy":
            trees = self.trees or settings["trees"]
            settings = {"trees": trees, "search_k": self.search_k or auto_search_k(trees, self.k)}
        elif backend == "hnsw":
            settings.update({k: v for k, v in (("M", self.hnsw_m), ("ef", self.ef)) if v})
        return settings


def estimated_seconds(backend: str, n_items: int, dim: int, scoring: str = "similar") -> float:
    """Rough whole-table seconds of ``backend`` on this machine (the cost model of ``auto``)."""
    if backend == "exact":
        symmetric = 0.5 if scoring == "similar" else 1.0  # cosine tiles are computed once
        return symmetric * float(n_items) ** 2 * dim / EXACT_MACS_PER_SECOND
    return ANN_SECONDS_PER_ITEM[backend] * n_items * dim / 64


def choose_backend(n_items: int, dim: int, scoring: str = "similar") -> tuple[str, dict]:
    """``auto``: (backend, estimated seconds of each candidate).

    Exact while ``V^2 * d`` costs less than the fastest installed approximate backend; exact
    also has recall 1 and no build step, so ties go to it.
    """
    estimates = {"exact": estimated_seconds("exact", n_items, dim, scoring)}
    for name in ANN_PREFERENCE:
        if available(name):
            estimates[name] = estimated_seconds(name, n_items, dim)
            break
    best = min(estimates, key=lambda name: (estimates[name], name != "exact"))
    return best, {name: round(sec, 2) for name, sec in estimates.items()}


def _load_model(model_dir: Path) -> tuple[dict, list[str], pa.Array, np.ndarray, np.ndarray]:
    manifest = read_manifest(model_dir, "model")
    verify_files(model_dir, manifest, ("vectors.npy", "context_vectors.npy", "items.parquet"))
    try:
        vectors = np.load(model_dir / "vectors.npy", mmap_mode="r", allow_pickle=False)
        context = np.load(model_dir / "context_vectors.npy", mmap_mode="r", allow_pickle=False)
        items = pq.read_table(model_dir / "items.parquet", columns=["item_id", "count"])
    except (OSError, ValueError, EOFError, pa.ArrowException) as e:
        raise ArtifactError(f"cannot read MODEL dir {model_dir}: {e}") from None
    ids = items.column("item_id").to_pylist()
    for name, m in (("vectors.npy", vectors), ("context_vectors.npy", context)):
        if m.ndim != 2 or m.dtype != np.float32 or m.shape[0] != len(ids) or m.shape[1] < 1:
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


def build_index(
    model_dir: str | Path,
    output_dir: str | Path,
    config: IndexConfig = IndexConfig(),
    beam_args: list[str] | None = None,
    overwrite: bool = False,
    cold: ColdConfig = ColdConfig(),
) -> dict:
    """Build the INDEX dir of docs/architecture.md from a MODEL dir and return its manifest.

    Files: ``items.parquet`` (row -> ``item_id``, ``count``), ``vectors.npy`` (the input vectors,
    for ``RelatedItems.vector`` and session queries), ``context_vectors.npy`` (complementary
    scoring only), the backend's file if it has one (``items.ann``, ``items.hnsw``),
    ``neighbors.npy`` int32 [V, K], ``scores.npy`` float32 [V, K] (padding: -1 / NaN),
    ``related.parquet`` and ``manifest.json`` (written last).

    A model trained with catalogue attributes adds cold rows (:mod:`recommender.index.cold`):
    the backend holds rows ``[0, counts.indexed)`` (the model's items, plus the cold ones with
    ``cold.cold_candidates``), cold rows are matched in attribute space, and the attribute files
    and ``attribute_space.npy`` are listed (checksummed) in the manifest.

    Raises
    ------
    RecallTargetError
        The approximate backend stays below ``config.target_recall`` at its largest settings
        (nothing is left in ``output_dir``).
    """
    model_dir, output_dir = Path(model_dir), Path(output_dir)
    model_manifest, ids, counts, vectors, context = _load_model(model_dir)
    rows = extend_rows(model_dir, ids, counts, vectors, cold, config.scoring,
                       context)  # cold items
    if rows is not None:
        ids, counts, vectors = rows.ids, rows.counts, rows.vectors
    n, dim = vectors.shape
    n_ann = rows.candidates if rows is not None else n  # rows [0, n_ann) are the backend's
    if config.backend == "auto":
        backend_name, estimates = choose_backend(n_ann, dim, config.scoring)
    else:
        backend_name, estimates = config.backend, None
    cls = get_backend(backend_name)  # ConfigError with an install hint if its library is missing
    settings = config.backend_settings(backend_name, n_ann, dim)
    out = prepare_output_dir(output_dir, overwrite, kind="index", inputs=[model_dir])
    try:
        return _build(model_dir, out, config, model_manifest, ids, counts, vectors, context,
                      cls, settings, estimates, beam_args, rows, cold)
    except RecallTargetError:
        for child in out.iterdir():  # no half-built INDEX dir that a later run must --overwrite
            child.unlink()
        raise


def _build(model_dir, out, config, model_manifest, ids, counts, vectors, context, cls, settings,
           estimates, beam_args, rows=None, cold=ColdConfig()) -> dict:
    # With cold rows (recommender/index/cold.py): rows [0, n_ann) are the backend's candidates,
    # rows [0, n_query) -- the model's items -- are queried through it, the cold rows after them
    # are matched in attribute space. Without: every row is both.
    n, dim = vectors.shape
    n_ann = rows.candidates if rows is not None else n
    n_query = rows.model_rows if rows is not None else n
    similar = config.scoring == "similar"
    started = time.perf_counter()
    save_npy(out / "vectors.npy", vectors)
    if not similar:
        save_npy(out / "context_vectors.npy", context)
    write_parquet(out / "items.parquet", pa.table({"item_id": pa.array(ids, pa.string()),
                                                   "count": counts.cast(pa.int64())}))
    item_path = out / ("vectors.npy" if similar else "context_vectors.npy")
    items = np.load(item_path, mmap_mode="r", allow_pickle=False)[:n_ann]
    ann_path = out / cls.file_name if cls.file_name else None
    log.info("building the %s backend over %d items (%s)", cls.name, n_ann, settings)
    backend = cls.build(items, SEARCH_METRIC[config.scoring], settings, ann_path,
                        n_jobs=config.n_jobs, seed=config.seed, progress=config.progress,
                        **({"on_disk_build_items": config.on_disk_build_items}
                           if cls.name == "annoy" else {}))
    build_seconds = time.perf_counter() - started

    started = time.perf_counter()
    sample, depth = _recall_sample(n_query, config)
    truth = _exact_truth(vectors, items, sample, depth, config)
    calibration = []
    if cls.name != "exact" and config.target_recall > 0 and len(sample):
        calibration = _calibrate(backend, vectors, items, sample, truth, depth, ann_path, config)
    calibrate_seconds = time.perf_counter() - started
    settings = dict(backend.settings)

    started = time.perf_counter()
    spec = related_table.TableSpec(
        str(ann_path or ""), str(out / "vectors.npy"), str(item_path.resolve()),
        dim, config.metric, config.k, settings.get("search_k"), cls.name, settings,
        candidates=n_ann if n_ann < n else None,
    )
    use_beam = n_query > config.beam_threshold if config.use_beam is None else config.use_beam
    if use_beam:
        from pipeline.table_job import compute_table_beam

        ranges = related_table.batch_ranges(n_query, config.batch_size)
        nbrs, scores = compute_table_beam(spec, related_table.TableQuerier, ranges, out,
                                          beam_args or [])
    else:
        nbrs, scores = related_table.compute_table(
            spec, n_query, config.batch_size, config.n_jobs, config.progress, backend=backend
        )
    backend.close()
    if rows is not None:  # cold rows: matched in attribute space
        nbrs, scores = (np.concatenate(x) for x in zip((nbrs, scores),
                                                        cold_table(rows, config.k)))
    check_table(nbrs, scores, n, f"related table of {out}")  # before anything can load it
    related_table.write_table(out, ids, nbrs, scores)
    table_seconds = time.perf_counter() - started

    started = time.perf_counter()
    measured = None if truth is None else round(recall(nbrs[sample, :depth], truth), 4)
    recall_seconds = time.perf_counter() - started
    files = ["items.parquet", "vectors.npy", "neighbors.npy", "scores.npy", "related.parquet"]
    files += ([] if similar else ["context_vectors.npy"]) + ([cls.file_name] if ann_path else [])
    if rows is not None:  # what related_to_attributes needs (checksummed like the rest)
        # same:<column> scoring reads the candidates' values at lookup time
        files += rows.attributes.write(out, with_items=rows.scoring.startswith("same:"))
        save_npy(out / "attribute_space.npy", rows.space[:n_ann])
        files.append("attribute_space.npy")
        if rows.context is not None:  # cold scoring "context": the model items' context vectors
            save_npy(out / "attribute_context.npy", rows.context[:rows.model_rows])
            files.append("attribute_context.npy")
    manifest = {
        "format_version": 1,
        "kind": "index",
        "k": config.k,
        "backend": cls.name,
        "backend_settings": settings,
        "backend_estimates": estimates,  # auto's estimated seconds per backend (None if chosen)
        "trees": settings.get("trees"),
        "search_k": settings.get("search_k"),
        "scoring": config.scoring,
        "metric": config.metric,
        "dim": dim,
        "model_dir": str(model_dir),
        "model_digest": file_digest(model_dir / "manifest.json"),
        "model_config": model_manifest.get("config"),
        "table_engine": "beam" if use_beam else "in-process",
        "build_seconds": round(build_seconds, 3),
        "calibrate_seconds": round(calibrate_seconds, 3),
        "table_seconds": round(table_seconds, 3),
        "recall_seconds": round(recall_seconds, 3),
        "target_recall": config.target_recall if cls.name != "exact" else None,
        "recall_at_10": measured,
        "recall_sample": len(sample),
        "recall_depth": depth,  # 10, or K (or V - 1) if smaller: recall_at_10 is recall@depth
        "calibration": calibration,  # each step's settings and recall on the sample
        "padding": {"neighbor": related_table.PAD_NEIGHBOR, "score": "NaN"},
        "counts": {
            "items": n,
            "related_pairs": int((nbrs >= 0).sum()),
            "short_rows": int((nbrs[:, -1] < 0).sum()),
            "indexed": n_ann,
            **(rows.stats if rows is not None else {}),
        },
        "cold": cold_manifest(cold, rows) if rows is not None else None,
        "files": {f: {"bytes": (out / f).stat().st_size} for f in files},
        "config": asdict(config),
    }
    write_manifest(out, manifest, files)
    log.info(
        "index: %d items, K=%d, backend %s %s, recall@10=%s, build %.1fs, table %.1fs",
        n, config.k, cls.name, settings, measured, build_seconds, table_seconds,
    )
    return manifest


def _recall_sample(n: int, config: IndexConfig) -> tuple[np.ndarray, int]:
    """(sorted sample rows, depth): ``depth`` is 10, or less when K or the catalogue is smaller."""
    size = min(config.recall_sample, n)
    depth = min(10, config.k, n - 1)
    rows = np.sort(np.random.default_rng(config.seed).choice(n, size, replace=False))
    return rows, depth


def _exact_truth(vectors, items, sample, depth, config) -> np.ndarray | None:
    if not len(sample):
        return None
    exact, _ = exact_neighbors(
        np.asarray(vectors[sample]), items, depth, metric=SEARCH_METRIC[config.scoring],
        exclude_self_rows=sample, n_jobs=config.n_jobs,
    )
    return exact


def _sample_recall(backend, vectors, items, sample, truth, depth, config) -> float:
    """Recall@depth on the sample of exactly what the table will hold for those rows."""
    queries = np.asarray(vectors[sample], dtype=np.float32)
    nbrs, _ = related_table.top_rows(backend, queries, items, sample, config.k, config.metric)
    return recall(nbrs[:, :depth], truth)


def _calibrate(backend, vectors, items, sample, truth, depth, ann_path, config) -> list[dict]:
    """Raise the backend's effort until recall on the sample reaches the target (or give up)."""
    steps = []
    while True:
        measured = round(_sample_recall(backend, vectors, items, sample, truth, depth, config), 4)
        steps.append({**backend.settings, "recall": measured})
        if measured >= config.target_recall:
            return steps
        step = backend.escalate(ann_path, n_jobs=config.n_jobs, seed=config.seed,
                                progress=config.progress)
        if step is None:
            backend.close()
            best = max(steps, key=lambda s: s["recall"])
            exact_s = estimated_seconds("exact", len(items), items.shape[1], config.scoring)
            raise RecallTargetError(
                f"the {backend.name} backend reached recall@{depth} {best['recall']:.3f} on "
                f"{len(sample)} sampled items, below --target-recall {config.target_recall}, "
                f"even at {_settings_text(steps[-1])}; try --backend exact (recall 1; about "
                f"{exact_s:.0f}s here), "
                f"{'--backend hnsw, ' if backend.name == 'annoy' else ''}"
                "larger starting settings (--trees/--search-k, --hnsw-m/--ef) or a lower "
                "--target-recall"
            )
        log.info("recall@%d %.3f < target %.3f: %s", depth, measured, config.target_recall, step)


def _settings_text(step: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in step.items() if k != "recall")
