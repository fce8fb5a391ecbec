"""CSV/TSV reader that keeps exact physical line numbers and dead-letters bad lines.

Chunks of the file in which every line holds an even number of quote characters (so that no quoted
field spans lines) go through ``pyarrow.csv`` (every field read as bytes); the physical line of each
row comes from a vectorised newline scan. From the first chunk where a quoted field may span lines
on, the rest of the file goes through Python's ``csv`` module, which follows such fields. Rows with
fewer fields than the header are ``short_row``, with more ``long_row``; a used field that is not
UTF-8 is ``bad_encoding``. Fields are kept as text ("42.0" stays "42.0").
"""

from __future__ import annotations

import bz2
import collections
import csv
import gzip
import io
import sys
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from pipeline._beam import CompressionTypes, FileSystems
from pipeline.io.base import InputFile, RawBatch, is_encodable, is_utf8

CHUNK_BYTES = 16 << 20
MAX_SPAN_BYTES = 1 << 20  # the most a quoted field spanning lines may hold before it is refused
# Field length is one rule for every format and path (pipeline.validate.MAX_FIELD_BYTES on the
# values a run reads); the csv module's own limit would reject long unused fields on this path only.
csv.field_size_limit(2**31 - 1)


def parse_header(line: bytes, delimiter: str) -> list[str]:
    """Field names of a CSV header line (quotes honoured, BOM and blanks stripped)."""
    text = line.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")
    return [name.strip() for name in next(csv.reader([text], delimiter=delimiter), [])]


class CheckedInput(io.RawIOBase):
    """A text input, decompressed by its extension (``.gz``, ``.bz2``), that notices damage.

    Beam's own decompressing reader stops quietly where a truncated file ends, which would read
    half a log as if it were all of it. Here the end-of-stream marker and checksum are checked:
    a truncated or damaged file ends at its last complete line, and :attr:`damage` says why and
    holds the cut-off partial line (the reader rejects it as one ``truncated_file`` record).
    """

    def __init__(self, path: str):
        self.path = path
        self.raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
        lower = path.lower()
        if lower.endswith(".gz"):
            self.stream = gzip.GzipFile(fileobj=self.raw, mode="rb")
        elif lower.endswith(".bz2"):
            self.stream = bz2.BZ2File(self.raw, mode="rb")
        else:
            self.stream = None
        self.held = bytearray()  # decompressed bytes not yet delivered start at self.start
        self.start = 0
        self.ready = 0  # held[start:ready] ends with a newline (or the clean end): deliverable
        self.damage: tuple[str, bytes] | None = None  # (why, cut-off partial line)
        self.done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.stream is None:
            return self.raw.readinto(buffer) if hasattr(self.raw, "readinto") else \
                _copy(self.raw.read(len(buffer)), buffer)
        while self.start == self.ready and not self.done:
            try:
                block = self.stream.read1(1 << 20)  # one step: data before damage is kept
            except (EOFError, OSError, zlib.error) as e:  # truncated, bad CRC, not gzip ...
                self.damage = (str(e) or type(e).__name__, bytes(self.held[self.ready:]))
                self.done = True
                break
            if not block:
                self.done, self.ready = True, len(self.held)
                break
            if self.start > (1 << 20) and self.start * 2 > len(self.held):
                del self.held[: self.start]  # compact now and then, not on every read
                self.ready -= self.start
                self.start = 0
            self.held += block
            newline = block.rfind(b"\n")
            if newline >= 0:
                self.ready = len(self.held) - len(block) + newline + 1
        n = min(len(buffer), self.ready - self.start)
        buffer[:n] = self.held[self.start : self.start + n]
        self.start += n
        return n

    def close(self) -> None:
        try:
            if self.stream is not None:
                self.stream.close()
            self.raw.close()
        finally:
            super().close()


def _copy(data: bytes, buffer) -> int:
    buffer[: len(data)] = data
    return len(data)


def open_input(path: str) -> io.BufferedReader:
    """A buffered binary reader over :class:`CheckedInput` (``.raw.damage`` after the end)."""
    return io.BufferedReader(CheckedInput(path), buffer_size=1 << 20)


def damage_reject(f, line_no: int) -> tuple[int, str, str] | None:
    """The dead-letter entry for a damaged compressed input, read to its end, else None."""
    damage = f.raw.damage if isinstance(getattr(f, "raw", None), CheckedInput) else None
    if damage is None:
        return None
    why, partial = damage
    return (line_no + 1, "truncated_file",
            f"{_text(partial)!r} is where the compressed data stops being readable ({why}); "
            "records before it were read, anything after it is missing")


def damaged_batch(file: InputFile, spec: dict[str, str], reject) -> RawBatch:
    """A RawBatch holding no rows, only the ``truncated_file`` reject of a damaged input."""
    columns = {c: pa.array([], pa.string()) for c in spec}
    columns["line"] = pa.array([], pa.int64())
    return RawBatch(file.index, file.path, pa.table(columns), [reject])


def iter_lines(f):
    """Lines of a Beam file handle (compressed handles are not iterable themselves)."""
    while True:
        line = f.readline()
        if not line:
            return
        yield line


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="backslashreplace").rstrip("\r\n")


def read_csv(file: InputFile, spec: dict[str, str], config):
    """RawBatches of one CSV/TSV file (see the module docstring)."""
    with open_input(file.path) as f:
        if config.no_header:
            names = list(config.columns)
        else:
            header = f.readline()
            if not header.strip():  # an empty file: no records (unless it is a damaged one)
                damaged = damage_reject(f, 0)
                if damaged is not None:
                    yield damaged_batch(file, spec, damaged)
                return
            names = parse_header(header, file.delimiter)
            if config.columns:
                names = list(config.columns)
        reader = _CsvChunks(file, spec, names, config.batch_size)
        last = yield from _read_rows(f, reader, 0 if config.no_header else 1)
        damaged = damage_reject(f, last)
        if damaged is not None:
            yield damaged_batch(file, spec, damaged)


def _read_rows(f, reader, line_no: int):
    """The rows after the header: fast chunks while quotes stay on their line, then Python's csv.
    Returns the last physical line number read."""
    carry = b""
    while True:
        block = f.read(CHUNK_BYTES)
        data = carry + block
        if not block:
            if data:
                data += b"\n"
            else:
                return line_no
        cut = data.rfind(b"\n") + 1
        chunk, carry = data[:cut], data[cut:]
        if b'"' in chunk and not _quotes_balanced(chunk):
            rest = io.BufferedReader(_Chain(chunk + carry, f))
            return (yield from reader.python(rest, line_no))
        yield from reader.fast(chunk, line_no)
        line_no += chunk.count(b"\n")
        if not block:
            return line_no


def _quotes_balanced(chunk: bytes) -> bool:
    """Whether every line has an even number of quote characters (so no quoted field spans lines:
    each physical line is one row and pyarrow can parse the chunk)."""
    buf = np.frombuffer(chunk, dtype=np.uint8)
    line_of_quote = np.searchsorted(np.flatnonzero(buf == 10), np.flatnonzero(buf == 34))
    return not (np.bincount(line_of_quote) & 1).any()


class _Chain(io.RawIOBase):
    """A readable stream over ``head`` bytes followed by the rest of ``stream``."""

    def __init__(self, head: bytes, stream):
        self.head, self.stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self.head:
            self.head = self.stream.read(len(buffer))
            if not self.head:
                return 0
        n = min(len(buffer), len(self.head))
        buffer[:n] = self.head[:n]
        self.head = self.head[n:]
        return n


class _CsvChunks:
    def __init__(self, file: InputFile, spec: dict[str, str], names: list[str], batch_size: int):
        self.file, self.spec, self.names, self.batch_size = file, spec, names, batch_size
        self.used = list(dict.fromkeys(spec.values()))
        self.positions = [names.index(s) for s in self.used]

    def _batch(self, columns: dict[str, pa.Array], lines, rejects) -> RawBatch:
        table = {c: columns[s] for c, s in self.spec.items()}
        table["line"] = pa.array(lines, pa.int64())
        return RawBatch(self.file.index, self.file.path, pa.table(table), rejects)

    def fast(self, chunk: bytes, line_no: int):
        """Rows of a quote-free chunk via pyarrow.csv; physical lines from a newline scan."""
        buf = np.frombuffer(chunk, dtype=np.uint8)
        ends = np.flatnonzero(buf == 10)
        starts = np.concatenate([[0], ends[:-1] + 1])
        lengths = ends - starts
        blank = (lengths == 0) | ((lengths == 1) & (buf[starts] == 13))
        nonblank = np.flatnonzero(~blank)
        invalid: list[tuple[int, int]] = []

        def handler(row) -> str:
            invalid.append((row.number, row.actual_columns))
            return "skip"

        # pyarrow hands a bad row to the handler as text; one that is not UTF-8 makes it report an
        # "Exception ignored" traceback on stderr and fail, after which the slow path reads the
        # chunk. Only for such chunks, that report is silenced.
        hook = sys.unraisablehook
        if not is_utf8(chunk):
            sys.unraisablehook = lambda _: None
        try:
            table = pacsv.read_csv(
                io.BytesIO(chunk),
                read_options=pacsv.ReadOptions(column_names=self.names, use_threads=False,
                                               block_size=len(chunk) + 1),
                parse_options=pacsv.ParseOptions(delimiter=self.file.delimiter,
                                                 invalid_row_handler=handler),
                convert_options=pacsv.ConvertOptions(
                    column_types={s: pa.binary() for s in self.used}, include_columns=self.used),
            )
        except pa.ArrowInvalid:  # e.g. a bad row that is not UTF-8 (pyarrow cannot hand it over)
            table = None
        finally:
            sys.unraisablehook = hook
        if table is None:
            yield from self.python(io.BufferedReader(_Chain(chunk, io.BytesIO())), line_no)
            return
        bad_rows = np.array([number - 1 for number, _ in invalid], dtype=np.int64)
        good = np.setdiff1d(np.arange(len(nonblank)), bad_rows)
        if len(good) != table.num_rows or any(n is None for n, _ in invalid):
            yield from self.python(io.BufferedReader(_Chain(chunk, io.BytesIO())), line_no)
            return
        rejects = []
        for (number, width), idx in zip(invalid, bad_rows):
            i = nonblank[idx]
            reason = "short_row" if width < len(self.names) else "long_row"
            rejects.append((int(line_no + i + 1), reason, _text(chunk[starts[i] : ends[i]])))
        lines = line_no + nonblank[good] + 1
        columns, undecodable = {}, np.zeros(table.num_rows, dtype=bool)
        for s in self.used:
            col = table.column(s).combine_chunks()
            try:
                columns[s] = col.cast(pa.string())
            except pa.ArrowInvalid:
                values = col.to_pylist()
                ok = np.array([is_utf8(v) for v in values], dtype=bool)
                undecodable |= ~ok
                columns[s] = pa.array([v.decode() if k else "" for v, k in zip(values, ok)])
        if undecodable.any():
            for idx in np.flatnonzero(undecodable):
                i = nonblank[good[idx]]
                rejects.append((int(lines[idx]), "bad_encoding",
                                _text(chunk[starts[i] : ends[i]])))
            keep = pa.array(~undecodable)
            columns = {s: c.filter(keep) for s, c in columns.items()}
            lines = lines[~undecodable]
        rejects.sort()
        for lo in range(0, max(len(lines), 1), self.batch_size):
            hi = lo + self.batch_size
            part = {s: c.slice(lo, self.batch_size) for s, c in columns.items()}
            yield self._batch(part, lines[lo:hi], rejects if lo == 0 else [])

    def python(self, stream, line_no: int):
        """Rows of the rest of a file via Python's csv module; returns the last line number.

        A quoted field may span lines. When a line opens a quote that no later line closes into a
        well-formed row (the right number of fields, and no line inside it that is a complete row
        of its own) within :data:`MAX_SPAN_BYTES`, that line alone is rejected as
        ``unterminated_quote`` and reading goes on with the next line, so a stray quote costs one
        record instead of swallowing the rest of the file.
        """
        n_fields = len(self.names)
        values: list[list[str]] = [[] for _ in self.used]
        line_numbers: list[int] = []
        rejects: list = []
        pending: collections.deque = collections.deque()  # (number, raw) to read again
        last_read = line_no

        def next_line():
            nonlocal last_read
            if pending:
                return pending.popleft()
            raw = stream.readline()
            if not raw:
                return None
            last_read += 1
            return last_read, raw

        while True:
            item = next_line()
            if item is None:
                break
            first, raw = item
            if not raw.strip(b"\r\n"):
                continue  # blank line
            record = [item]
            row, status = self._parse(record)
            quotes = raw.count(b'"')
            while status == "open" and sum(len(r) for _, r in record) <= MAX_SPAN_BYTES:
                more = next_line()
                if more is None:
                    break
                record.append(more)
                quotes += more[1].count(b'"')
                if quotes % 2 == 0:  # the quote may have closed: parse the record again
                    row, status = self._parse(record)
            last = record[-1][0]
            text = _text(b"".join(r for _, r in record))
            if len(record) > 1 and (status != "ok" or len(row) != n_fields
                                    or self._swallows_rows(record)):
                rejects.append((first, "unterminated_quote",
                                f"{_text(raw)} (lines {first}-{last}: the quote opened on line "
                                f"{first} does not close into one well-formed row)"))
                pending.extendleft(reversed(record[1:]))
                continue
            if status == "open":
                rejects.append((first, "unterminated_quote", f"{text} (the quote opened on "
                                f"line {first} is not closed before the end of the file)"))
                continue
            if status != "ok":
                rejects.append((first, "short_row", f"{text} ({status})"))
                continue
            if len(row) != n_fields:
                rejects.append((first, "short_row" if len(row) < n_fields else "long_row", text))
                continue
            fields = [row[p] for p in self.positions]
            if not all(is_encodable(v) for v in fields):
                rejects.append((first, "bad_encoding", text))
                continue
            for column, value in zip(values, fields):
                column.append(value)
            line_numbers.append(first)
            if len(line_numbers) >= self.batch_size:
                yield self._emit(values, line_numbers, rejects)
                values, line_numbers, rejects = [[] for _ in self.used], [], []
        if line_numbers or rejects:
            yield self._emit(values, line_numbers, rejects)
        return last_read

    def _swallows_rows(self, record) -> bool:
        """Whether a line inside a multi-line record is a well-formed row of its own (no quote,
        every field): the quote that opened the record was a stray one, not a quoted field."""
        sep = self.file.delimiter.encode()
        width = len(self.names) - 1
        return any(b'"' not in raw and raw.count(sep) == width for _, raw in record[1:-1])

    def _parse(self, record) -> tuple[list[str] | None, str]:
        """(fields, "ok") for physical lines ``record``, or (None, "open") while a quoted field is
        still open at their end, or (None, the csv module's complaint)."""
        text = b"".join(raw for _, raw in record).decode("utf-8", errors="surrogateescape")
        delimiter = self.file.delimiter
        try:
            rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter,
                                   strict=True))
        except csv.Error as e:
            if "unexpected end of data" in str(e):
                return None, "open"
            try:  # lenient, as before: 'a,"b"x' reads as a,bx
                rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
            except csv.Error as e2:
                return None, str(e2)
        if len(rows) != 1:
            return None, "a carriage return inside an unquoted field" if rows else "no fields"
        return rows[0], "ok"

    def _emit(self, values, line_numbers, rejects) -> RawBatch:
        columns = {s: pa.array(v, pa.string()) for s, v in zip(self.used, values)}
        return self._batch(columns, line_numbers, rejects)
