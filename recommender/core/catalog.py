"""Read an item catalogue (Parquet, CSV/TSV, JSON lines) and turn its attributes into tokens.

A catalogue has one row per item: an id column, optionally a title column, and attribute columns
of three kinds (:class:`AttributeSpec`):

* ``categorical`` -- one value per item (``brand``, ``category``);
* ``multi`` -- several values in one field, ``Action|Comedy`` (``separator``) or a JSON or
  Parquet list;
* ``numeric`` -- a number, bucketed into quantiles of the catalogue (``buckets``), so ``price``
  12.99 and 13.49 share a value;
* ``flag`` -- a yes/no indicator column (``1``/``0``, ``true``/``false``, ``yes``/``no``), as
  catalogues that spell genres one column each do (MovieLens' ``u.item``): a set flag is the token
  ``"Action=1"``, an unset one no token at all, so items do not resemble each other by the genres
  they both lack.

Each value becomes a *token* ``"column=value"`` (numeric: ``"price=q2"``; flag: ``"Action=1"``);
the trainer learns one vector per token (:mod:`recommender.train.attributes`). The bucket edges
are part of the :class:`AttributeSchema`, saved with the model, so an item described later (a
cold query) is bucketed the same way.

Bad rows never stop a read: a row without an id, a repeated id, a row with the wrong number of
fields, undecodable bytes or a JSON line that is not an object is skipped and counted by reason in
``Catalog.rejected`` (like ``rejected`` in a SESSIONS manifest), with the first few kept in
``Catalog.examples``; a field that cannot be read (``price`` = ``"n/a"``) drops only that value and
is counted in ``Catalog.dropped``.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recommender.core.errors import ArtifactError, ConfigError

log = logging.getLogger(__name__)

KINDS = ("categorical", "multi", "numeric", "flag")
FLAG_SET = {"1", "true", "yes", "y", "t"}
FLAG_UNSET = {"0", "false", "no", "n", "f"}
FORMATS = ("auto", "parquet", "csv", "jsonl")
MAX_EXAMPLES = 20  # rejected rows kept verbatim in Catalog.examples


@dataclass(frozen=True)
class AttributeSpec:
    """One attribute column and how to read it (``kind``: categorical, multi, numeric or flag)."""

    name: str
    kind: str = "categorical"

    def __post_init__(self):
        if not self.name:
            raise ConfigError("attribute column names must not be empty")
        if self.kind not in KINDS:
            raise ConfigError(f"attribute {self.name!r}: kind must be one of {KINDS}, "
                              f"not {self.kind!r}")


def parse_attribute_specs(text: str | None) -> tuple[AttributeSpec, ...]:
    """``"genres:multi,year:numeric,brand"`` -> specs (a bare name is categorical)."""
    specs = []
    for part in (text or "").split(","):
        part = part.strip()
        if part:
            name, _, kind = part.partition(":")
            specs.append(AttributeSpec(name.strip(), kind.strip() or "categorical"))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"attribute columns are listed twice: {names}")
    return tuple(specs)


# The CatalogOptions fields that say how the file is parsed (not which attributes are read).
READING = ("format", "delimiter", "encoding", "columns", "id_column", "title_column", "header")


@dataclass(frozen=True)
class CatalogOptions:
    """Where the columns of a catalogue file are and how to parse it."""

    id_column: str = "item_id"
    title_column: str | None = "title"  # None or missing column: no titles
    attributes: tuple[AttributeSpec, ...] = ()
    format: str = "auto"  # auto (by extension) | parquet | csv | jsonl
    delimiter: str | None = None  # CSV: None = tab for .tsv/.tab, else sniffed from the 1st line
    encoding: str = "utf-8"  # CSV/JSON lines text encoding, e.g. latin-1
    header: bool = True  # CSV: the first line names the columns
    columns: tuple[str, ...] | None = None  # CSV column names (required without a header)
    separator: str = "|"  # between the values of a multi-valued field
    buckets: int = 5  # quantile buckets of a numeric attribute

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ConfigError(f"catalogue format must be one of {FORMATS}, not {self.format!r}")
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise ConfigError(f"--catalog-delimiter must be one character, got {self.delimiter!r}")
        if not self.header and not self.columns:
            raise ConfigError("a catalogue without a header needs --catalog-columns a,b,c")
        if not isinstance(self.buckets, int) or self.buckets < 2:
            raise ConfigError(f"buckets must be a whole number >= 2, got {self.buckets!r}")
        if not self.separator:
            raise ConfigError("the multi-value separator must not be empty")
        try:
            "".encode(self.encoding)
        except LookupError:
            raise ConfigError(f"unknown text encoding {self.encoding!r}") from None

    def to_dict(self) -> dict:
        """JSON form (``run.json``), so a later reader parses the file the same way."""
        return {"id_column": self.id_column, "title_column": self.title_column,
                "attributes": [[s.name, s.kind] for s in self.attributes],
                "format": self.format, "delimiter": self.delimiter, "encoding": self.encoding,
                "header": self.header, "columns": list(self.columns) if self.columns else None,
                "separator": self.separator, "buckets": self.buckets}

    @classmethod
    def from_dict(cls, obj: dict) -> CatalogOptions:
        obj = dict(obj)
        obj["attributes"] = tuple(AttributeSpec(n, k) for n, k in obj.get("attributes") or ())
        obj["columns"] = tuple(obj["columns"]) if obj.get("columns") else None
        return cls(**obj)


@dataclass
class Catalog:
    """Items of a catalogue file: ids, titles and raw attribute values, plus what was skipped."""

    path: str
    item_ids: list[str]
    titles: list[str | None]
    values: dict[str, list]  # attribute name -> per item: None, a str, a float or a list of str
    rejected: Counter = field(default_factory=Counter)  # reason -> rows skipped
    dropped: Counter = field(default_factory=Counter)  # "column: reason" -> values dropped
    examples: list[dict] = field(default_factory=list)  # first rejected rows: source, reason
    read: int = 0  # rows read (valid + rejected)

    def __len__(self) -> int:
        return len(self.item_ids)

    def labels(self, category: str = "category") -> dict[str, tuple[str | None, str | None]]:
        """``item_id -> (title, category or None)`` for printing beside ids."""
        cats = self.values.get(category) or [None] * len(self.item_ids)
        return {i: (t, c if isinstance(c, str) else None)
                for i, t, c in zip(self.item_ids, self.titles, cats)}

    def summary(self) -> dict:
        """Counts for manifests and logs: read, valid, rejected and dropped by reason."""
        return {"path": self.path, "read": self.read, "valid": len(self.item_ids),
                "rejected": dict(sorted(self.rejected.items())),
                "dropped": dict(sorted(self.dropped.items()))}


def read_catalog(path, options: CatalogOptions = CatalogOptions()) -> Catalog:
    """Read a catalogue file; bad rows are counted and skipped, never raised.

    Raises
    ------
    ArtifactError
        The file is missing or unreadable as a whole, or lacks the id/attribute columns.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"catalogue {path} does not exist")
    fmt = options.format if options.format != "auto" else _format_of(path)
    rejected: Counter = Counter()
    examples: list[dict] = []

    def reject(line, reason, record):
        rejected[reason] += 1
        if len(examples) < MAX_EXAMPLES:
            examples.append({"source": f"{path.name}:{line}", "reason": reason,
                             "record": record})

    try:
        if fmt == "parquet":
            rows = _parquet_rows(path)
        elif fmt == "jsonl":
            rows = _jsonl_rows(path, options, reject)
        else:
            rows = _csv_rows(path, options, reject)
    except (OSError, pa.ArrowException, UnicodeError, ValueError) as e:
        raise ArtifactError(f"cannot read catalogue {path}: {e}") from None
    columns, records = rows
    wanted = [options.id_column] + [s.name for s in options.attributes]
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise ArtifactError(
            f"catalogue {path} lacks column(s) {missing}; it has {columns[:20]} (name them with "
            "--catalog-id-column / --catalog-attributes, or --catalog-columns without a header)")
    title = options.title_column if options.title_column in columns else None
    catalog = Catalog(str(path), [], [], {s.name: [] for s in options.attributes},
                      rejected, Counter(), examples)
    seen: set[str] = set()
    for line, record in records:
        item = _text(record.get(options.id_column))
        if not item:
            reject(line, "missing_id", record)
            continue
        if item in seen:
            reject(line, "duplicate_id", record)
            continue
        seen.add(item)
        catalog.item_ids.append(item)
        catalog.titles.append(_text(record.get(title)) if title else None)
        for spec in options.attributes:
            catalog.values[spec.name].append(
                _value(spec, record.get(spec.name), options.separator, catalog.dropped))
    catalog.read = len(catalog.item_ids) + sum(rejected.values())
    if rejected:
        log.warning("catalogue %s: %d row(s) skipped (%s)", path, sum(rejected.values()),
                    ", ".join(f"{r}: {n}" for r, n in sorted(rejected.items())))
    if catalog.dropped:
        log.warning("catalogue %s: %d attribute value(s) dropped (%s)", path,
                    sum(catalog.dropped.values()),
                    ", ".join(f"{r}: {n}" for r, n in sorted(catalog.dropped.items())))
    return catalog


def _format_of(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".gz", ".bz2")]
    ext = suffixes[-1] if suffixes else ""
    if ext in (".parquet", ".pq"):
        return "parquet"
    if ext in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    return "csv"


def _first_line(path: Path, encoding: str) -> str:
    """The first line, decoded (binary read: bad bytes further down do not matter here)."""
    opener = {".gz": gzip.open, ".bz2": bz2.open}.get(path.suffix.lower(), open)
    with opener(path, "rb") as f:
        return f.readline().decode(encoding).rstrip("\r\n")


def _parquet_rows(path: Path):
    table = pq.read_table(path)
    names = table.column_names
    cols = [table.column(n).to_pylist() for n in names]
    return names, ((i + 1, dict(zip(names, vals))) for i, vals in enumerate(zip(*cols)))


def _jsonl_rows(path: Path, options: CatalogOptions, reject):
    opener = {".gz": gzip.open, ".bz2": bz2.open}.get(path.suffix.lower(), open)
    with opener(path, "rb") as f:
        lines = f.read().split(b"\n")
    records, names = [], {}
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode(options.encoding))
        except UnicodeDecodeError:
            reject(number, "bad_encoding", raw.decode("latin-1"))
            continue
        except ValueError:
            reject(number, "bad_json", raw.decode(options.encoding, "replace"))
            continue
        if not isinstance(record, dict):
            reject(number, "bad_json", raw.decode(options.encoding, "replace"))
            continue
        names.update(dict.fromkeys(record))
        records.append((number, record))
    return list(names), records


def _sniff(path: Path, encoding: str) -> str:
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    first = _first_line(path, encoding)
    counts = {d: first.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _csv_rows(path: Path, options: CatalogOptions, reject):
    delimiter = options.delimiter or _sniff(path, options.encoding)
    bad_rows: list[tuple[int, str, str]] = []

    def on_invalid(row):
        reason = "short_row" if row.actual_columns < row.expected_columns else "long_row"
        bad_rows.append((row.number or 0, reason, row.text))
        return "skip"

    if options.columns:
        names = list(options.columns)
    else:
        names = next(csv.reader([_first_line(path, options.encoding)], delimiter=delimiter), [])
    repeated = sorted(n for n, c in Counter(names).items() if c > 1)
    if repeated:
        where = "--catalog-columns" if options.columns else "the header line"
        raise ArtifactError(
            f"{path}: {where} names column(s) {repeated} more than once; a file without a "
            "header needs --catalog-no-header --catalog-columns a,b,c (distinct names)")
    utf8 = options.encoding.lower().replace("-", "").replace("_", "") in ("utf8", "utf")
    read = pacsv.ReadOptions(  # utf-8 is not transcoded: bad bytes reject their row only
        encoding="utf8" if utf8 else options.encoding, use_threads=False,
        column_names=list(options.columns) if options.columns else None,
        skip_rows=1 if (options.columns and options.header) else 0)
    # Every column as raw bytes: undecodable values reject their row instead of the whole file.
    table = pacsv.read_csv(
        path, read_options=read,
        parse_options=pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.binary() for n in names}, strings_can_be_null=True,
            null_values=[""],
            quoted_strings_can_be_null=False),
    )
    names = table.column_names
    for number, reason, text in bad_rows:
        reject(number, reason, text)
    cols = [table.column(n).to_pylist() for n in names]
    first_line = 2 if options.header else 1

    def records():
        for i, vals in enumerate(zip(*cols)):
            try:
                yield i + first_line, {n: (None if v is None else v.decode("utf-8"))
                                       for n, v in zip(names, vals)}
            except UnicodeDecodeError:
                reject(i + first_line, "bad_encoding",
                       [None if v is None else v.decode("latin-1") for v in vals])
    return names, records()


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _value(spec: AttributeSpec, raw, separator: str, dropped: Counter):
    """The parsed attribute value of one field: None, a str, a float or a list of str."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if spec.kind == "numeric":
        try:
            number = float(raw)
        except (TypeError, ValueError):
            dropped[f"{spec.name}: not a number"] += 1
            return None
        if not math.isfinite(number):
            dropped[f"{spec.name}: not a number"] += 1
            return None
        return number
    if spec.kind == "flag":
        text = str(int(raw)) if isinstance(raw, (bool, int, float)) and raw in (0, 1) else \
            str(raw).strip().lower()
        if text in FLAG_SET:
            return "1"
        if text not in FLAG_UNSET:
            dropped[f"{spec.name}: not a flag (1/0, true/false, yes/no)"] += 1
        return None
    if spec.kind == "multi":
        parts = raw if isinstance(raw, (list, tuple)) else str(raw).split(separator)
        values = list(dict.fromkeys(t for t in (_text(p) for p in parts) if t))
        return values or None
    if isinstance(raw, (list, tuple, dict)):
        dropped[f"{spec.name}: not a single value"] += 1
        return None
    return _text(raw)


# --- the schema: values -> tokens ---------------------------------------------------------------


@dataclass(frozen=True)
class AttributeSchema:
    """How raw attribute values become tokens; saved with the model (``attributes.json``).

    ``edges`` holds, per numeric column, the inner quantile edges: bucket ``q{j}`` holds values
    ``edges[j-1] <= x < edges[j]``.
    """

    specs: tuple[AttributeSpec, ...]
    separator: str = "|"
    edges: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def fit(cls, catalog: Catalog, specs: tuple[AttributeSpec, ...], separator: str = "|",
            buckets: int = 5) -> AttributeSchema:
        """Bucket edges of every numeric column from the catalogue's values (quantiles)."""
        edges = {}
        for spec in specs:
            if spec.kind == "numeric":
                x = np.array([v for v in catalog.values[spec.name] if v is not None], float)
                inner = np.quantile(x, np.arange(1, buckets) / buckets) if len(x) else []
                edges[spec.name] = sorted({float(e) for e in inner})
        return cls(tuple(specs), separator, edges)

    def to_dict(self) -> dict:
        return {"columns": [{"name": s.name, "kind": s.kind,
                             **({"edges": self.edges[s.name]} if s.kind == "numeric" else {})}
                            for s in self.specs],
                "separator": self.separator}

    @classmethod
    def from_dict(cls, obj: dict) -> AttributeSchema:
        specs = tuple(AttributeSpec(c["name"], c["kind"]) for c in obj["columns"])
        edges = {c["name"]: [float(e) for e in c.get("edges", [])] for c in obj["columns"]
                 if c["kind"] == "numeric"}
        return cls(specs, obj.get("separator", "|"), edges)

    def tokens(self, name: str, value) -> list[str]:
        """Tokens of one parsed value of column ``name`` (see :func:`_value`)."""
        if value is None:
            return []
        spec = next(s for s in self.specs if s.name == name)
        if spec.kind == "numeric":
            return [f"{name}=q{int(np.searchsorted(self.edges[name], value, 'right'))}"]
        if isinstance(value, list):
            return [f"{name}={v}" for v in value]
        return [f"{name}={value}"]

    def item_tokens(self, catalog: Catalog) -> list[list[str]]:
        """Every catalogue item's tokens, in catalogue order."""
        cols = [(s.name, catalog.values[s.name]) for s in self.specs]
        return [[t for name, vals in cols for t in self.tokens(name, vals[i])]
                for i in range(len(catalog))]

    def encode(self, attributes: dict) -> tuple[list[str], list[str]]:
        """Tokens of an item described as ``{column: value}``, and what was left out: columns
        not in the schema (``"colour"``) and unreadable values (``"price=n/a (not a number)"``).

        Values are parsed like catalogue fields: a numeric column takes a number (or its text), a
        multi-valued one a list or ``"a|b"``, a flag one ``1``/``0``, ``true``/``false`` or
        ``yes``/``no`` (unset: no token, and nothing left out).
        """
        known = {s.name: s for s in self.specs}
        tokens, unknown = [], []
        for name, raw in attributes.items():
            spec = known.get(name)
            if spec is None:
                unknown.append(name)
                continue
            dropped: Counter = Counter()
            tokens += self.tokens(name, _value(spec, raw, self.separator, dropped))
            unknown += [f"{name}={raw} ({reason.split(': ', 1)[1]})" for reason in dropped]
        return tokens, unknown


def column_of(token: str) -> str:
    """The column name of a token ``"column=value"``."""
    return token.split("=", 1)[0]
