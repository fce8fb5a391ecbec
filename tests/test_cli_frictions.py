"""Rough edges a new user hit: `pin2vec split`, `run --help` listing sessionize's flags,
`--examples` ids, evaluation targets `next | window N`, progress output off a terminal."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pytest
from factories import write_sessions_dir

from recommender.cli.main import main as cli
from recommender.core.errors import ConfigError
from recommender.evaluate.scorecard import (
    make_split,
    parse_target,
    score_table,
    target_name,
    target_pairs,
)


def test_split_command_writes_the_time_split(tmp_path, capsys):
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    sessions = [[f"i{n}", f"i{n + 1}"] for n in range(10)]
    starts = [t0 + dt.timedelta(hours=h) for h in (9, 0, 1, 2, 3, 4, 5, 6, 7, 8)]
    write_sessions_dir(tmp_path / "s", sessions, starts=starts)
    assert cli(["split", "--sessions", str(tmp_path / "s"), "--test-fraction", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "8 train sessions" in out and "2 test sessions" in out and "2024-01-01T08:00" in out
    test = json.loads((tmp_path / "s-test" / "manifest.json").read_text())
    assert test["counts"]["sessions"] == 2 and test["split"]["part"] == "test"
    from recommender.core.sessions import iter_sessions

    assert sorted(iter_sessions(tmp_path / "s-test")) == [["i0", "i1"], ["i9", "i10"]]
    # a second split into the same dirs needs --overwrite, and says so in one line
    assert cli(["split", "--sessions", str(tmp_path / "s")]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_run_help_lists_every_flag_it_accepts(capsys):
    with pytest.raises(SystemExit):
        cli(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--session-gap", "--date-column", "--time-offset-column", "--null-values",
                 "--session-column", "--actions", "--epochs", "--target", "--examples",
                 "default: item_id"):
        assert flag in text, flag


def test_run_examples_take_a_count_or_ids():
    from recommender.cli.run import _example_items

    class Related:  # the slice of RelatedItems that --examples uses
        @staticmethod
        def popular(k):
            return [("b", 5 / 9), ("c", 3 / 9), ("a", 1 / 9)][:k]

    assert _example_items("2", Related) == ["b", "c"]
    assert _example_items("0", Related) == []
    assert _example_items("c, nope ,a", Related) == ["c", "nope", "a"]


def test_target_pairs_next_and_window():
    items = pa.array([["a", "b", "c", "d"], ["e", "f"], ["g"]], pa.list_(pa.string()))
    q, t = target_pairs(items, 1)
    assert q.to_pylist() == ["a", "b", "c", "e"] and t.to_pylist() == ["b", "c", "d", "f"]
    q, t = target_pairs(items, 2)
    assert q.to_pylist() == ["a", "b", "c", "e"]
    assert t.to_pylist() == [["b", "c"], ["c", "d"], ["d", None], ["f", None]]
    empty_q, empty_t = target_pairs(pa.array([["a"]], pa.list_(pa.string())), 3)
    assert len(empty_q) == 0 and len(empty_t) == 0
    assert parse_target(["next"]) == 1 and parse_target(["window", "5"]) == 5
    for bad in (["window"], ["window", "0"], ["prev"]):
        with pytest.raises(ConfigError, match="next' or 'window N"):
            parse_target(bad)


def test_window_target_scores_any_of_the_next_items_for_every_scorer():
    # a's list holds c (two steps ahead), not b (next): a miss for `next`, a hit at rank 1
    # for `window 2`; d has no next item, so only a, b, c are queries
    ids = pa.array(["a", "b", "c", "d"])
    table = np.array([[2, 3], [2, 0], [0, 1], [0, 1]], np.int32)
    train = pa.array([["a", "b", "c", "d"]], pa.list_(pa.string()))
    items = pa.array([["a", "b", "c", "d"]], pa.list_(pa.string()))
    nxt = score_table("r", ids, table, make_split(train, items, 1), ks=(2,))
    win = score_table("r", ids, table, make_split(train, items, 2), ks=(2,))
    assert make_split(train, items, 2).n_pairs == 3  # d has no next item
    assert nxt.hr(2) == pytest.approx(1 / 3)  # only b -> c
    assert win.hr(2) == pytest.approx(2 / 3)  # a -> c (rank 1), b -> c (rank 1); c's misses d
    assert win.metrics["mrr@2"] == pytest.approx(2 / 3)
    assert target_name(2) == "any of the next 2 items in the session"


def test_progress_is_plain_lines_off_a_terminal(tmp_path, capsys):
    from recommender.train import TrainConfig, train

    write_sessions_dir(tmp_path / "s", [["a", "b", "c"], ["b", "c", "d"]] * 5)
    train(tmp_path / "s", TrainConfig(dim=4, epochs=2, workers=1, progress=True))
    err = capsys.readouterr().err  # captured: not a terminal
    assert "\r" not in err
    assert [line.split(":")[0] for line in err.splitlines()] == ["train epoch 1/2",
                                                                  "train epoch 2/2"]
    train(tmp_path / "s", TrainConfig(dim=4, epochs=1, workers=1, progress=False))
    assert capsys.readouterr().err == ""


def test_load_split_builds_window_targets_both_ways(tmp_path):
    from recommender.evaluate.next_item import load_split
    from recommender.evaluate.splits import time_split

    src = write_sessions_dir(tmp_path / "s", [["a", "b"], ["b", "c"], ["a", "b", "c", "d"]])
    time_split(src, tmp_path / "train", tmp_path / "test", test_fraction=0.34)
    for data in (load_split(src, test_fraction=0.34, target_window=3),
                 load_split(tmp_path / "train", tmp_path / "test", target_window=3)):
        assert data.queries.to_pylist() == ["a", "b", "c"]
        assert data.targets.to_pylist() == [["b", "c", "d"], ["c", "d", None],
                                             ["d", None, None]]
