"""CSV/TSV reader that keeps exact physical line numbers and dead-letters bad lines.

Chunks of the file in which every line holds an even number of quote characters (so that no quoted
field spans lines) go through ``pyarrow.csv`` (every field read as bytes); the physical line of each
row comes from a vectorised newline scan. From the first chunk where a quoted field may span lines
on, the rest of the file goes through Python's ``csv`` module, which follows such fields. Rows with
fewer fields than the header are ``short_row``, with more ``long_row``; a used field that is not
UTF-8 is ``bad_encoding``. Fields are kept as text ("42.0" stays "42.0").
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from pipeline._beam import FileSystems
from pipeline.io.base import InputFile, RawBatch, is_utf8

CHUNK_BYTES = 16 << 20


def parse_header(line: bytes, delimiter: str) -> list[str]:
    """Field names of a CSV header line (quotes honoured, BOM and blanks stripped)."""
    text = line.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")
    return [name.strip() for name in next(csv.reader([text], delimiter=delimiter), [])]


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
    with FileSystems.open(file.path) as f:
        line_no = 0
        if config.no_header:
            names = list(config.columns)
        else:
            header = f.readline()
            if not header.strip():
                return  # an empty file: no records
            names = parse_header(header, file.delimiter)
            line_no = 1
            if config.columns:
                names = list(config.columns)
        reader = _CsvChunks(file, spec, names, config.batch_size)
        carry = b""
        while True:
            block = f.read(CHUNK_BYTES)
            data = carry + block
            if not block:
                if data:
                    data += b"\n"
                else:
                    return
            cut = data.rfind(b"\n") + 1
            chunk, carry = data[:cut], data[cut:]
            if b'"' in chunk and not _quotes_balanced(chunk):
                rest = io.BufferedReader(_Chain(chunk + carry, f))
                yield from reader.python(rest, line_no)
                return
            yield from reader.fast(chunk, line_no)
            line_no += chunk.count(b"\n")
            if not block:
                return


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

        table = pacsv.read_csv(
            io.BytesIO(chunk),
            read_options=pacsv.ReadOptions(column_names=self.names, use_threads=False,
                                           block_size=len(chunk) + 1),
            parse_options=pacsv.ParseOptions(delimiter=self.file.delimiter,
                                             invalid_row_handler=handler),
            convert_options=pacsv.ConvertOptions(
                column_types={s: pa.binary() for s in self.used}, include_columns=self.used),
        )
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
        """Rows of the rest of a file via Python's csv module (quoted fields may span lines)."""
        state = {"line": line_no, "bad": set(), "raw": []}

        def lines():
            for raw in stream:
                state["line"] += 1
                state["raw"].append(raw)
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError:
                    state["bad"].add(state["line"])
                    yield raw.decode("utf-8", errors="surrogateescape")

        reader = csv.reader(lines(), delimiter=self.file.delimiter)
        n_fields = len(self.names)
        values: list[list[str]] = [[] for _ in self.used]
        line_numbers: list[int] = []
        rejects: list = []
        while True:
            first = state["line"] + 1
            state["raw"] = []
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                rejects.append((first, "short_row", f"{_text(b''.join(state['raw']))} ({e})"))
                continue
            if not row:
                continue  # blank line
            text = _text(b"".join(state["raw"]))
            if len(row) != n_fields:
                rejects.append((first, "short_row" if len(row) < n_fields else "long_row", text))
                continue
            fields = [row[p] for p in self.positions]
            if any(first <= b <= state["line"] for b in state["bad"]) and not all(
                _encodable(v) for v in fields
            ):
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

    def _emit(self, values, line_numbers, rejects) -> RawBatch:
        columns = {s: pa.array(v, pa.string()) for s, v in zip(self.used, values)}
        return self._batch(columns, line_numbers, rejects)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False
