"""Read engagement logs as Arrow record batches, on any Beam filesystem.

The driver expands ``--input`` patterns and checks every file's columns before the pipeline
starts (:func:`expand_inputs`, :func:`check_columns`), so a typo is one clear error instead of a
failed job. Inside the pipeline, :class:`ReadEvents` plans splits (Parquet row groups; one split
per CSV/JSON-lines file, whose line numbers need a single pass), spreads them over workers and
reads each with ``apache_beam.io.filesystems.FileSystems`` into :class:`RawBatch` es: Arrow tables
with canonical column names (``user``, ``item``, ``time`` and, when used, ``action`` and
``session``) plus ``line``, and the records the reader itself had to reject.

``line`` is the 1-based physical line (header included) for CSV/TSV and JSON lines, and the 1-based
row number for Parquet. Blank lines are skipped and not counted as records.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import coders  # noqa: F401  (registers the RawBatch / Table coders)
from pipeline._beam import CompressionTypes, FileSystems, beam
from pipeline.io import jsonl, text
from pipeline.io.base import InputFile, RawBatch, column_map
from pipeline.options import SessionizeConfig
from recommender.core.errors import ConfigError, Pin2VecError

logger = logging.getLogger(__name__)

EXTENSIONS = {
    ".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "csv",
    ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
}
ROWS_PER_SPLIT = 1_000_000  # Parquet row groups are bundled into splits of about this many rows


@dataclass(frozen=True)
class Split:
    """A unit of reading work: a whole file, or a range of a Parquet file's row groups."""

    file: InputFile
    row_groups: tuple[int, ...] | None = None
    first_row: int = 0


def detect_format(path: str, forced: str = "auto") -> tuple[str, str]:
    """(format, default delimiter) of ``path`` from its extension (``.gz``/``.bz2`` ignored)."""
    base = path.lower()
    for suffix in (".gz", ".bz2"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    ext = os.path.splitext(base)[1]
    delimiter = "\t" if ext == ".tsv" else ","
    if forced != "auto":
        return forced, delimiter
    if ext not in EXTENSIONS:
        raise ConfigError(
            f"cannot tell the format of {path} from its extension; "
            f"pass --input-format parquet|csv|jsonl (known: {', '.join(sorted(EXTENSIONS))})"
        )
    return EXTENSIONS[ext], delimiter


def expand_inputs(config: SessionizeConfig) -> list[InputFile]:
    """Match every ``--input`` (file, glob or directory) to files; error on a pattern with none."""
    paths: list[str] = []
    for pattern in config.inputs:
        if "://" not in pattern and os.path.isdir(pattern):
            pattern = os.path.join(pattern, "*")
        try:
            matched = FileSystems.match([pattern])[0].metadata_list
        except Exception as e:  # Beam raises BeamIOError, IOError or ValueError by filesystem
            raise ConfigError(f"cannot list input {pattern}: {e}") from None
        files = sorted(m.path for m in matched if not os.path.basename(m.path).startswith("."))
        files = [p for p in files if "://" in p or not os.path.isdir(p)]
        if not files:
            raise ConfigError(f"input {pattern} matches no files")
        paths += files
    unique = sorted(dict.fromkeys(paths))
    result = []
    for i, path in enumerate(unique):
        fmt, delimiter = detect_format(path, config.input_format)
        result.append(InputFile(i, path, fmt, config.delimiter or delimiter))
    return result


def file_columns(file: InputFile, config: SessionizeConfig) -> list[str] | None:
    """The column names a file offers (Parquet schema, CSV header or --columns, JSON keys seen).

    None for an empty text file, which has nothing to check (and nothing to read).
    """
    if file.format == "csv" and config.columns:
        if config.no_header:
            _check_width(file, config.columns)
        return list(config.columns)
    try:
        if file.format == "parquet":
            with FileSystems.open(file.path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                return list(pq.ParquetFile(f).schema_arrow.names)
        with text.open_input(file.path) as f:  # a damaged .gz: its reader rejects it
            if file.format == "csv":
                header = f.readline()
                return text.parse_header(header, file.delimiter) if header.strip() else None
            keys: dict[str, None] = {}
            for _, line in zip(range(1000), text.iter_lines(f)):
                try:
                    obj = json.loads(line)
                except (ValueError, RecursionError):
                    continue
                if isinstance(obj, dict):
                    keys.update(dict.fromkeys(obj))
            return list(keys) if keys else None
    except Pin2VecError:
        raise
    except Exception as e:
        raise ConfigError(f"cannot read {file.path} as {file.format}: {e}") from None


def _check_width(file: InputFile, columns) -> None:
    """Warn when a headerless file's first line does not have as many fields as --columns."""
    with text.open_input(file.path) as f:
        first = f.readline()
    fields = len(text.parse_header(first, file.delimiter)) if first.strip() else len(columns)
    if fields != len(columns):
        logger.warning("%s: --columns names %d fields but its first line has %d; rows of another "
                       "width are rejected (short_row/long_row)", file.path, len(columns), fields)


_TIME_TYPES = (pa.types.is_timestamp, pa.types.is_date, pa.types.is_integer, pa.types.is_floating,
               pa.types.is_string, pa.types.is_large_string, pa.types.is_binary,
               pa.types.is_large_binary, pa.types.is_null, pa.types.is_dictionary)


def _check_time_type(file: InputFile, name: str) -> None:
    """A Parquet time column of a type no time can be read from is a config error, up front."""
    try:
        with FileSystems.open(file.path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            t = pq.ParquetFile(f).schema_arrow.field(name).type
    except Exception as e:
        raise ConfigError(f"cannot read the schema of {file.path}: {e}") from None
    if not any(check(t) for check in _TIME_TYPES):
        raise ConfigError(
            f"{file.path}: the time column {name!r} is of type {t}, which holds no point in time; "
            "pin2vec reads timestamps, dates, epoch numbers (--time-unit) or ISO-8601 strings: "
            "convert the column, or name another with --time-column"
        )


def check_columns(config: SessionizeConfig, files: list[InputFile]) -> None:
    """Raise ConfigError naming the file, the missing column and the columns that exist.

    Also refused: two columns of one name (which one is meant?), and a Parquet time column of a
    type no time can be read from (decimal, time of day, duration, ...).
    """
    wanted = column_map(config)
    for file in files:
        names = file_columns(file, config)
        if names is None:
            continue
        twice = [n for i, n in enumerate(names) if n in names[:i]]
        if twice:
            where = [i + 1 for i, n in enumerate(names) if n == twice[0]]
            hint = ("--columns" if config.columns else
                    "the header (or name the fields with --columns)")
            raise ConfigError(
                f"{file.path} has more than one column named {twice[0]!r} (columns "
                f"{', '.join(map(str, where))}); pin2vec will not guess which one is meant: "
                f"rename them in {hint}"
            )
        if file.format == "parquet" and config.time_column in names:
            _check_time_type(file, config.time_column)
        for canonical, name in wanted.items():
            if name not in names:
                flag = {"user": "--user-column", "item": "--item-column",
                        "time": "--date-column" if config.date_column else "--time-column",
                        "offset": "--time-offset-column", "action": "--action-column",
                        "session": "--session-column"}[canonical]
                shown = ", ".join(names) if names else "(none)"
                where = " in its first 1000 records" if file.format == "jsonl" else ""
                hint = ("; a log keyed by session needs only --session-column NAME"
                        if canonical == "user" and not config.session_column else "")
                raise ConfigError(
                    f"{file.path} has no column {name!r} ({flag}){where}; "
                    f"its columns are: {shown}{hint}"
                )


def plan_splits(file: InputFile, batch_size: int):
    """Splits of one file: groups of Parquet row groups, or the whole file for text formats."""
    if file.format != "parquet":
        yield Split(file)
        return
    with FileSystems.open(file.path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        meta = pq.ParquetFile(f).metadata
    group: list[int] = []
    rows = first = 0
    for i in range(meta.num_row_groups):
        group.append(i)
        rows += meta.row_group(i).num_rows
        if rows - first >= max(ROWS_PER_SPLIT, batch_size):
            yield Split(file, tuple(group), first)
            group, first = [], rows
    if group or meta.num_row_groups == 0:
        yield Split(file, tuple(group), first)


def _plan_splits(file: InputFile, batch_size: int):
    try:
        yield from plan_splits(file, batch_size)
    except Exception as e:
        raise Pin2VecError(f"pin2vec: cannot read {file.path}: {_why(e)}") from e


def _why(e: Exception) -> str:
    expected = isinstance(e, (OSError, pa.ArrowException, EOFError))
    return str(e) if expected else f"{type(e).__name__}: {e}"


def read_parquet(split: Split, spec: dict[str, str], batch_size: int):
    """RawBatches of a Parquet split; ``line`` is the 1-based row number in the file."""
    sources = list(dict.fromkeys(spec.values()))
    with FileSystems.open(split.file.path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        pf = pq.ParquetFile(f)
        row = split.first_row
        if not split.row_groups:
            return
        for batch in pf.iter_batches(batch_size, row_groups=list(split.row_groups),
                                     columns=sources, use_threads=True):
            n = batch.num_rows
            columns = {c: batch.column(batch.schema.get_field_index(s)) for c, s in spec.items()}
            columns["line"] = pa.array(np.arange(row + 1, row + n + 1, dtype=np.int64))
            row += n
            yield RawBatch(split.file.index, split.file.path, pa.table(columns))


def read_split(split: Split, spec: dict[str, str], config: SessionizeConfig):
    """RawBatches of any split, by its file's format."""
    if split.file.format == "parquet":
        return read_parquet(split, spec, config.batch_size)
    if split.file.format == "csv":
        return text.read_csv(split.file, spec, config)
    return jsonl.read_jsonl(split.file, spec, config.batch_size)


class _ReadSplits(beam.DoFn):
    def __init__(self, config: SessionizeConfig):
        self.config = config
        self.spec = column_map(config)

    def process(self, split: Split):
        try:
            yield from read_split(split, self.spec, self.config)
        except Pin2VecError:
            raise
        except Exception as e:  # one line naming the file, never a worker traceback
            raise Pin2VecError(f"pin2vec: cannot read {split.file.path}: {_why(e)}") from e


class ReadEvents(beam.PTransform):
    """``InputFile`` s -> :class:`RawBatch` es (Parquet split by row groups, spread out)."""

    def __init__(self, config: SessionizeConfig):
        super().__init__()
        self.config = config

    def expand(self, files):
        batch_size = self.config.batch_size
        return (
            files
            | "PlanSplits" >> beam.FlatMap(_plan_splits, batch_size)
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(_ReadSplits(self.config)).with_output_types(RawBatch)
        )
