"""Inputs shaped like real logs: a date plus a time-of-day offset, implausible times, NA ids,
session-keyed logs without users, and help texts that name the defaults."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pytest

from pipeline.io.base import RawBatch
from pipeline.options import SessionizeConfig, build_parser, config_from_args
from pipeline.sessions_job import run, time_warnings
from pipeline.timeparse import add_offsets, parse_times
from pipeline.validate import validate_batch
from recommender.core.errors import ConfigError, Pin2VecError
from recommender.core.sessions import read_sessions_table

DAY = dt.datetime(2024, 1, 5, tzinfo=dt.timezone.utc)


def epoch_us(when: dt.datetime) -> int:
    return int(when.timestamp()) * 1_000_000


def test_add_offsets_in_every_unit_and_rejects():
    dates = pa.array(["2024-01-05"] * 6)
    us, reason = parse_times(dates)
    add_offsets(us, reason, pa.array(["45000000", "1.5", None, "soon", " 750 ", ""]), "ms")
    noon_half = epoch_us(DAY + dt.timedelta(hours=12, minutes=30))
    assert list(us[[0, 1, 4]]) == [noon_half, epoch_us(DAY) + 1_500, epoch_us(DAY) + 750_000]
    assert list(reason) == [None, None, "missing_time", "bad_time", None, "missing_time"]
    for unit, value, expected in (("h", 2, 7_200_000_000), ("min", 3, 180_000_000),
                                  ("s", 4, 4_000_000), ("us", 5, 5), ("ns", 6_000, 6)):
        us, reason = parse_times(pa.array(["2024-01-05"]))
        add_offsets(us, reason, pa.array([value]), unit)
        assert us[0] - epoch_us(DAY) == expected and reason[0] is None, unit
    # an already rejected date keeps its reason; an offset pushing past 2100 is out of range
    us, reason = parse_times(pa.array(["nope", "2099-12-31"]))
    add_offsets(us, reason, pa.array([1, 10**12]), "s")
    assert list(reason) == ["bad_time", "time_out_of_range"]


def config(**kw) -> SessionizeConfig:
    return SessionizeConfig(inputs=("mem",), output="unused", **kw)


def raw_batch(users, items, times) -> RawBatch:
    table = pa.table({"user": users, "item": items, "time": times,
                      "line": pa.array(range(2, len(users) + 2), pa.int64())})
    return RawBatch(0, "mem.csv", table)


def _sessions(out):
    t = read_sessions_table(out, ["user_id", "start", "items"])
    return sorted(zip(t["user_id"].to_pylist(), [s.replace(tzinfo=dt.timezone.utc) for s in
                                                 t["start"].to_pylist()], t["items"].to_pylist()))


def test_date_plus_offset_columns_end_to_end(tmp_path):
    # a log whose time is a date column plus milliseconds within that day
    (tmp_path / "log.csv").write_text(
        "uid,item,day,ms\n"
        "u1,a,2024-01-05,45000000\n"   # 12:30:00
        "u1,b,2024-01-05,45060000\n"   # 12:31:00: same session
        "u1,c,2024-01-06,1000\n"       # next day: new session
        "u1,d,2024-01-06,61000\n"
    )
    out = tmp_path / "out"
    run(["--input", str(tmp_path / "log.csv"), "--output", str(out), "--user-column", "uid",
         "--item-column", "item", "--date-column", "day", "--time-offset-column", "ms",
         "--time-offset-unit", "ms", "--quiet"])
    assert _sessions(out) == [
        ("u1", DAY + dt.timedelta(hours=12, minutes=30), ["a", "b"]),
        ("u1", DAY + dt.timedelta(days=1, seconds=1), ["c", "d"]),
    ]
    with pytest.raises(Pin2VecError, match=r"no column 'millis' \(--time-offset-column\)"):
        run(["--input", str(tmp_path / "log.csv"), "--output", str(tmp_path / "o2"),
             "--user-column", "uid", "--item-column", "item", "--date-column", "day",
             "--time-offset-column", "millis"])


def test_times_all_before_1990_warn_naming_column_and_unit(tmp_path, caplog):
    # milliseconds within the day in the time column: read as epoch seconds, all in 1970-71
    (tmp_path / "log.csv").write_text(
        "user_id,item_id,timestamp\nu1,a,46200000\nu1,b,46200500\nu2,a,46300000\nu2,c,46300900\n")
    out = tmp_path / "out"
    manifest = run(["--input", str(tmp_path / "log.csv"), "--output", str(out), "--quiet"])
    (warning,) = manifest["warnings"]
    assert "before 1990-01-01" in warning and "--time-column 'timestamp'" in warning
    assert "--time-unit auto" in warning and "--time-offset-column" in warning
    assert "before 1990-01-01" in caplog.text
    assert json.loads((out / "manifest.json").read_text())["warnings"] == [warning]
    # plausible times, 1997 included (MovieLens-100k's first second): nothing counted, no warning
    _, _, counts = validate_batch(raw_batch(["u1"], ["a"], ["874724710"]), config())
    assert "before_1990" not in counts
    assert time_warnings(config(), 0, 1) == [] and time_warnings(config(), 1, 2) == []


def test_null_values_are_missing_ids(tmp_path):
    (tmp_path / "log.csv").write_text(
        "user_id,item_id,timestamp\n"
        "NA,a,1700000000\nNA,b,1700000001\n"      # NA user: missing_user by default
        "u1,null,1700000002\n"                     # null item
        "u1,a,1700000003\nu1,b,1700000004\n")
    out = tmp_path / "out"
    manifest = run(["--input", str(tmp_path / "log.csv"), "--output", str(out), "--quiet"])
    assert manifest["counts"]["rejected"]["missing_user"] == 2
    assert manifest["counts"]["rejected"]["missing_item"] == 1
    assert [u for u, _, _ in _sessions(out)] == ["u1"]
    # --null-values '' makes NA an ordinary id again; other lists replace the default
    batch = raw_batch(["NA", "-", "u1"], ["a", "b", "null"], ["1700000000"] * 3)
    for flag, kept in (("", 3), ("-", 2), ("NA,null", 1)):
        cfg = config_from_args(build_parser().parse_args(
            ["--input", "mem", "--output", "o", "--null-values", flag]))
        events, _, _ = validate_batch(batch, cfg)
        assert events.num_rows == kept, flag


def test_session_keyed_log_needs_no_user_column(tmp_path):
    (tmp_path / "log.csv").write_text(
        "session_id,item_id,timestamp\n"
        "s1,a,1700000000\ns1,b,1700009000\n"   # 2.5 h apart, still one session
        "s2,c,1700000000\ns2,d,1700000001\n")
    out = tmp_path / "out"
    manifest = run(["--input", str(tmp_path / "log.csv"), "--output", str(out),
                    "--session-column", "session_id", "--quiet"])
    assert manifest["options"]["user_column"] is None
    t0 = dt.datetime.fromtimestamp(1_700_000_000, dt.timezone.utc)
    assert _sessions(out) == [("s1", t0, ["a", "b"]), ("s2", t0, ["c", "d"])]
    with pytest.raises(Pin2VecError, match="keyed by session needs only --session-column"):
        run(["--input", str(tmp_path / "log.csv"), "--output", str(tmp_path / "o2")])
    with pytest.raises(ConfigError, match="--user-column NAME, or --session-column"):
        SessionizeConfig(inputs=("x",), output="o", user_column=None)


def test_sessionize_help_names_the_default_columns():
    text = build_parser().format_help()
    for default in ("default: user_id", "default: item_id", "default: timestamp",
                    "default: action", "--date-column", "--time-offset-unit", "--null-values"):
        assert default in " ".join(text.split()), default


def test_parsed_offsets_keep_integer_precision():
    us, reason = parse_times(pa.array([1_700_000_000], pa.int64()), "s")
    add_offsets(us, reason, pa.array([999], pa.int64()), "us")
    assert us[0] == 1_700_000_000_000_999 and reason[0] is None
    assert us.dtype == np.int64
