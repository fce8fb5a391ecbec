"""Beam fan-out of the related-item table for catalogues too big for one machine's patience.

``'RelatedTable' >> RelatedTable(spec, make_querier, ranges, shard_dir)`` turns a handful of row
ranges (not one element per item) into query work: a ``Reshuffle`` spreads the ranges over workers,
each worker builds its querier once in ``DoFn.setup`` (``make_querier(spec)``: the index stage
passes :class:`recommender.index.table.TableQuerier`, which memory-maps the Annoy index) and runs it
on its ranges, writing one pair of ``.npy`` shards per range through
``apache_beam.io.filesystems``. The job knows nothing of the index format: it only moves row
ranges, paths and arrays, so this package depends on the foundation alone. The launcher then
gathers the shards into the [V, K] table; writing a shard twice (a retried bundle) writes the same
bytes.

Paths in the spec may be local files or any Beam filesystem URL (``gs://...``): workers copy
remote files to local scratch space before memory-mapping them, since Annoy needs a local file.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import fields, replace

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

from pipeline.npy import read_npy, write_npy
from pipeline.runner import is_local, make_pipeline
from recommender.core.errors import ArtifactError

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


class QueryRanges(beam.DoFn):
    """(start, end) -> the table rows of that range, written as two shard files."""

    def __init__(self, spec, make_querier, shard_dir: str):
        self.spec, self.make_querier = spec, make_querier
        self.shard_dir = shard_dir
        self.items = Metrics.counter("related_table", "items_queried")
        self.shards = Metrics.counter("related_table", "shards_written")

    def setup(self):
        self._scratch = tempfile.mkdtemp(prefix="pin2vec-table-")
        # Every ``*_path`` field of the spec, copied to local scratch when it is remote.
        # (An empty path -- no ANN file for the exact backend -- stays empty.)
        local = {f.name: _localize(getattr(self.spec, f.name), self._scratch)
                 for f in fields(self.spec)
                 if f.name.endswith("_path") and getattr(self.spec, f.name)}
        self._querier = self.make_querier(replace(self.spec, **local))

    def process(self, bounds):
        start, end = bounds
        nbrs, scores = self._querier.query(start, end)
        nb_path, sc_path = shard_paths(self.shard_dir, start, end)
        write_npy(nb_path, nbrs)
        write_npy(sc_path, scores)
        self.items.inc(end - start)
        self.shards.inc()
        yield start, end

    def teardown(self):
        import shutil

        shutil.rmtree(getattr(self, "_scratch", ""), ignore_errors=True)


class RelatedTable(beam.PTransform):
    """PBegin -> PCollection of the (start, end) ranges whose shards have been written."""

    def __init__(self, spec, make_querier, ranges: list[tuple[int, int]], shard_dir: str):
        super().__init__()
        self.spec, self.make_querier, self.ranges = spec, make_querier, ranges
        self.shard_dir = shard_dir

    def expand(self, pbegin):
        return (
            pbegin
            | "Ranges" >> beam.Create(self.ranges)
            | "Spread" >> beam.Reshuffle()
            | "Query" >> beam.ParDo(QueryRanges(self.spec, self.make_querier, self.shard_dir))
        )


def gather(shard_dir: str, ranges: list[tuple[int, int]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Assemble the shards of every range into (neighbours int32 [V, K], scores float32 [V, K])."""
    n_items = max((end for _, end in ranges), default=0)
    nbrs = np.empty((n_items, k), dtype=np.int32)
    scores = np.empty((n_items, k), dtype=np.float32)
    for start, end in ranges:
        nb_path, sc_path = shard_paths(shard_dir, start, end)
        try:
            nb, sc = read_npy(nb_path), read_npy(sc_path)
        except (OSError, ValueError) as e:
            raise ArtifactError(f"related-table shard for rows {start}-{end} is unreadable: {e}")
        if nb.shape != (end - start, k) or sc.shape != (end - start, k):
            raise ArtifactError(f"related-table shard {nb_path} has shape {nb.shape}")
        nbrs[start:end], scores[start:end] = nb, sc
    return nbrs, scores


def compute_table_beam(
    spec, make_querier, ranges: list[tuple[int, int]], work_dir, beam_args: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Run the Beam pipeline with ``beam_args`` and return the gathered table.

    ``spec`` is a dataclass with a ``k`` field; ``make_querier(spec).query(start, end)`` returns
    the (neighbours, scores) rows of ``[start, end)``.

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
    log.info("computing the related table for %d ranges with Beam (%s)", len(ranges), beam_args)
    with make_pipeline(options) as p:
        _ = p | "RelatedTable" >> RelatedTable(spec, make_querier, ranges, shard_dir)
    table = gather(shard_dir, ranges, spec.k)
    FileSystems.delete([shard_dir])
    return table
