"""Options of ``pin2vec sessionize`` / ``python -m pipeline``: Beam flags and a validated config.

:class:`SessionizeOptions` declares the flags (names fixed by docs/architecture.md) so that Beam
accepts them beside its own (``--runner``, ``--direct_num_workers``, Dataflow flags ...);
:class:`SessionizeConfig` is the frozen, validated form every transform is built from.
"""

from __future__ import annotations

import argparse
import difflib
from dataclasses import asdict, dataclass

from pipeline._beam import beam
from recommender.core.errors import ConfigError

PipelineOptions = beam.options.pipeline_options.PipelineOptions
_BeamArgumentParser = beam.options.pipeline_options._BeamArgumentParser

FORMATS = ("auto", "parquet", "csv", "jsonl")
TIME_UNITS = ("auto", "s", "ms", "us", "ns", "iso")
OFFSET_UNITS = ("h", "min", "s", "ms", "us", "ns")
NULL_VALUES = ("NA", "N/A", "null", "NULL", "None", "nan", "NaN")  # besides empty text


def _add(parser, *flags, **kwargs) -> None:
    # Another stage's PipelineOptions may declare the same flag (say --output); Beam puts every
    # PipelineOptions subclass into one parser, where a duplicate would be a conflict error.
    if any(flag in parser._option_string_actions for flag in flags):
        return
    parser.add_argument(*flags, **kwargs)


class SessionizeOptions(PipelineOptions):
    """Beam view of the sessionize flags (see ``pin2vec sessionize --help``)."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        _add(parser, "--input", dest="input", action="append", metavar="PATH_OR_GLOB",
             help="engagement log file or glob (any Beam filesystem); repeat for several")
        _add(parser, "--output", dest="output", metavar="DIR", help="SESSIONS directory to write")
        _add(parser, "--input-format", dest="input_format", default="auto", choices=FORMATS,
             help="file format; auto: by extension (.parquet/.pq, .csv, .tsv, .jsonl/.json/"
                  ".ndjson, each optionally .gz)")
        _add(parser, "--delimiter", dest="delimiter", default=None, metavar="C",
             help="CSV field delimiter (default ',' and tab for .tsv; '\\t' means tab)")
        _add(parser, "--no-header", dest="no_header", action="store_true",
             help="CSV/TSV files have no header line; name the fields with --columns")
        _add(parser, "--columns", dest="columns", default=None, metavar="A,B,C",
             help="field names of CSV/TSV files, in order (needed with --no-header; with a "
                  "header line they replace its names)")
        _add(parser, "--user-column", dest="user_column", default=None, metavar="NAME",
             help="user id column (default: user_id; with --session-column and no "
                  "--user-column the session id stands in for the user)")
        _add(parser, "--item-column", dest="item_column", default="item_id", metavar="NAME",
             help="item id column (default: item_id)")
        _add(parser, "--time-column", dest="time_column", default="timestamp", metavar="NAME",
             help="event time column (default: timestamp): epoch numbers, ISO-8601 text or "
                  "a timestamp/date type")
        _add(parser, "--date-column", dest="date_column", default=None, metavar="NAME",
             help="a date (or date-time) column to read instead of --time-column; add "
                  "--time-offset-column for the time within that date")
        _add(parser, "--time-offset-column", dest="time_offset_column", default=None,
             metavar="NAME", help="numbers added to the date (or time) column, in "
                                  "--time-offset-unit: e.g. milliseconds within the day")
        _add(parser, "--time-offset-unit", dest="time_offset_unit", default="ms",
             choices=OFFSET_UNITS, help="unit of --time-offset-column (default: ms)")
        _add(parser, "--action-column", dest="action_column", default="action", metavar="NAME",
             help="action column (default: action), read only when --actions is given")
        _add(parser, "--session-column", dest="session_column", default=None, metavar="NAME",
             help="column whose values are the sessions (no gap rule); needs no user column")
        _add(parser, "--null-values", dest="null_values", default=",".join(NULL_VALUES),
             metavar="A,B", help="id values that mean 'missing' besides empty text "
                                 f"(default: {','.join(NULL_VALUES)}; '' for none)")
        _add(parser, "--time-unit", dest="time_unit", default="auto", choices=TIME_UNITS,
             help="epoch unit of numeric times; auto infers it from each value's magnitude")
        _add(parser, "--actions", dest="actions", default=None, metavar="A,B",
             help="keep only events with these actions")
        _add(parser, "--session-gap", dest="session_gap", type=float, default=1800.0,
             metavar="SECONDS", help="a gap longer than this starts a new session (1800)")
        _add(parser, "--min-session-length", dest="min_session_length", type=int, default=2,
             metavar="N", help="drop sessions with fewer items (2)")
        _add(parser, "--max-session-length", dest="max_session_length", type=int, default=1000,
             metavar="N", help="split longer sessions into near-equal consecutive chunks (1000)")
        _add(parser, "--min-item-count", dest="min_item_count", type=int, default=1,
             metavar="N", help="remove items with fewer engagements (1: keep all)")
        _add(parser, "--max-user-events", dest="max_user_events", type=int, default=0,
             metavar="N", help="bot guard: drop users with more events (0: no limit)")
        _add(parser, "--keep-repeats", dest="keep_repeats", action="store_true",
             help="keep consecutive repeats of one item")
        _add(parser, "--buckets", dest="buckets", type=int, default=0, metavar="N",
             help="user-hash buckets = output shards (0: 4 per worker, at least 8)")
        _add(parser, "--batch-size", dest="batch_size", type=int, default=262_144,
             metavar="ROWS", help="rows per Arrow record batch read")
        _add(parser, "--overwrite", dest="overwrite", action="store_true",
             help="replace a non-empty output directory")
        _add(parser, "--quiet", dest="quiet", action="store_true",
             help="print only the output directory")


@dataclass(frozen=True)
class SessionizeConfig:
    """Everything the sessionize pipeline needs, validated (docs/architecture.md, SESSIONS dir)."""

    inputs: tuple[str, ...]
    output: str
    input_format: str = "auto"  # auto | parquet | csv | jsonl
    delimiter: str | None = None  # None: ',' for CSV, tab for .tsv
    no_header: bool = False
    columns: tuple[str, ...] | None = None  # names of headerless CSV fields
    user_column: str | None = "user_id"  # None (only with session_column): user = session
    item_column: str = "item_id"
    time_column: str = "timestamp"
    action_column: str = "action"
    session_column: str | None = None  # None: sessions by the gap rule
    time_unit: str = "auto"
    date_column: str | None = None  # read instead of time_column when given
    time_offset_column: str | None = None  # added to the date/time, in time_offset_unit
    time_offset_unit: str = "ms"
    null_values: tuple[str, ...] = NULL_VALUES  # id values that mean missing (besides "")
    actions: tuple[str, ...] | None = None  # None: keep every action
    session_gap: float = 1800.0  # seconds; a longer gap starts a new session
    min_session_length: int = 2
    max_session_length: int = 1000
    min_item_count: int = 1  # 1 keeps every item
    max_user_events: int = 0  # 0: no bot guard
    keep_repeats: bool = False
    buckets: int = 8  # user-hash buckets, also the number of sessions-*.parquet shards
    batch_size: int = 262_144
    overwrite: bool = False
    quiet: bool = False

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ConfigError("no input given: pass --input PATH_OR_GLOB (repeat for several)")
        if not self.output:
            raise ConfigError("no output given: pass --output DIR")
        if self.input_format not in FORMATS:
            raise ConfigError(f"--input-format must be one of {', '.join(FORMATS)}")
        if self.time_unit not in TIME_UNITS:
            raise ConfigError(f"--time-unit must be one of {', '.join(TIME_UNITS)}")
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise ConfigError(f"--delimiter must be one character, got {self.delimiter!r}")
        if self.delimiter is not None and self.delimiter in '\r\n"':
            raise ConfigError(f"--delimiter cannot be a line break or the quote character, "
                              f"got {self.delimiter!r}")
        if self.no_header and not self.columns:
            raise ConfigError("--no-header needs --columns a,b,c naming the fields in order")
        if self.columns and len(set(self.columns)) != len(self.columns):
            raise ConfigError(f"--columns has a repeated name: {','.join(self.columns)}")
        for name in ("item_column", "time_column", "action_column"):
            if not getattr(self, name):
                raise ConfigError(f"--{name.replace('_', '-')} must not be empty")
        if not self.user_column and not self.session_column:
            raise ConfigError("no user column: pass --user-column NAME, or --session-column NAME "
                              "for a log keyed by session")
        if self.time_offset_unit not in OFFSET_UNITS:
            raise ConfigError(f"--time-offset-unit must be one of {', '.join(OFFSET_UNITS)}")
        if self.actions is not None and not self.actions:
            raise ConfigError("--actions is empty: list the actions to keep, e.g. save,click")
        if not 0 < self.session_gap <= 100 * 365 * 86_400:  # also NaN and inf
            raise ConfigError(f"--session-gap must be > 0 and at most 100 years in seconds, "
                              f"got {self.session_gap}")
        if self.min_session_length < 1:
            raise ConfigError("--min-session-length must be >= 1")
        if self.max_session_length < max(self.min_session_length, 1):
            raise ConfigError("--max-session-length must be >= --min-session-length")
        if self.min_item_count < 1:
            raise ConfigError("--min-item-count must be >= 1 (1 keeps every item)")
        if self.max_user_events < 0:
            raise ConfigError("--max-user-events must be >= 0 (0 turns the bot guard off)")
        if not 1 <= self.buckets <= 100_000:
            raise ConfigError("--buckets must be between 1 and 100000")
        if self.batch_size < 1:
            raise ConfigError("--batch-size must be >= 1")

    @property
    def session_gap_us(self) -> int:
        """The session gap in microseconds (the unit of validated event times)."""
        return int(round(self.session_gap * 1_000_000))

    def to_json(self) -> dict:
        """Every option as JSON-ready values (for the manifest)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _split(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad value is one ConfigError line rather than the whole usage text."""

    def error(self, message: str):
        raise ConfigError(f"{message} (see {self.prog} --help)")


def build_parser(prog: str = "pin2vec sessionize") -> argparse.ArgumentParser:
    """The user-facing parser (help text, type errors); Beam flags are left over for Beam."""
    parser = _Parser(
        prog=prog,
        description="Engagement logs -> SESSIONS directory (Apache Beam). Beam flags such as "
        "--runner, --direct_num_workers N --direct_running_mode multi_processing pass through.",
        allow_abbrev=False,
    )
    SessionizeOptions._add_argparse_args(parser)
    return parser


def check_beam_args(args: list[str]) -> None:
    """Raise ConfigError for flags neither pin2vec nor any Beam options class knows."""
    parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(args)
    flags = [a for a in unknown if a.startswith("-")]
    if flags:
        known = [o for action in parser._actions for o in action.option_strings]
        guess = difflib.get_close_matches(flags[0].split("=")[0], known, n=1)
        hint = f" (did you mean {guess[0]}?)" if guess else ""
        raise ConfigError(f"unknown option {flags[0]}{hint}; see --help")
    if unknown:
        raise ConfigError(f"unexpected argument {unknown[0]!r}; inputs go after --input")


def config_from_args(ns: argparse.Namespace, default_buckets: int = 8) -> SessionizeConfig:
    """A validated :class:`SessionizeConfig` from parsed flags."""
    delimiter = ns.delimiter
    if delimiter in ("\\t", "tab", "TAB"):
        delimiter = "\t"
    return SessionizeConfig(
        inputs=tuple(ns.input or ()),
        output=ns.output or "",
        input_format=ns.input_format,
        delimiter=delimiter,
        no_header=ns.no_header,
        columns=_split(ns.columns),
        user_column=ns.user_column or (None if ns.session_column else "user_id"),
        item_column=ns.item_column,
        time_column=ns.time_column,
        action_column=ns.action_column,
        session_column=ns.session_column or None,
        time_unit=ns.time_unit,
        date_column=ns.date_column or None,
        time_offset_column=ns.time_offset_column or None,
        time_offset_unit=ns.time_offset_unit,
        null_values=tuple(v.strip() for v in ns.null_values.split(",") if v.strip()),
        actions=_split(ns.actions),
        session_gap=ns.session_gap,
        min_session_length=ns.min_session_length,
        max_session_length=ns.max_session_length,
        min_item_count=ns.min_item_count,
        max_user_events=ns.max_user_events,
        keep_repeats=ns.keep_repeats,
        buckets=ns.buckets or default_buckets,
        batch_size=ns.batch_size,
        overwrite=ns.overwrite,
        quiet=ns.quiet,
    )
