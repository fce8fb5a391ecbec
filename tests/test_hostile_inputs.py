"""Hostile inputs and damaged artifacts: every case is a dead-letter row with its reason (and
``read == valid + sum(rejected)``) or one clear line with exit status 2 -- never a traceback, a
crash, a silent short read, a wrong answer or a deleted input."""

from __future__ import annotations

import bz2
import decimal
import gzip
import json
import logging
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.io.base import InputFile
from pipeline.io.read import Split, check_columns, read_split
from pipeline.options import SessionizeConfig
from pipeline.sinks import merge_counts
from pipeline.validate import MAX_FIELD_BYTES, validate_batch
from recommender import RelatedItems
from recommender.cli import main as cli
from recommender.core.artifacts import (
    OUTPUT_MARKER,
    prepare_output_dir,
    remove_stale_temp,
    write_manifest,
)
from recommender.core.errors import ArtifactError, ConfigError
from recommender.core.integrity import describe_files
from recommender.core.sessions import iter_sessions
from recommender.index.build import IndexConfig, build_index
from recommender.train import Model
from tests.factories import write_model_dir, write_sessions_dir

T0 = 1_700_000_000


def config(**kw) -> SessionizeConfig:
    return SessionizeConfig(inputs=("mem",), output="unused", **kw)


def dead_letter(path, fmt="csv", cfg=None, delimiter=","):
    """{reason: [lines]}, valid (user, item) rows, counts -- after checking the invariant."""
    cfg = cfg or config()
    file = InputFile(0, str(path), fmt, delimiter)
    spec = {"user": cfg.user_column, "item": cfg.item_column, "time": cfg.time_column}
    reasons, rows, counts = {}, [], []
    for raw in read_split(Split(file, (0,) if fmt == "parquet" else None), spec, cfg):
        events, rejects, c = validate_batch(raw, cfg)
        for line, text in rejects:
            entry = json.loads(text)  # every dead-letter line is valid JSON
            reasons.setdefault(entry["reason"], []).append(line)
        rows += list(zip(events["user"].to_pylist(), events["item"].to_pylist()))
        counts.append(c)
    total = merge_counts(counts)
    assert total["read"] == total["valid"] + sum(total["rejected"].values())
    assert total["valid"] == len(rows)
    return reasons, rows, total


def csv_rows(n):
    return [f"u{i % 50},item{i},{T0 + i}" for i in range(n)]


# --- truncated and damaged compressed inputs ---------------------------------------------------


@pytest.mark.parametrize("opener,suffix", [(gzip.compress, ".csv.gz"), (bz2.compress, ".csv.bz2")])
def test_truncated_compressed_csv_is_a_rejected_record_not_a_silent_short_read(
        tmp_path, opener, suffix):
    rows = csv_rows(5000)
    data = opener(("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n").encode())
    path = tmp_path / f"log{suffix}"
    path.write_bytes(data[: len(data) // 2])
    reasons, got, counts = dead_letter(path)
    assert list(reasons) == ["truncated_file"] and len(reasons["truncated_file"]) == 1
    assert len(got) < 5000  # bz2 loses its whole (900 kB) block, gzip only the cut-off tail
    assert len(got) > 0 or suffix.endswith(".bz2")
    expected = {(r.split(",")[0], r.split(",")[1]) for r in rows}
    assert set(got) <= expected  # no cut-off last line slipped through as a shorter id
    assert reasons["truncated_file"][0] == (len(got) + 2 if got else 1)  # after the last line


def test_truncated_jsonl_gz_and_flipped_gzip_body(tmp_path):
    lines = [json.dumps({"user_id": f"u{i}", "item_id": f"i{i}", "timestamp": T0 + i})
             for i in range(3000)]
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    reasons, got, _ = dead_letter(cut, "jsonl")
    assert list(reasons) == ["truncated_file"] and 0 < len(got) < 3000
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    bad = tmp_path / "flipped.jsonl.gz"
    bad.write_bytes(bytes(flipped))
    reasons, got, _ = dead_letter(bad, "jsonl")  # invalid data or CRC mismatch: never silent
    assert "truncated_file" in reasons and len(got) < 3000


def test_not_gzip_at_all_is_one_rejected_record(tmp_path):
    path = tmp_path / "fake.csv.gz"
    path.write_bytes(b"user_id,item_id,timestamp\nu,i,1700000000\n")
    reasons, got, counts = dead_letter(path)
    assert reasons == {"truncated_file": [1]} and got == [] and counts["read"] == 1


# --- one hostile value is one dead-letter row --------------------------------------------------


def write_parquet(tmp_path, name, **columns):
    path = tmp_path / name
    pq.write_table(pa.table(columns), path)
    return path


def test_parquet_times_that_break_python_conversion_are_dead_lettered(tmp_path):
    path = write_parquet(
        tmp_path, "ns.parquet", user_id=["u1", "u2", "u3", "u4"], item_id=["a", "b", "c", "d"],
        timestamp=pa.array([T0 * 10**9 + 123, 5, None, T0 * 10**9 + 999], pa.timestamp("ns")))
    reasons, got, _ = dead_letter(path, "parquet")
    assert reasons == {"time_out_of_range": [2], "missing_time": [3]}
    assert got == [("u1", "a"), ("u4", "d")]
    path = write_parquet(tmp_path, "s.parquet", user_id=["u1", "u2"], item_id=["a", "b"],
                         timestamp=pa.array([T0, 10**15], pa.timestamp("s")))
    assert dead_letter(path, "parquet")[0] == {"time_out_of_range": [2]}


def test_invalid_utf8_in_parquet_string_columns(tmp_path):
    bad = pa.array([b"u1", b"\xff\xfe", b"u3"], pa.binary()).view(pa.string())
    path = write_parquet(tmp_path, "u.parquet", user_id=bad, item_id=["a", "b", "c"],
                         timestamp=pa.array([T0, T0, T0], pa.int64()))
    assert dead_letter(path, "parquet")[0] == {"bad_encoding": [2]}
    path = write_parquet(tmp_path, "t.parquet", user_id=["a", "b", "c"], item_id=["a", "b", "c"],
                         timestamp=bad)
    reasons, _, _ = dead_letter(path, "parquet")
    assert reasons["bad_encoding"] == [2]


def test_json_lone_surrogate_deep_nesting_and_odd_values(tmp_path):
    path = tmp_path / "odd.jsonl"
    lines = [
        '{"user_id": "u1", "item_id": "a", "timestamp": 1700000000}',   # 1 ok
        '{"user_id": "u1", "item_id": "\\ud800x", "timestamp": 1700000001}',  # 2 surrogate
        '{"user_id": "\\udfff", "item_id": "b", "timestamp": 1700000002}',     # 3 surrogate
        "[" * 100_000 + "]" * 100_000,                                   # 4 deeper than Python
        '{"user_id": "u1", "item_id": ' + "[" * 50 + "]" * 50 + ', "timestamp": 1}',  # 5 nested
        '{"user_id": "u1", "item_id": 123456789012345678901234567890, "timestamp": 1700000003}',
        '{"user_id": "u1", "item_id": "c", "timestamp": NaN}',           # 7 NaN
        '{"user_id": "u1", "item_id": "c", "timestamp": 1e400}',         # 8 inf
        '{"user_id": "u1", "item_id": "c\\u0000\\u001b[2J", "timestamp": 1700000004}',  # 9 ok
    ]
    path.write_text("\n".join(lines) + "\n")
    reasons, got, counts = dead_letter(path, "jsonl")
    assert reasons == {"bad_encoding": [2, 3], "bad_json": [4], "bad_type": [5],
                       "bad_time": [7, 8]}
    assert ("u1", "123456789012345678901234567890") in got and counts["read"] == 9


@pytest.mark.parametrize("arrow_type", [pa.decimal128(12, 1), pa.time64("us"), pa.duration("s"),
                                        pa.bool_(), pa.list_(pa.int64())])
def test_time_column_of_a_type_holding_no_time_is_a_config_error(tmp_path, arrow_type):
    values = {"decimal128(12, 1)": [decimal.Decimal("1700000000.5")], "time64[us]": [1],
              "duration[s]": [1], "bool": [True], "list<item: int64>": [[1]]}[str(arrow_type)]
    path = write_parquet(tmp_path, "x.parquet", user_id=["u"], item_id=["i"],
                         timestamp=pa.array(values, arrow_type))
    with pytest.raises(ConfigError, match=r"time column 'timestamp' is of type"):
        check_columns(config(), [InputFile(0, str(path), "parquet")])


def test_duplicate_column_names_are_refused(tmp_path):
    csv = tmp_path / "dup.csv"
    csv.write_text("user_id,item_id,item_id,timestamp\nu,a,b,1700000000\n")
    with pytest.raises(ConfigError, match=r"more than one column named 'item_id' \(columns 2, 3\)"):
        check_columns(config(), [InputFile(0, str(csv), "csv")])
    table = pa.Table.from_arrays([pa.array(["u"]), pa.array(["i"]), pa.array([T0]),
                                  pa.array([T0])], names=["user_id", "item_id", "timestamp",
                                                          "timestamp"])
    pq.write_table(table, tmp_path / "dup.parquet")
    with pytest.raises(ConfigError, match="more than one column named 'timestamp'"):
        check_columns(config(), [InputFile(0, str(tmp_path / "dup.parquet"), "parquet")])


# --- CSV: unterminated quotes and one field-size rule ------------------------------------------


def test_unterminated_quote_costs_one_line_not_the_rest_of_the_file(tmp_path):
    rows = csv_rows(2000)
    rows[3] = f'u1,"item3,{T0 + 3}'  # line 5: a stray quote nothing closes
    rows[1500] = f'u2,item1500",{T0 + 1500}'  # a quote inside a field is text, not a quote
    path = tmp_path / "quote.csv"
    path.write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    reasons, got, _ = dead_letter(path)
    assert reasons == {"unterminated_quote": [5]}
    assert len(got) == 1999 and ("u2", 'item1500"') in got


def test_two_stray_quotes_do_not_merge_the_rows_between_them(tmp_path):
    rows = csv_rows(20)
    rows[2] = f'u1,"item2,{T0}'         # line 4 opens a quote ...
    rows[9] = f'u1,item9",{T0}'         # ... line 11 has one too: parity closes, fields fit
    path = tmp_path / "two.csv"
    path.write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    reasons, got, _ = dead_letter(path)
    assert reasons == {"unterminated_quote": [4]}
    assert len(got) == 19  # lines 5..21 read one by one, line 11 included


def test_a_real_multi_line_quoted_field_is_still_one_row(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text(f'user_id,item_id,timestamp,note\nu1,a,{T0},"one\ntwo\nthree"\n'
                    f"u1,b,{T0 + 1},x\n")
    reasons, got, _ = dead_letter(path)
    assert reasons == {} and got == [("u1", "a"), ("u1", "b")]


@pytest.mark.parametrize("quoted_before", [False, True])
def test_field_size_rule_is_the_same_on_every_path(tmp_path, quoted_before):
    long = "x" * (MAX_FIELD_BYTES + 1)
    fits = "y" * MAX_FIELD_BYTES
    first = f'u0,"quoted",{T0}' if quoted_before else f"u0,plain,{T0}"  # python or arrow path
    path = tmp_path / "long.csv"
    path.write_text(f"user_id,item_id,timestamp,note\n{first},n\nu1,{long},{T0},n\n"
                    f"u2,{fits},{T0},n\nu3,ok,{T0},{long}\n")
    reasons, got, _ = dead_letter(path)
    assert reasons == {"field_too_long": [3]}
    assert [u for u, _ in got] == ["u0", "u2", "u3"]  # an unused long field is no problem
    jsonl = tmp_path / "long.jsonl"
    jsonl.write_text(json.dumps({"user_id": "u1", "item_id": long, "timestamp": T0}) + "\n"
                     + json.dumps({"user_id": "u2", "item_id": fits, "timestamp": T0}) + "\n")
    assert dead_letter(jsonl, "jsonl")[0] == {"field_too_long": [1]}
    parquet = write_parquet(tmp_path, "long.parquet", user_id=["u1", "u2"], item_id=[long, fits],
                            timestamp=[T0, T0])
    assert dead_letter(parquet, "parquet")[0] == {"field_too_long": [1]}


def test_kitchen_sink_csv_never_stops_the_run(tmp_path):
    path = tmp_path / "sink.csv"
    path.write_bytes(
        b"\xef\xbb\xbfuser_id,item_id,timestamp\n"
        b"u1,a,1700000000\n"
        b"u1,\x00nul,1700000001\n"
        b"u1,b\rc,1700000002\n"
        b"u\xff,d,1700000003\n"
        b"u1,e,1e999\n"
        b"u1,f,-1700000000\n"
        b"u1,g,99999999999999999999999999\n"
        b",,\n"
        b'"u1","h","1700000004"\n'
        b"u1,i,2024-02-30T00:00:00Z\n"
        b"u1,\xe2\x80\xaej,1700000005\n"
        b"u1,k,1700000006"  # no final newline
    )
    reasons, got, counts = dead_letter(path)
    assert counts["read"] == 12
    assert ("u1", "h") in got and ("u1", "k") in got


# --- the output-directory rule ------------------------------------------------------------------


def run_cli(argv, capsys):
    code = cli(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def test_user_files_are_never_emptied(tmp_path, capsys):
    sessions = write_sessions_dir(tmp_path / "S", [["a", "b", "c"], ["b", "c", "a"]] * 5)
    keep = tmp_path / "d"
    keep.mkdir()
    (keep / "report.txt").write_text("keep")
    code, err = run_cli(["train", "--sessions", str(sessions), "--output", str(keep), "--resume",
                         "--epochs", "1", "--quiet"], capsys)
    assert code == 2 and "not empty" in err and "\n" not in err
    assert (keep / "report.txt").read_text() == "keep"
    for argv in (
        ["train", "--sessions", str(sessions), "--output", str(sessions), "--overwrite"],
        ["train", "--sessions", str(sessions), "--output", str(tmp_path), "--overwrite"],
        ["train", "--sessions", str(sessions), "--output", str(sessions / "m"), "--overwrite"],
        ["sessionize", "--input", str(sessions), "--output", str(sessions), "--overwrite"],
        ["sessionize", "--input", str(sessions / "*.parquet"), "--output", str(tmp_path),
         "--overwrite"],
    ):
        code, err = run_cli(argv, capsys)
        assert code == 2 and "input" in err and "\n" not in err, (argv, err)
    assert sorted(p.name for p in sessions.iterdir()) == sorted(
        ["manifest.json", "items.parquet", "sessions-00000-of-00001.parquet"])
    assert (keep / "report.txt").exists()


def test_index_into_its_model_or_another_kind_is_refused(tmp_path, capsys):
    model = write_model_dir(tmp_path / "M", list("abcd"), np.eye(4, 3))
    sessions = write_sessions_dir(tmp_path / "S", [["a", "b"]])
    for out in (model, sessions):
        code, err = run_cli(["index", "--model", str(model), "--output", str(out), "--overwrite",
                             "--quiet"], capsys)
        assert code == 2 and "\n" not in err
    Model.load(model)  # untouched
    assert list(iter_sessions(sessions)) == [["a", "b"]]


def test_interrupted_own_output_is_replaced_and_stale_temporaries_removed(tmp_path):
    out = prepare_output_dir(tmp_path / "I", False, kind="index")
    (out / "items.ann").write_bytes(b"half")  # a killed build: marker, no manifest
    dead = out / ".neighbors.npy.999999999.abcd.tmp"
    dead.write_bytes(b"x")
    live = out / f".scores.npy.{os.getpid()}.abcd.tmp"
    live.write_bytes(b"x")
    assert remove_stale_temp(out) == 1 and not dead.exists() and live.exists()
    prepare_output_dir(out, False, kind="index")  # ours and unfinished: no --overwrite needed
    assert [p.name for p in out.iterdir()] == [OUTPUT_MARKER]
    write_manifest(out, {"format_version": 1, "kind": "index"}, [])
    with pytest.raises(ArtifactError, match="pass --overwrite"):
        prepare_output_dir(out, False, kind="index")  # complete: only with --overwrite
    with pytest.raises(ArtifactError, match="holds a pin2vec index"):
        prepare_output_dir(out, True, kind="model")


def test_resume_cleans_a_killed_final_write_and_refuses_a_foreign_checkpoint(tmp_path, capsys):
    sessions = write_sessions_dir(tmp_path / "S", [["a", "b", "c"], ["c", "b", "a"]] * 10)
    out = tmp_path / "m"
    argv = ["train", "--sessions", str(sessions), "--output", str(out), "--epochs", "2",
            "--dim", "4", "--quiet"]
    assert run_cli(argv, capsys)[0] == 0
    shutil.copytree(out, tmp_path / "done")
    (out / "manifest.json").unlink()  # as if killed during the final write ...
    (out / OUTPUT_MARKER).write_text('{"kind": "model"}')
    (out / "checkpoint").mkdir()
    (out / ".vectors.npy.999999999.x1.tmp").write_bytes(b"partial")
    (out / "checkpoint" / "state.json").write_text('{"kind": "someone else"}')
    code, err = run_cli(argv + ["--resume"], capsys)
    assert code == 2 and "checkpoint" in err
    shutil.rmtree(out / "checkpoint")
    code, err = run_cli(argv + ["--resume"], capsys)  # no checkpoint: our unfinished dir
    assert code == 0, err
    assert not list(out.glob(".*.tmp"))
    np.testing.assert_array_equal(Model.load(out).vectors, Model.load(tmp_path / "done").vectors)


# --- damaged and swapped artifacts ---------------------------------------------------------------


@pytest.fixture(scope="module")
def two_indexes(tmp_path_factory):
    base = tmp_path_factory.mktemp("indexes")
    rng = np.random.default_rng(0)
    ids = [f"i{j}" for j in range(40)]
    out = []
    for name in ("A", "B"):
        model = write_model_dir(base / f"model{name}", ids, rng.normal(size=(40, 8)))
        build_index(model, base / f"index{name}", IndexConfig(k=5, progress=False, backend="annoy",
                                                              recall_sample=0))
        out.append(base / f"index{name}")
    return out


@pytest.fixture
def index_copy(two_indexes, tmp_path):
    return shutil.copytree(two_indexes[0], tmp_path / "index")


def flip(path, offset=None, count=16):
    data = bytearray(path.read_bytes())
    start = len(data) // 2 if offset is None else offset
    for i in range(start, min(start + count, len(data))):
        data[i] ^= 0xA5
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["items.ann", "neighbors.npy", "scores.npy", "vectors.npy",
                                  "items.parquet", "related.parquet"])
def test_flipped_bytes_are_an_error_naming_the_file(index_copy, name):
    flip(index_copy / name)
    with pytest.raises(ArtifactError, match=rf"{name} does not match the digest"):
        RelatedItems.load(index_copy)


@pytest.mark.parametrize("name", ["neighbors.npy", "scores.npy", "vectors.npy", "items.ann"])
def test_a_file_swapped_from_another_index_is_an_error(two_indexes, index_copy, name):
    shutil.copy(two_indexes[1] / name, index_copy / name)
    with pytest.raises(ArtifactError, match=rf"{name} (does not match|is .* bytes but)"):
        RelatedItems.load(index_copy)


def test_session_query_on_a_damaged_annoy_file_is_exit_2_not_a_segfault(index_copy, capsys):
    flip(index_copy / "items.ann", offset=64, count=4096)
    code, err = run_cli(["related", "--index", str(index_copy), "--session", "i1", "i2"], capsys)
    assert code == 2 and "items.ann" in err and "\n" not in err


def rewrite(index, name, array):
    """Replace ``name`` by ``array`` and re-record its checksum, as a careless writer would."""
    np.save(index / name, array)
    manifest = json.loads((index / "manifest.json").read_text())
    manifest["checksums"].update(describe_files(index, [name]))
    (index / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("row,fix,match", [
    (3, lambda r: np.r_[-1, r[1:]], "padding"),
    (3, lambda r: np.r_[r[:-1], 40], "outside"),
    (3, lambda r: np.r_[r[:-1], -7], "outside"),
    (3, lambda r: np.r_[r[:-1], 3], "its own item"),
])
def test_bad_neighbour_ids_are_caught_at_load(index_copy, row, fix, match):
    nbrs = np.load(index_copy / "neighbors.npy")
    nbrs[row] = fix(nbrs[row])
    rewrite(index_copy, "neighbors.npy", nbrs)
    with pytest.raises(ArtifactError, match=match):
        RelatedItems.load(index_copy)


@pytest.mark.parametrize("edit,match", [
    ({"metric": "bogus"}, "metric"),
    ({"scoring": "bogus"}, "scoring"),
    ({"search_k": 1e15}, "search_k"),
    ({"search_k": 10**15}, "search_k"),
    ({"k": "5"}, "k is '5'"),
    ({"dim": -1}, "dim"),
    ({"counts": None}, "counts.items"),
    ({"checksums": None}, "records no checksums"),
    ({"checksums": {"items.parquet": {"bytes": "x", "digest": "xxh3_128:0"}}}, "bytes is 'x'"),
    ({"checksums": {"items.parquet": {"bytes": 1, "digest": 7}}}, "digest is 7"),
])
def test_hand_edited_manifest_fields_are_errors(index_copy, edit, match):
    manifest = json.loads((index_copy / "manifest.json").read_text())
    if "checksums" in edit and edit["checksums"]:
        edit = {"checksums": {**manifest["checksums"], **edit["checksums"]}}
    manifest.update(edit)
    (index_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=match):
        RelatedItems.load(index_copy)


def test_zero_byte_and_garbled_npy_in_a_model(tmp_path):
    model = write_model_dir(tmp_path / "M", list("abc"), np.eye(3))
    (model / "vectors.npy").write_bytes(b"")
    with pytest.raises(ArtifactError, match="vectors.npy is 0 bytes"):
        Model.load(model)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["checksums"].update(describe_files(model, ["vectors.npy"]))  # edited to match
    (model / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="cannot read model"):
        Model.load(model)
    with pytest.raises(ArtifactError, match="MODEL dir"):
        build_index(model, tmp_path / "I", IndexConfig(progress=False))
    (model / "vectors.npy").write_bytes(b"\x93NUMPY\x01\x00garbage" * 8)
    manifest["checksums"].update(describe_files(model, ["vectors.npy"]))
    (model / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="cannot read model"):
        Model.load(model)


def test_damaged_or_foreign_session_shards_stop_training(tmp_path, capsys):
    sessions = write_sessions_dir(tmp_path / "S", [["a", "b", "c"]] * 4, shards=2)
    shard = sorted(sessions.glob("sessions-*.parquet"))[0]
    original = shard.read_bytes()
    flip(shard)
    argv = ["train", "--sessions", str(sessions), "--output", str(tmp_path / "m"), "--quiet"]
    code, err = run_cli(argv, capsys)
    assert code == 2 and shard.name in err
    shard.write_bytes(original)
    shutil.copy(shard, sessions / "sessions-00009-of-00009.parquet")
    code, err = run_cli(argv, capsys)
    assert code == 2 and "does not list" in err


# --- terminal output ---------------------------------------------------------------------------


def test_control_characters_in_ids_are_escaped_on_the_terminal(tmp_path, capsys):
    ids = ["plain", "red\x1b[31mX", "osc\x1b]0;pwned\x07", "rtl\u202eevil", "nl\nid", "back\\x1b"]
    model = write_model_dir(tmp_path / "M", ids, np.random.default_rng(1).normal(size=(6, 4)))
    build_index(model, tmp_path / "I", IndexConfig(k=5, progress=False, recall_sample=0))
    assert cli(["related", "--index", str(tmp_path / "I"), "plain", "--k", "5"]) == 0
    out = capsys.readouterr().out
    assert not any(c in out for c in "\x1b\x07\u202e") and len(out.splitlines()) == 6
    assert "red\\x1b[31mX" in out and "rtl\\u202eevil" in out and "back\\\\x1b" in out
    assert cli(["related", "--index", str(tmp_path / "I"), "nope\x1b[2J"]) == 2
    assert "\x1b" not in capsys.readouterr().err


# --- --window 0 stays linear --------------------------------------------------------------------


def test_window_zero_caps_the_context_of_long_sessions(monkeypatch, caplog):
    from recommender.train import corpus as corpus_module
    from recommender.train.corpus import BatchMaker, Corpus
    from recommender.train.trainer import TrainConfig

    monkeypatch.setattr(corpus_module, "WHOLE_SESSION_LIMIT", 10)
    config = TrainConfig(sample=0, window=0, progress=False)
    session = [f"i{j}" for j in range(100)]
    corpus = Corpus([session, session[:5]], config.min_count)
    maker = BatchMaker(config, corpus.vocab, 4, 256, 4, 2)
    pairs = 0
    with caplog.at_level(logging.WARNING):
        for tokens, lengths in corpus.chunks():
            for b in maker.batches(tokens, lengths, np.random.default_rng(0), lambda f: 0.01):
                pairs += b.examples
    # 100 items, 10 either side: 2 * (0+1+...+9 + 10*90); the 5-item session whole: 5 * 4
    assert pairs == 2 * (45 + 900) + 20
    assert "longer than 11 items" in caplog.text


def test_run_refuses_a_stage_directory_holding_an_input(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "model").mkdir(parents=True)
    log = out / "model" / "events.csv"
    log.write_text(f"user_id,item_id,timestamp\nu,a,{T0}\nu,b,{T0 + 1}\n")
    code, err = run_cli(["run", "--input", str(log), "--output", str(out), "--overwrite"], capsys)
    assert code == 2 and "input" in err and log.exists()


def test_randomly_mangled_csv_and_jsonl_never_crash_or_lose_records(tmp_path):
    import random

    rnd = random.Random(13)
    header = b"user_id,item_id,timestamp\n"
    body = "".join(f"u{i % 7},i{i},{T0 + i}\n" for i in range(200)).encode()
    lines = [json.dumps({"user_id": f"u{i}", "item_id": f"i{i}", "timestamp": T0 + i})
             for i in range(60)]
    for trial in range(40):
        b = bytearray(body)
        for _ in range(rnd.randint(1, 25)):
            pos, ch = rnd.randrange(len(b)), rnd.choice(b'"\n\r,\x00\xff\\ \t\xe2\x80\xae')
            if rnd.random() < 0.5:
                b[pos] = ch
            else:
                b.insert(pos, ch)
        path = tmp_path / f"{trial}.csv"
        path.write_bytes(header + bytes(b))
        dead_letter(path)  # asserts read == valid + sum(rejected); raises on any crash
        j = bytearray("\n".join(lines).encode())
        for _ in range(rnd.randint(1, 15)):
            j[rnd.randrange(len(j))] = rnd.choice(b'"{}[]\\u0d8\xff\n:,')
        path = tmp_path / f"{trial}.jsonl"
        path.write_bytes(bytes(j))
        dead_letter(path, "jsonl")


def test_overwrite_never_empties_the_working_directory(tmp_path, monkeypatch):
    work = tmp_path / "work"
    (work / "src").mkdir(parents=True)
    (work / "src" / "code.py").write_text("x")
    monkeypatch.chdir(work)
    for out in (".", str(tmp_path)):
        with pytest.raises(ArtifactError, match="refusing to empty"):
            prepare_output_dir(out, True, kind="model")
    assert (work / "src" / "code.py").exists()


def test_json_key_given_twice_is_refused_not_resolved_silently(tmp_path):
    path = tmp_path / "dup.jsonl"
    path.write_text('{"user_id": "u1", "item_id": "a", "timestamp": 1700000000}\n'
                    '{"user_id": "u1", "item_id": "a", "item_id": "b", "timestamp": 1700000001}\n'
                    '{"user_id": "u1", "item_id": "c", "note": {"x": 1}, '
                    '"timestamp": 1700000002}\n')
    reasons, got, _ = dead_letter(path, "jsonl")
    assert reasons == {"bad_json": [2]} and got == [("u1", "a"), ("u1", "c")]


def test_a_directory_another_live_run_is_writing_is_left_alone(tmp_path):
    import subprocess
    import sys

    out = prepare_output_dir(tmp_path / "I", False, kind="index")
    (out / "items.ann").write_bytes(b"being written")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (out / OUTPUT_MARKER).write_text(json.dumps({"kind": "index", "pid": sleeper.pid}))
        with pytest.raises(ArtifactError, match=f"another pin2vec process \\(pid {sleeper.pid}"):
            prepare_output_dir(out, False, kind="index")
        assert (out / "items.ann").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    prepare_output_dir(out, False, kind="index")  # its writer is gone: ours to replace
    assert not (out / "items.ann").exists()


def test_hostile_option_values_are_one_line_errors(tmp_path, capsys, two_indexes):
    log = tmp_path / "log.csv"
    log.write_text(f"user_id,item_id,timestamp\nu,a,{T0}\n")
    for extra in (["--session-gap", "inf"], ["--session-gap", "1e308"], ["--delimiter", '"'],
                  ["--delimiter", "\n"]):
        code, err = run_cli(["sessionize", "--input", str(log), "--output", str(tmp_path / "o"),
                             *extra], capsys)
        assert code == 2 and "\n" not in err and err.startswith("pin2vec sessionize: error:"), err
    model = write_model_dir(tmp_path / "M", list("abcd"), np.eye(4, 3))
    code, err = run_cli(["index", "--model", str(model), "--output", str(tmp_path / "I"),
                         "--search-k", str(10**15)], capsys)
    assert code == 2 and "search_k" in err
    assert cli(["related", "--index", str(two_indexes[0]), "--session", "i1", "i2",
                "--k", str(10**12), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"][0]["related"]) == 38


def test_a_damaged_compressed_file_does_not_stop_the_column_check(tmp_path):
    fake = tmp_path / "fake.csv.gz"
    fake.write_bytes(b"not gzip at all\n")
    check_columns(config(), [InputFile(0, str(fake), "csv")])  # its reader rejects it instead
