"""Beam fan-out of the related-item table for catalogues too big for one machine's patience.

``'RelatedTable' >> RelatedTable(spec, n_items, batch_size, shard_dir)`` turns a handful of row
ranges (not one element per item) into query work: a ``Reshuffle`` spreads the ranges over workers,
each worker loads (memory-maps) the Annoy index once in ``DoFn.setup`` and runs the same
:class:`recommender.related_table.TableQuerier` as the in-process engine on its ranges, writing one
pair of ``.npy`` shards per range through ``apache_beam.io.filesystems``. The launcher then gathers
the shards into the [V, K] table; writing a shard twice (a retried bundle) writes the same bytes.

Paths in the spec may be local files or any Beam filesystem URL (``gs://...``): workers copy
remote files to local scratch space before memory-mapping them, since Annoy needs a local file.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from dataclasses import replace

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

from pipeline.runner import is_local, make_pipeline
from recommender.errors import ArtifactError
from recommender.related_table import TableQuerier, TableSpec, batch_ranges

log = logging.getLogger(__name__)


def _localize(path: str, scratch: str) -> str:
    """``path`` itself if it is a local file, else a local copy of it in ``scratch``."""
    if os.path.exists(path):
        return path
    local = os.path.join(scratch, os.path.basename(path))
    with FileSystems.open(path) as src, open(local, "wb") as dst:
        while chunk := src.read(1 << 22):
            dst.write(chunk)
    return local


def shard_paths(shard_dir: str, start: int, end: int) -> tuple[str, str]:
    """The neighbour and score shard files of rows ``[start, end)``."""
    stem = FileSystems.join(shard_dir, f"rows-{start:012d}-{end:012d}")
    return stem + ".neighbors.npy", stem + ".scores.npy"


def _write_npy(path: str, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    with FileSystems.create(path) as f:
        f.write(buf.getvalue())


def _read_npy(path: str) -> np.ndarray:
    with FileSystems.open(path) as f:
        return np.load(io.BytesIO(f.read()), allow_pickle=False)


class QueryRanges(beam.DoFn):
    """(start, end) -> the table rows of that range, written as two shard files."""

    def __init__(self, spec: TableSpec, shard_dir: str):
        self.spec = spec
        self.shard_dir = shard_dir
        self.items = Metrics.counter("related_table", "items_queried")
        self.shards = Metrics.counter("related_table", "shards_written")

    def setup(self):
        self._scratch = tempfile.mkdtemp(prefix="pin2vec-table-")
        spec = replace(
            self.spec,
            ann_path=_localize(self.spec.ann_path, self._scratch),
            query_path=_localize(self.spec.query_path, self._scratch),
            item_path=_localize(self.spec.item_path, self._scratch),
        )
        self._querier = TableQuerier(spec)  # Annoy load() mmaps: one page-cache copy per machine

    def process(self, bounds):
        start, end = bounds
        nbrs, scores = self._querier.query(start, end)
        nb_path, sc_path = shard_paths(self.shard_dir, start, end)
        _write_npy(nb_path, nbrs)
        _write_npy(sc_path, scores)
        self.items.inc(end - start)
        self.shards.inc()
        yield start, end

    def teardown(self):
        import shutil

        shutil.rmtree(getattr(self, "_scratch", ""), ignore_errors=True)


class RelatedTable(beam.PTransform):
    """PBegin -> PCollection of the (start, end) ranges whose shards have been written."""

    def __init__(self, spec: TableSpec, n_items: int, batch_size: int, shard_dir: str):
        super().__init__()
        self.spec, self.n_items, self.batch_size = spec, n_items, batch_size
        self.shard_dir = shard_dir

    def expand(self, pbegin):
        return (
            pbegin
            | "Ranges" >> beam.Create(batch_ranges(self.n_items, self.batch_size))
            | "Spread" >> beam.Reshuffle()
            | "Query" >> beam.ParDo(QueryRanges(self.spec, self.shard_dir))
        )


def gather(shard_dir: str, n_items: int, batch_size: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Assemble the shards of every range into (neighbours int32 [V, K], scores float32 [V, K])."""
    nbrs = np.empty((n_items, k), dtype=np.int32)
    scores = np.empty((n_items, k), dtype=np.float32)
    for start, end in batch_ranges(n_items, batch_size):
        nb_path, sc_path = shard_paths(shard_dir, start, end)
        try:
            nb, sc = _read_npy(nb_path), _read_npy(sc_path)
        except (OSError, ValueError) as e:
            raise ArtifactError(f"related-table shard for rows {start}-{end} is unreadable: {e}")
        if nb.shape != (end - start, k) or sc.shape != (end - start, k):
            raise ArtifactError(f"related-table shard {nb_path} has shape {nb.shape}")
        nbrs[start:end], scores[start:end] = nb, sc
    return nbrs, scores


def compute_table_beam(
    spec: TableSpec, n_items: int, batch_size: int, work_dir, beam_args: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Run the Beam pipeline with ``beam_args`` and return the gathered table.

    Shards go to ``work_dir/.table-shards`` (any Beam filesystem path) and are removed afterwards.
    A local run without ``--direct_num_workers`` uses one worker process per core.
    """
    shard_dir = FileSystems.join(str(work_dir), ".table-shards")
    if FileSystems.exists(shard_dir):
        FileSystems.delete([shard_dir])
    FileSystems.mkdirs(shard_dir)
    options = PipelineOptions(beam_args)
    direct = options.view_as(DirectOptions)
    if is_local(options) and not any(a.startswith("--direct_num_workers") for a in beam_args):
        # Locally, one process per core (the in-memory default would use one core for hours).
        direct.direct_num_workers = os.cpu_count() or 1
        direct.direct_running_mode = "multi_processing"
    log.info("computing the related table for %d items with Beam (%s)", n_items, beam_args)
    with make_pipeline(options) as p:
        _ = p | "RelatedTable" >> RelatedTable(spec, n_items, batch_size, shard_dir)
    table = gather(shard_dir, n_items, batch_size, spec.k)
    FileSystems.delete([shard_dir])
    return table
