"""End-to-end ``run()``: mixed formats and zones, the SESSIONS contract, errors, runner parity."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.sessions_job import main, run
from pipeline.validate import FILTER_REASONS, REJECT_REASONS
from recommender.core.errors import Pin2VecError
from recommender.core.sessions import read_item_counts, read_sessions_table

SAMPLES = Path(__file__).resolve().parent.parent / "data_samples"
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z


def write_mixed(root: Path) -> list[str]:
    """One user's visit spread over three files and three time notations (+ a second user)."""
    paris = dt.timezone(dt.timedelta(hours=1))
    pq.write_table(pa.table({
        "user_id": pa.array([7, 7, 8], pa.int64()),
        "item_id": pa.array([42, 43, 42], pa.int64()),
        "timestamp": pa.array([dt.datetime(2023, 11, 14, 23, 13, 20, tzinfo=paris),   # T0
                               dt.datetime(2023, 11, 14, 23, 43, 20, tzinfo=paris),   # T0+1800
                               dt.datetime(2023, 11, 14, 23, 13, 20, tzinfo=paris)],
                              pa.timestamp("ns", tz="Europe/Paris")),
        "action": ["click", "save", "click"],
    }), root / "a.parquet")
    (root / "b.csv").write_text(
        "user_id,item_id,timestamp,action\n"
        f"7,44,{T0 + 3600},click\n"        # 30 min after 43: same session
        f"7,45,{(T0 + 5401) * 1000},click\n"  # ms; gap 1801 s: new session
        f"8,43,{T0 + 60},view\n"
        "8,,1,click\n"                     # missing_item
    )
    (root / "c.jsonl").write_text(
        '{"user_id": "7", "item_id": "46", "timestamp": "2023-11-14T18:43:22-05:00"}\n'  # T0+5402
        '{"user_id": 8, "item_id": 44, "timestamp": "2023-11-14T22:14:20Z"}\n'
        "oops\n"
    )
    return [str(root / "a.parquet"), str(root / "*.csv"), str(root / "c.jsonl")]


def sessions_of(out) -> list[tuple]:
    table = read_sessions_table(out, ["session_id", "user_id", "start", "items"])
    return sorted((r["user_id"], tuple(r["items"]), int(r["start"].timestamp()))
                  for r in table.to_pylist())


def check_contract(out: Path, manifest: dict) -> None:
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["format_version"] == 1 and manifest["kind"] == "sessions"
    c = manifest["counts"]
    assert c["read"] == c["valid"] + sum(c["rejected"].values())
    assert c["valid"] == c["tokens"] + sum(c["filtered"].values())
    assert set(c["rejected"]) == set(REJECT_REASONS) and set(c["filtered"]) == set(FILTER_REASONS)
    table = read_sessions_table(out, ["session_id", "user_id", "start", "items"])
    assert c["sessions"] == table.num_rows
    items = read_item_counts(out)
    assert items.schema.names == ["item_id", "engagements", "sessions"]
    assert c["items"] == items.num_rows and c["tokens"] == sum(items["engagements"].to_pylist())
    schema = pq.read_schema(next(out.glob("sessions-*.parquet")))
    assert schema.field("start").type == pa.timestamp("us", tz="UTC")
    assert schema.field("items").type == pa.list_(pa.string())
    assert schema.field("length").type == pa.int32()
    for path in out.glob("rejected-*.jsonl"):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            assert entry["reason"] in REJECT_REASONS and ":" in entry["source"]


def test_mixed_formats_and_zones_end_to_end(tmp_path, capsys):
    inputs = write_mixed(tmp_path)
    out = tmp_path / "out"
    argv = [a for i in inputs for a in ("--input", i)] + ["--output", str(out)]
    assert main(argv) == 0
    assert "sessions" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    check_contract(out, manifest)
    assert sessions_of(out) == [
        ("7", ("42", "43", "44"), T0),
        ("7", ("45", "46"), T0 + 5401),
        ("8", ("42", "43", "44"), T0),
    ]
    c = manifest["counts"]
    assert (c["read"], c["valid"], c["rejected"]["missing_item"], c["rejected"]["bad_json"]) == (
        10, 8, 1, 1)
    items = {r["item_id"]: (r["engagements"], r["sessions"])
             for r in read_item_counts(out).to_pylist()}
    assert items["42"] == (2, 2) and items["46"] == (1, 1)
    rejected = sorted(line for p in out.glob("rejected-*.jsonl") for line in p.read_text().split(
        "\n") if line)
    sources = sorted(json.loads(x)["source"].rsplit("/", 1)[1] for x in rejected)
    assert sources == ["b.csv:5", "c.jsonl:3"]


def test_headerless_tsv_actions_and_session_column(tmp_path):
    (tmp_path / "log.tsv").write_text(
        f"1\t100\t{T0}\tv1\tclick\n1\t101\t{T0 + 1}\tv1\tclick\n1\t102\t{T0 + 2}\tv2\tclick\n"
        f"1\t103\t{T0 + 3}\tv2\tclick\n1\t104\t{T0 + 4}\tv2\thover\n"
    )
    out = tmp_path / "out"
    manifest = run(["--input", str(tmp_path / "log.tsv"), "--output", str(out), "--no-header",
                    "--columns", "user,item,ts,visit,kind", "--user-column", "user",
                    "--item-column", "item", "--time-column", "ts", "--session-column", "visit",
                    "--action-column", "kind", "--actions", "click", "--quiet"])
    assert sessions_of(out) == [("1", ("100", "101"), T0), ("1", ("102", "103"), T0 + 2)]
    assert manifest["counts"]["filtered"]["action_not_allowed"] == 1
    assert manifest["options"]["session_column"] == "visit"


def test_user_errors_are_one_line_before_the_pipeline(tmp_path):
    inputs = write_mixed(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(Pin2VecError, match="matches no files"):
        run(["--input", str(tmp_path / "nope*.csv"), "--output", str(out)])
    with pytest.raises(Pin2VecError, match=r"no column 'uid'.*user_id, item_id, timestamp"):
        run(["--input", inputs[1], "--output", str(out), "--user-column", "uid"])
    with pytest.raises(Pin2VecError, match="--session-gap"):
        run(["--input", inputs[1], "--output", str(out), "--session-gap", "0"])
    with pytest.raises(Pin2VecError, match="--min-session-length"):
        run(["--input", inputs[1], "--output", str(out), "--min-session-length", "x"])
    with pytest.raises(Pin2VecError, match="unknown option --sesion-gap"):
        run(["--input", inputs[1], "--output", str(out), "--sesion-gap", "5"])
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(Pin2VecError, match="not empty; pass --overwrite"):
        run(["--input", inputs[1], "--output", str(out)])
    assert (out / "keep.txt").exists()
    manifest = run(["--input", inputs[1], "--output", str(out), "--overwrite", "--quiet"])
    assert not (out / "keep.txt").exists() and manifest["counts"]["read"] == 4


def test_in_memory_and_multi_processing_give_identical_output(tmp_path):
    inputs = write_mixed(tmp_path)
    base = [a for i in inputs for a in ("--input", i)] + ["--quiet", "--buckets", "4"]
    one = run(base + ["--output", str(tmp_path / "one")])
    two = run(base + ["--output", str(tmp_path / "two"), "--direct_num_workers", "2",
                      "--direct_running_mode", "multi_processing"])
    assert one["counts"] == two["counts"]
    for name in sorted(p.name for p in (tmp_path / "one").iterdir()):
        if name != "manifest.json":
            assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == sorted(
        p.name for p in (tmp_path / "two").iterdir())


@pytest.mark.skipif(not (SAMPLES / "events").is_dir(), reason="data_samples/ not generated")
def test_data_samples_end_to_end(tmp_path):
    out = tmp_path / "sessions"
    inputs = ["--input", str(SAMPLES / "events"), "--input", str(SAMPLES / "bad" / "*.csv"),
              "--input", str(SAMPLES / "bad" / "*.jsonl")]
    manifest = run(inputs + ["--output", str(out), "--quiet"])
    check_contract(out, manifest)
    c = manifest["counts"]
    assert c["sessions"] > 0 and c["items"] > 0 and sum(c["rejected"].values()) > 0
    assert len(manifest["inputs"]) == 5


def test_a_file_failing_inside_the_pipeline_is_one_clear_error(tmp_path, monkeypatch):
    import pipeline.io.read

    inputs = write_mixed(tmp_path)

    def broken(split, spec, config):
        raise OSError("corrupt footer")

    monkeypatch.setattr(pipeline.io.read, "read_split", broken)
    with pytest.raises(Pin2VecError, match=r"^cannot read .*a\.parquet: corrupt footer$"):
        run(["--input", inputs[0], "--output", str(tmp_path / "out"), "--quiet"])
    assert not (tmp_path / "out" / "manifest.json").exists()
