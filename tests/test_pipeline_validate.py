"""Readers + validation: each kind of bad record reaches the dead letter with reason and line."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline._beam import beam
from pipeline.io.base import InputFile, RawBatch
from pipeline.io.read import ReadEvents, Split, read_split
from pipeline.io.text import read_csv
from pipeline.options import SessionizeConfig
from pipeline.sinks import merge_counts
from pipeline.timeparse import parse_times
from pipeline.validate import REJECT_REASONS, ValidateEvents, validate_batch

T0 = 1_700_000_000
US = 1_000_000


def config(**kw) -> SessionizeConfig:
    return SessionizeConfig(inputs=("mem",), output="unused", **kw)


def read_all(path, fmt, cfg, delimiter=","):
    file = InputFile(0, str(path), fmt, delimiter)
    spec = {"user": cfg.user_column, "item": cfg.item_column, "time": cfg.time_column}
    if cfg.session_column:
        spec["session"] = cfg.session_column
    if cfg.actions:
        spec["action"] = cfg.action_column
    return list(read_split(Split(file, (0,) if fmt == "parquet" else None), spec, cfg))


def validated(path, fmt, cfg, delimiter=","):
    """[(line, reason)] of rejects, valid (user, item, us) rows, merged counts."""
    rejects, rows, counts = [], [], []
    for raw in read_all(path, fmt, cfg, delimiter):
        events, rej, c = validate_batch(raw, cfg)
        rejects += [(line, json.loads(text)["reason"]) for line, text in rej]
        rows += list(zip(events["user"].to_pylist(), events["item"].to_pylist(),
                         events["ts"].to_pylist()))
        counts.append(c)
    return sorted(rejects), rows, merge_counts(counts)


CSV_BAD = (
    b"user_id,item_id,timestamp,action\n"      # 1
    b"u1,a,1700000000,click\n"                  # 2 ok
    b"\n"                                       # 3 blank: skipped, not a record
    b",a,1700000001,click\n"                    # 4 missing_user
    b"u1,  ,1700000002,click\n"                 # 5 missing_item (blank after strip)
    b"u1,b,,click\n"                            # 6 missing_time
    b"u1,b,yesterday,click\n"                   # 7 bad_time
    b"u1,b,1960-01-01T00:00:00Z,click\n"        # 8 time_out_of_range
    b"u1,b\n"                                   # 9 short_row
    b"u1,b,1700000003,click,extra\n"            # 10 long_row
    b"u\xff1,b,1700000004,click\n"              # 11 bad_encoding
    b"u1,42.0,1700000005,save\n"                # 12 ok: "42.0" stays text
)


def test_csv_each_bad_row_has_its_reason_and_physical_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(CSV_BAD)
    rejects, rows, counts = validated(path, "csv", config())
    assert rejects == [(4, "missing_user"), (5, "missing_item"), (6, "missing_time"),
                       (7, "bad_time"), (8, "time_out_of_range"), (9, "short_row"),
                       (10, "long_row"), (11, "bad_encoding")]
    assert rows == [("u1", "a", T0 * US), ("u1", "42.0", (T0 + 5) * US)]
    assert counts["read"] == 10 == counts["valid"] + sum(counts["rejected"].values())


def test_csv_quoted_fields_across_lines_keep_line_numbers(tmp_path):
    path = tmp_path / "quoted.csv"
    path.write_bytes(b'user_id,item_id,timestamp\nu1,a,1700000000\nu1,"b\nstill b",1700000001\n'
                     b'u1,c\n"u2",d,1700000002\n\nu\xff,e,1700000003\n')
    rejects, rows, _ = validated(path, "csv", config())
    assert rejects == [(5, "short_row"), (8, "bad_encoding")]
    assert rows == [("u1", "a", T0 * US), ("u1", "b\nstill b", (T0 + 1) * US),
                    ("u2", "d", (T0 + 2) * US)]


def test_headerless_tsv_with_integer_ids(tmp_path):
    path = tmp_path / "log.tsv"
    path.write_bytes(b"7\t42\t1700000000000\n7\t43\t1700000060000\n")
    cfg = config(no_header=True, columns=("user_id", "item_id", "timestamp"))
    file = InputFile(0, str(path), "csv", "\t")
    spec = {"user": "user_id", "item": "item_id", "time": "timestamp"}
    raws = list(read_csv(file, spec, cfg))
    events, rejects, _ = validate_batch(raws[0], cfg)
    assert rejects == []
    assert events["item"].to_pylist() == ["42", "43"]
    assert events["ts"].to_pylist() == [T0 * US, (T0 + 60) * US]
    assert raws[0].table["line"].to_pylist() == [1, 2]


def test_jsonl_bad_json_bad_type_bad_encoding(tmp_path):
    path = tmp_path / "bad.jsonl"
    lines = [
        b'{"user_id": "u1", "item_id": 42, "timestamp": "2023-11-14T23:13:20+01:00"}',  # 1 ok
        b"not json",                                                                 # 2
        b"[1, 2]",                                                                   # 3
        b'{"user_id": true, "item_id": "a", "timestamp": 1700000000}',              # 4
        b'{"user_id": "u1", "item_id": [1], "timestamp": 1700000000}',              # 5
        b'{"user_id": "u1", "item_id": 1.5, "timestamp": 1700000000}',              # 6
        b'{"user_id": "u1", "item_id": "a", "timestamp": {"s": 1}}',                # 7
        b'{"user_id": "u\xff", "item_id": "a", "timestamp": 1700000000}',           # 8
        b"   ",                                                                      # 9 blank
        b'{"item_id": "a", "timestamp": 1700000000}',                               # 10
        b'{"user_id": 5, "item_id": "a", "timestamp": 1700000000123}',              # 11 ok (ms)
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    rejects, rows, counts = validated(path, "jsonl", config())
    assert rejects == [(2, "bad_json"), (3, "bad_json"), (4, "bad_type"), (5, "bad_type"),
                       (6, "bad_type"), (7, "bad_type"), (8, "bad_encoding"),
                       (10, "missing_user")]
    assert rows == [("u1", "42", T0 * US), ("5", "a", T0 * US + 123_000)]
    assert counts["read"] == 10


def test_parquet_rows_integer_ids_and_arrow_timestamps(tmp_path):
    path = tmp_path / "p.parquet"
    paris = dt.timezone(dt.timedelta(hours=1))
    pq.write_table(pa.table({
        "user_id": pa.array([1, 2, None], pa.int64()),
        "item_id": pa.array([42, 43, 44], pa.int32()),
        "timestamp": pa.array([dt.datetime(2023, 11, 14, 23, 13, 20, tzinfo=paris)] * 3,
                              pa.timestamp("ns", tz="Europe/Paris")),
    }), path)
    rejects, rows, _ = validated(path, "parquet", config())
    assert rejects == [(3, "missing_user")]
    assert rows == [("1", "42", T0 * US), ("2", "43", T0 * US)]


def test_time_forms_and_units():
    values = pa.array(["1700000000", "1700000000000", "1700000000000000", "1700000000000000000",
                       "2023-11-14T22:13:20Z", "2023-11-14 23:13:20+01:00", "2023-11-14T22:13:20",
                       "2023-11-14T22:13:20.5+00:00", "0", "2100-01-01T00:00:00Z", "nope", "",
                       "2023-11-14 22:13:20 UTC", "20231114T221320Z"])
    us, reasons = parse_times(values)
    assert list(us[:7]) == [T0 * US] * 7 and us[7] == T0 * US + 500_000
    assert list(reasons) == [None] * 8 + ["time_out_of_range", "time_out_of_range", "bad_time",
                                          "missing_time", None, None]
    assert list(us[-2:]) == [T0 * US] * 2
    us, reasons = parse_times(pa.array([1700000000000, 1700000000], pa.int64()), "ms")
    assert list(us) == [T0 * US, T0 * 1000] and list(reasons) == [None, None]
    us, reasons = parse_times(pa.array([1700000000000], pa.int64()), "s")
    assert reasons[0] == "time_out_of_range"  # year 55,000 as seconds
    us, reasons = parse_times(pa.array([True]))
    assert reasons[0] == "bad_type"


def test_validate_composite_dead_letter_and_invariant(tmp_path):
    csv_path, json_path = tmp_path / "a.csv", tmp_path / "b.jsonl"
    csv_path.write_bytes(CSV_BAD)
    json_path.write_bytes(b'{"user_id": "u", "item_id": "i", "timestamp": 1700000000}\nnope\n')
    files = [InputFile(0, str(csv_path), "csv"), InputFile(1, str(json_path), "jsonl")]
    p = BeamTestPipeline(runner=FnApiRunner())
    out = p | beam.Create(files) | ReadEvents(config()) | ValidateEvents(config())
    sources = out.rejected | beam.FlatMap(
        lambda kv: [(json.loads(t)["source"].rsplit("/", 1)[1], json.loads(t)["reason"])
                    for _, t in kv[1]])
    assert_that(sources, equal_to([
        ("a.csv:4", "missing_user"), ("a.csv:5", "missing_item"), ("a.csv:6", "missing_time"),
        ("a.csv:7", "bad_time"), ("a.csv:8", "time_out_of_range"), ("a.csv:9", "short_row"),
        ("a.csv:10", "long_row"), ("a.csv:11", "bad_encoding"), ("b.jsonl:2", "bad_json"),
    ]), label="dead letter")
    invariant = (out.counts | beam.CombineGlobally(merge_counts)
                 | beam.Map(lambda c: (c["read"], c["valid"], sum(c["rejected"].values()))))
    assert_that(invariant, equal_to([(12, 3, 9)]), label="counts")
    p.run()
    assert set(REJECT_REASONS) >= {"short_row", "bad_json"}


def test_session_column_values_are_required():
    cfg = config(session_column="visit")
    raw = RawBatch(3, "mem.parquet", pa.table({
        "user": ["u", "u"], "item": ["a", "b"], "time": pa.array([T0, T0 + 1], pa.int64()),
        "session": ["v1", " "], "line": pa.array([1, 2], pa.int64()),
    }))
    events, rejects, counts = validate_batch(raw, cfg)
    assert [json.loads(t)["reason"] for _, t in rejects] == ["missing_session"]
    assert json.loads(rejects[0][1])["source"] == "mem.parquet:2"
    assert events["session"].to_pylist() == ["v1"]
    assert events["seq"].to_pylist() == [(3 << 40) | 1]
    assert counts == {"read": 2, "valid": 1, "rejected": {"missing_session": 1}, "filtered": {}}


def test_jsonl_clean_block_integer_ids_and_missing_keys(tmp_path):
    path = tmp_path / "clean.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"user_id": 7, "item_id": 42, "timestamp": 1700000000}\n\n'
                     b'{"user_id": 7, "item_id": 43, "timestamp": 1700000060, "extra": [1]}\n'
                     b'{"user_id": 8, "timestamp": 1700000000}\n')
    rejects, rows, counts = validated(path, "jsonl", config())
    assert rejects == [(4, "missing_item")]
    assert rows == [("7", "42", T0 * US), ("7", "43", (T0 + 60) * US)]
    assert counts["read"] == 3


def test_coders_round_trip_and_encode_only_a_slice():
    from pipeline.coders import ArrowTableCoder, RawBatchCoder

    table = pa.table({"user": [f"u{i}" for i in range(1000)], "line": list(range(1000))})
    coder = ArrowTableCoder()
    part = table.slice(10, 5)
    assert coder.decode(coder.encode(part)).equals(part)
    assert len(coder.encode(part)) < len(coder.encode(table)) / 5
    raw = RawBatch(2, "f.jsonl", part, [(3, "bad_type", {"user_id": [1]}), (4, "bad_json", "x")])
    back = RawBatchCoder().decode(RawBatchCoder().encode(raw))
    assert (back.file_index, back.path, back.rejects) == (2, "f.jsonl", raw.rejects)
    assert back.table.equals(part)
