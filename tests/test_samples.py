"""The committed sample data: reproducible, small, self-consistent, with its planted structure.

These tests read the files with plain csv/json/pyarrow and their own few-line sessionizer, never
through the pipeline, so they check the samples independently of the code the samples test.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import io
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"
EVENTS = ("engagements-0.parquet", "engagements-1.csv", "engagements-2.jsonl")
GAP = 1800
VALID_US = (0, 4_102_444_800)  # the pipeline's valid range, exclusive: 1970 .. 2100 (epoch s)


def _load_script():
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _data_files(root: Path) -> dict[str, Path]:
    return {
        p.relative_to(root).as_posix(): p
        for p in sorted(root.rglob("*"))
        # train_config.json is written by `pin2vec tune`, not by the generator
        if p.is_file() and p.suffix not in (".py", ".pyc")
        and p.name not in ("README.md", "train_config.json")
    }


@pytest.fixture(scope="module")
def events() -> list[tuple[str, str, int, str, str]]:
    """All engagements as (user, item, epoch seconds, action, file name)."""
    rows = []
    table = pq.read_table(SAMPLES / "events" / EVENTS[0])
    seconds = table["timestamp"].cast(pa.int64()).to_pylist()  # ms since the epoch
    for u, i, t, a in zip(table["user_id"].to_pylist(), table["item_id"].to_pylist(), seconds,
                          table["action"].to_pylist()):
        rows.append((u, i, t // 1000, a, EVENTS[0]))
    with open(SAMPLES / "events" / EVENTS[1], newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            rows.append((r["user_id"], r["item_id"], int(r["timestamp"]), r["action"], EVENTS[1]))
    with open(SAMPLES / "events" / EVENTS[2], encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            when = int(dt.datetime.fromisoformat(r["timestamp"]).timestamp())
            rows.append((r["user_id"], r["item_id"], when, r["action"], EVENTS[2]))
    return rows


def _sessions(events) -> list[tuple[int, list[str], int]]:
    """(start, items, duration) per session: gap rule, repeats collapsed, length >= 2."""
    by_user = defaultdict(list)
    for user, item, t, _, _ in events:
        by_user[user].append((t, item))
    out = []
    for rows in by_user.values():
        rows.sort()
        groups = [[rows[0]]]
        for prev, cur in zip(rows, rows[1:]):
            if cur[0] - prev[0] > GAP:
                groups.append([])
            groups[-1].append(cur)
        for g in groups:
            items = [g[0][1]] + [b[1] for a, b in zip(g, g[1:]) if b[1] != a[1]]
            if len(items) >= 2:
                out.append((g[0][0], items, g[-1][0] - g[0][0]))
    return sorted(out, key=lambda s: s[0])


def test_regenerates_byte_identical(tmp_path):
    assert _load_script().main(["--output", str(tmp_path)]) == 0
    committed, fresh = _data_files(SAMPLES), _data_files(tmp_path)
    assert sorted(committed) == sorted(fresh)
    for name, path in committed.items():
        old, new = path.read_bytes(), fresh[name].read_bytes()
        if name.endswith(".parquet"):
            writer = pq.ParquetFile(io.BytesIO(old)).metadata.created_by
            if writer != pq.ParquetFile(io.BytesIO(new)).metadata.created_by:
                # Another pyarrow writes other bytes for the same table; compare the data instead.
                assert pq.read_table(io.BytesIO(old)).equals(pq.read_table(io.BytesIO(new)))
                continue
        assert old == new, f"{name} differs from a fresh run of make_samples.py"


def test_size_well_under_budget():
    total = sum(p.stat().st_size for p in _data_files(SAMPLES).values())
    assert total < 1_200_000, f"data_samples holds {total:,} bytes"


def test_formats_and_columns(events):
    table = pq.read_table(SAMPLES / "events" / EVENTS[0])
    assert table.schema.names == ["user_id", "item_id", "timestamp", "action"]
    assert table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("user_id").type == pa.string()
    lines = (SAMPLES / "events" / EVENTS[1]).read_text().splitlines()
    assert lines[0] == "user_id,item_id,timestamp,action"
    assert all(line.split(",")[2].isdigit() for line in lines[1:])
    offsets = Counter()
    for line in (SAMPLES / "events" / EVENTS[2]).read_text().splitlines():
        record = json.loads(line)
        assert all(isinstance(record[k], str) for k in ("user_id", "item_id", "timestamp"))
        offsets[record["timestamp"][-6:]] += 1
    assert offsets["+00:00"] > 0 and len(offsets) >= 3, offsets
    # The split is by user: each user's events live in one file.
    files_of = defaultdict(set)
    for user, _, _, _, name in events:
        files_of[user].add(name)
    assert all(len(names) == 1 for names in files_of.values())
    assert {n for names in files_of.values() for n in names} == set(EVENTS)
    assert 20_000 <= len(events) <= 40_000


def test_catalog_covers_every_item(events):
    with open(SAMPLES / "catalog.csv", newline="", encoding="utf-8") as f:
        catalog = list(csv.DictReader(f))
    assert list(catalog[0]) == ["item_id", "title", "category", "brand", "tags", "price"]
    ids = [row["item_id"] for row in catalog]
    assert len(ids) == len(set(ids))
    assert {item for _, item, _, _, _ in events} <= set(ids)
    assert all(row["title"].strip() and row["category"] for row in catalog)
    assert len({row["category"] for row in catalog}) >= 6
    assert 500 <= len({item for _, item, _, _, _ in events}) <= 3000


def test_planted_structure(events):
    times = [t for _, _, t, _, _ in events]
    assert max(times) - min(times) >= 5 * 7 * 86400  # weeks, so a time split means something
    actions = Counter(a for _, _, _, a, _ in events)
    assert len(actions) >= 4 and actions.most_common(1)[0][0] == "view"
    sessions = _sessions(events)
    assert len(sessions) >= 3000
    # Some sessions last longer than the gap although no gap inside them exceeds it.
    assert sum(duration > GAP for _, _, duration in sessions) >= 50
    counts = Counter(item for _, items, _ in sessions for item in items)
    ranked = sorted(counts.values(), reverse=True)
    assert ranked[0] >= 10 * ranked[len(ranked) // 2]  # a head and a long tail
    with open(SAMPLES / "catalog.csv", newline="", encoding="utf-8") as f:
        category = {row["item_id"]: row["category"] for row in csv.DictReader(f)}
    pairs = [(a, b) for _, items, _ in sessions for a, b in zip(items, items[1:])]
    same = sum(category[a] == category[b] for a, b in pairs) / len(pairs)
    assert same > 0.8, f"only {same:.0%} of consecutive items share a category"


def test_test_pairs_are_mostly_unseen_in_training(events):
    """The mechanism that lets embeddings beat co-occurrence: sparse pairs over a smooth map.

    With the latest 20% of sessions held out, a large share of next-item pairs (a, b) never
    appeared within 5 positions in training, so raw co-occurrence has no evidence for them.
    """
    sessions = [items for _, items, _ in _sessions(events)]
    cut = len(sessions) - round(0.2 * len(sessions))
    seen = set()
    for items in sessions[:cut]:
        for i, a in enumerate(items):
            seen.update((a, b) for b in items[max(0, i - 5): i + 6])
    pairs = [(a, b) for items in sessions[cut:] for a, b in zip(items, items[1:])]
    unseen = sum(pair not in seen for pair in pairs) / len(pairs)
    assert 0.25 <= unseen <= 0.6, unseen


def _csv_reason(raw: bytes) -> str | None:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "bad_encoding"
    fields = line.split(",")
    if len(fields) < 4:
        return "short_row"
    user, item, time = (f.strip() for f in fields[:3])
    if not user:
        return "missing_user"
    if not item:
        return "missing_item"
    if not time:
        return "missing_time"
    if not time.lstrip("-").isdigit():
        return "bad_time"
    return None if VALID_US[0] < int(time) < VALID_US[1] else "time_out_of_range"


def _jsonl_reason(raw: bytes) -> str | None:
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "bad_encoding"
    except json.JSONDecodeError:
        return "bad_json"
    if not isinstance(record, dict):
        return "bad_json"
    for key in ("user_id", "item_id"):
        value = record.get(key)
        if isinstance(value, bool) or not isinstance(value, (str, int, type(None))):
            return "bad_type"
        if value is None or not str(value).strip():
            return "missing_user" if key == "user_id" else "missing_item"
    time = record.get("timestamp")
    if time is None or time == "":
        return "missing_time"
    try:
        seconds = dt.datetime.fromisoformat(time).timestamp()
    except ValueError:
        return "bad_time"
    return None if VALID_US[0] < seconds < VALID_US[1] else "time_out_of_range"


@pytest.mark.parametrize("name", ["bad_events.csv", "bad_events.jsonl"])
def test_bad_files_match_expected(name):
    raw = (SAMPLES / "bad" / name).read_bytes()
    assert raw.endswith(b"\n") and b"\n\n" not in raw  # no blank lines: every line is a record
    lines = raw.split(b"\n")[:-1]
    if name.endswith(".csv"):
        assert lines[0] == b"user_id,item_id,timestamp,action"
        reasons = [_csv_reason(line) for line in lines[1:]]
    else:
        reasons = [_jsonl_reason(line) for line in lines]
    rejected = Counter(r for r in reasons if r is not None)
    expected = json.loads((SAMPLES / "bad" / "expected.json").read_text())[name]
    assert expected == {"read": len(reasons), "valid": reasons.count(None),
                        "rejected": dict(rejected)}
    assert expected["valid"] >= 2 and all(n >= 1 for n in expected["rejected"].values())
    kinds = {"missing_user", "missing_item", "missing_time", "bad_time", "time_out_of_range",
             "bad_encoding"}
    kinds |= {"short_row"} if name.endswith(".csv") else {"bad_json", "bad_type"}
    assert set(rejected) == kinds
