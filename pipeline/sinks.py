"""Write a SESSIONS directory's files through ``apache_beam.io.filesystems`` (any Beam filesystem).

Every file name is a function of the data (bucket number, input file number), never of the worker
or of timing, and every file goes to a temporary name first and is renamed into place, so a retried
bundle rewrites the same bytes and a reader never sees half a file.
"""

from __future__ import annotations

import json
import uuid

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline._beam import FileSystems, beam
from pipeline.sessionize import ITEM_STATS_SCHEMA, SESSION_SCHEMA, sum_tables

COUNTS_FILE = ".counts.json"  # read and removed by the driver, which then writes manifest.json


def shard_name(bucket: int) -> str:
    """File name of one bucket's sessions."""
    return f"sessions-{bucket:05d}.parquet"


def _atomic(path: str, write) -> None:
    directory, name = FileSystems.split(path)
    tmp = FileSystems.join(directory, f".{name}.{uuid.uuid4().hex}.tmp")
    with FileSystems.create(tmp) as f:
        write(f)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def write_table(path: str, table: pa.Table) -> None:
    """Write ``table`` as Parquet to ``path`` on any Beam filesystem, atomically."""
    # Dictionary pages only where values repeat (users, items), not for unique session ids.
    dictionary = [c for c in ("user_id", "items", "item_id") if c in table.column_names]
    _atomic(path, lambda f: pq.write_table(table, f, use_dictionary=dictionary))


def write_text(path: str, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` on any Beam filesystem, atomically."""
    _atomic(path, lambda f: f.write(text.encode("utf-8")))


def merge_counts(parts) -> dict:
    """Sum nested count dicts (associative and commutative: a CombineGlobally function)."""
    total: dict = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict):
                total[key] = merge_counts([total.get(key, {}), value])
            else:
                total[key] = total.get(key, 0) + value
    return total


def sort_items(table: pa.Table) -> pa.Table:
    """Items by engagements (most first), then id: a stable order for items.parquet."""
    order = pc.sort_indices(table, [("engagements", "descending"), ("item_id", "ascending")])
    return table.take(order)


class _WriteShard(beam.DoFn):
    def __init__(self, output: str):
        self.output = output

    def process(self, element):
        bucket, sessions = element
        path = FileSystems.join(self.output, shard_name(bucket))
        write_table(path, sessions.cast(SESSION_SCHEMA))


class _WriteRejected(beam.DoFn):
    def __init__(self, output: str):
        self.output = output

    def process(self, element):
        file_index, groups = element
        lines = sorted(entry for group in groups for entry in group)
        text = "".join(line + "\n" for _, line in lines)
        write_text(FileSystems.join(self.output, f"rejected-{file_index:05d}.jsonl"), text)


class _WriteItems(beam.DoFn):
    def __init__(self, output: str):
        self.output = output

    def process(self, items: pa.Table):
        write_table(FileSystems.join(self.output, "items.parquet"), sort_items(items))
        yield {"items": items.num_rows}


class _WriteCounts(beam.DoFn):
    def __init__(self, output: str):
        self.output = output

    def process(self, counts: dict):
        write_text(FileSystems.join(self.output, COUNTS_FILE), json.dumps(counts, sort_keys=True))


class WriteSessionsDir(beam.PTransform):
    """Write sessions shards, rejected-*.jsonl, items.parquet and the counts the driver reads."""

    def __init__(self, output: str):
        super().__init__()
        self.output = output

    def expand(self, outputs):
        sessions, items, rejected, counts = outputs
        out = self.output
        _ = sessions | "WriteShards" >> beam.ParDo(_WriteShard(out))
        _ = (
            rejected
            | "GroupRejectedByFile" >> beam.GroupByKey()
            | "WriteRejected" >> beam.ParDo(_WriteRejected(out))
        )
        item_count = (
            items
            | "SumItems" >> beam.CombineGlobally(sum_tables, ITEM_STATS_SCHEMA)
            | "WriteItems" >> beam.ParDo(_WriteItems(out))
        )
        return (
            (counts, item_count)
            | "AllCounts" >> beam.Flatten()
            | "SumCounts" >> beam.CombineGlobally(merge_counts)
            | "WriteCounts" >> beam.ParDo(_WriteCounts(out))
        )
