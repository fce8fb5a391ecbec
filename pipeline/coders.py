"""Beam coders for pyarrow Tables and RawBatches: Arrow IPC instead of pickle.

Pickling a pyarrow slice serialises the whole parent buffers (a bucket's slice of a batch would
carry the entire batch), and pickle copies every buffer twice. Arrow IPC writes only the sliced
range and reads back without copying, so event tables cross Beam's shuffle at close to memory speed.
Beam also estimates element sizes for its metrics by encoding sampled elements; these coders answer
from the Arrow buffer sizes instead. Transforms declare ``pa.Table``, ``KV[int, pa.Table]`` or
``RawBatch`` output types so Beam picks these coders; any other pickled table (say a table inside
a tuple) goes through IPC too, via ``copyreg``.
"""

from __future__ import annotations

import copyreg
import json

import pyarrow as pa

from pipeline._beam import beam
from pipeline.io.base import RawBatch


def table_to_bytes(table: pa.Table) -> bytes:
    """A table as an Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def table_from_bytes(data: bytes) -> pa.Table:
    """The inverse of :func:`table_to_bytes` (zero-copy over ``data``)."""
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


copyreg.pickle(pa.Table, lambda table: (table_from_bytes, (table_to_bytes(table),)))


class ArrowTableCoder(beam.coders.Coder):
    """Encode a ``pyarrow.Table`` as an Arrow IPC stream."""

    def encode(self, table: pa.Table) -> bytes:
        return table_to_bytes(table)

    def decode(self, encoded: bytes) -> pa.Table:
        return table_from_bytes(encoded)

    def estimate_size(self, table: pa.Table) -> int:
        return table.nbytes

    def is_deterministic(self) -> bool:
        return True

    def to_type_hint(self):
        return pa.Table

    def __eq__(self, other) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


class RawBatchCoder(ArrowTableCoder):
    """Encode a :class:`~pipeline.io.RawBatch`: a JSON header line, then the table as IPC."""

    def encode(self, raw: RawBatch) -> bytes:
        head = json.dumps([raw.file_index, raw.path, raw.rejects]).encode("utf-8")
        return head + b"\n" + table_to_bytes(raw.table)

    def decode(self, encoded: bytes) -> RawBatch:
        cut = encoded.index(b"\n")
        file_index, path, rejects = json.loads(encoded[:cut])
        table = table_from_bytes(encoded[cut + 1 :])
        return RawBatch(file_index, path, table, [tuple(r) for r in rejects])

    def estimate_size(self, raw: RawBatch) -> int:
        return raw.table.nbytes + 100 * len(raw.rejects)

    def to_type_hint(self):
        return RawBatch


beam.coders.registry.register_coder(pa.Table, ArrowTableCoder)
beam.coders.registry.register_coder(RawBatch, RawBatchCoder)

BucketTable = beam.typehints.KV[int, pa.Table]
