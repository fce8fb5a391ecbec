"""The records every reader produces, and the small helpers readers and the validator share.

Kept apart from the readers so that :mod:`pipeline.io.text`, :mod:`pipeline.io.jsonl`,
:mod:`pipeline.io.read`, the validator and the Arrow coders import one way: all of them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from pipeline.options import SessionizeConfig


@dataclass(frozen=True)
class InputFile:
    """One matched input file and how to read it."""

    index: int  # position in the sorted list of inputs: orders ties and names rejected-*.jsonl
    path: str
    format: str  # parquet | csv | jsonl
    delimiter: str = ","


@dataclass
class RawBatch:
    """Records as read: canonical columns + ``line``; ``rejects`` are (line, reason, record)."""

    file_index: int
    path: str
    table: pa.Table
    rejects: list = field(default_factory=list)


def is_utf8(value: bytes) -> bool:
    """Whether ``value`` decodes as UTF-8 (an undecodable field is a ``bad_encoding`` reject)."""
    try:
        value.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def column_map(config: SessionizeConfig) -> dict[str, str]:
    """Canonical column name -> the input's column name, for the columns this run reads."""
    spec = {"item": config.item_column, "time": config.date_column or config.time_column}
    if config.user_column:
        spec["user"] = config.user_column
    if config.time_offset_column:
        spec["offset"] = config.time_offset_column
    if config.actions is not None:
        spec["action"] = config.action_column
    if config.session_column:
        spec["session"] = config.session_column
    return spec


def is_encodable(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8 (a lone surrogate such as ``"\\ud800"`` does not)."""
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False
