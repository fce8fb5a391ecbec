"""Search backends: exact top-k vs brute force, recall calibration, auto choice, clear failures."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from recommender import cli
from recommender.core.errors import ConfigError
from recommender.index.backends import available, get_backend
from recommender.index.build import (
    IndexConfig,
    RecallTargetError,
    build_index,
    choose_backend,
)
from recommender.index.exact import exact_neighbors, self_top_k, top_k_dot
from tests.factories import write_model_dir

QUIET = dict(progress=False)


def _brute(q, items, k, metric, excl):
    a = q / np.linalg.norm(q, axis=1, keepdims=True) if metric == "cosine" else q
    b = items / np.linalg.norm(items, axis=1, keepdims=True) if metric == "cosine" else items
    full = a.astype(np.float64) @ b.T.astype(np.float64)
    full[np.arange(len(q)), excl] = -np.inf
    return np.argsort(-full, axis=1, kind="stable")[:, :k], full


@pytest.mark.parametrize("metric", ["cosine", "dot"])
@pytest.mark.parametrize("n_items", [7, 300, 5000])
def test_exact_equals_brute_force_on_random_data(metric, n_items):
    # Small integer coordinates make every inner product exact in float32, so ties are real ties
    # and must go to the lower row; several tiles and blocks, two threads. (Cosines of integer
    # vectors are rounded, so there near-ties may order either way: compare the scores.)
    rng = np.random.default_rng(n_items)
    items = rng.integers(-3, 4, (n_items, 6)).astype(np.float32)
    items[items.sum(axis=1) == 0] += 1  # no zero vectors (cosine)
    rows = rng.choice(n_items, min(n_items, 200), replace=False)
    q = items[rows]
    k = 12
    idx, sc = exact_neighbors(q, items, k, metric, rows, block_bytes=4 * n_items * 16, n_jobs=2)
    want, full = _brute(q, items, min(k, n_items - 1), metric, rows)
    if metric == "dot":
        assert idx[:, : want.shape[1]].tolist() == want.tolist()
    np.testing.assert_allclose(sc[:, : want.shape[1]], np.take_along_axis(full, want, 1),
                               rtol=1e-5, atol=1e-5)
    got = np.take_along_axis(full, idx[:, : want.shape[1]].astype(np.int64), 1)
    np.testing.assert_allclose(got, np.take_along_axis(full, want, 1), rtol=1e-5, atol=1e-5)
    assert (idx[:, want.shape[1]:] == -1).all()


def test_exact_matches_brute_force_on_real_valued_vectors_across_tiles(monkeypatch):
    from recommender.index import exact

    monkeypatch.setattr(exact, "TILE_COLUMNS", 256)  # many tiles, ragged last one
    rng = np.random.default_rng(1)
    items = rng.standard_normal((1000, 16)).astype(np.float32)
    rows = np.arange(0, 1000, 7)
    idx, _ = exact_neighbors(items[rows], items, 10, "cosine", rows, block_bytes=1 << 16)
    want, _ = _brute(items[rows], items, 10, "cosine", rows)
    assert (idx == want).mean() > 0.999  # float32 vs float64 may swap a near-tie


@pytest.mark.parametrize("n_items,block", [(2, 1), (9, 4), (300, 64), (1000, 96)])
def test_self_table_equals_brute_force_with_ties_to_the_lower_row(n_items, block):
    # The symmetric tiled table: integer coordinates make every inner product exact in float32,
    # so ties (many, with 6 small coordinates; duplicate rows too) are real and go to the lower
    # row; ragged blocks, tiles in any order on two threads.
    rng = np.random.default_rng(n_items)
    items = rng.integers(-2, 3, (n_items, 6)).astype(np.float32)
    items[n_items // 2] = items[0]  # a duplicate of row 0
    k = 12
    idx, sc = self_top_k(items, k, n_jobs=2, block=block)
    rows = np.arange(n_items)
    want, full = _brute(items, items, min(k, n_items - 1), "dot", rows)
    assert idx[:, : want.shape[1]].tolist() == want.tolist()
    assert np.array_equal(sc[:, : want.shape[1]], np.take_along_axis(full, want, 1))
    assert (idx[:, want.shape[1]:] == -1).all() and np.isnan(sc[:, want.shape[1]:]).all()
    if n_items > 2:  # and what querying every row gives
        assert np.array_equal(idx, top_k_dot(items, items, k, rows)[0])


def test_exact_table_uses_the_symmetric_shortcut_and_matches_row_queries(tmp_path, monkeypatch):
    from recommender.index import exact

    monkeypatch.setattr(exact, "SELF_BLOCK", 128)
    model = _hard_model(tmp_path, n=700, dim=8)
    calls = []
    real = exact.self_top_k
    monkeypatch.setattr("recommender.index.backends.exact.self_top_k",
                        lambda *a, **kw: calls.append(1) or real(*a, block=128, **kw))
    build_index(model, tmp_path / "sym", IndexConfig(k=7, backend="exact", **QUIET))
    assert calls == [1]
    vectors = np.load(model / "vectors.npy")
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    rows_idx, _ = top_k_dot(unit.astype(np.float32), unit.astype(np.float32), 7, np.arange(700))
    got = np.load(tmp_path / "sym" / "neighbors.npy")
    assert (got == rows_idx).mean() > 0.999  # two float32 products may swap a near-tie
    # complementary scoring (input x context) is not symmetric: row queries, no shortcut
    build_index(model, tmp_path / "dot", IndexConfig(k=7, backend="exact",
                                                     scoring="complementary", **QUIET))
    assert calls == [1]


def _hard_model(tmp_path, n=1500, dim=24, seed=2):
    # Structureless Gaussian vectors: the hardest case for a random-projection forest.
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return write_model_dir(tmp_path / "model", [f"i{i}" for i in range(n)], vectors)


def test_calibration_raises_search_k_and_records_it(tmp_path):
    model = _hard_model(tmp_path)
    config = IndexConfig(k=10, backend="annoy", trees=4, search_k=40, recall_sample=200, **QUIET)
    m = build_index(model, tmp_path / "index", config)
    steps = m["calibration"]
    assert steps[0]["search_k"] == 40 and steps[0]["recall"] < 0.95
    assert m["search_k"] > 40 and m["backend_settings"]["search_k"] == m["search_k"]
    assert steps[-1]["recall"] >= 0.95 and m["recall_at_10"] == steps[-1]["recall"]
    assert [s["search_k"] for s in steps] == sorted(s["search_k"] for s in steps)
    assert m["target_recall"] == 0.95
    # Without a target nothing is raised.
    m0 = build_index(model, tmp_path / "plain", IndexConfig(
        k=10, backend="annoy", trees=4, search_k=40, recall_sample=200, target_recall=0,
        **QUIET))
    assert m0["search_k"] == 40 and m0["calibration"] == [] and m0["recall_at_10"] < 0.95


@pytest.mark.skipif(not available("hnsw"), reason="hnswlib not installed")
def test_calibration_raises_hnsw_ef(tmp_path):
    model = _hard_model(tmp_path, n=1000, dim=32)
    config = IndexConfig(k=10, backend="hnsw", hnsw_m=4, ef=10, recall_sample=200, **QUIET)
    m = build_index(model, tmp_path / "index", config)
    assert m["calibration"][0]["ef"] == 10 and m["calibration"][0]["recall"] < 0.95
    assert m["backend_settings"]["ef"] > 10 and m["recall_at_10"] >= 0.95


def test_unreachable_target_is_a_clear_error_and_leaves_nothing(tmp_path, capsys):
    model = _hard_model(tmp_path)
    config = IndexConfig(k=10, backend="annoy", trees=1, search_k=10, target_recall=1.0,
                         recall_sample=100, **QUIET)
    with pytest.raises(RecallTargetError, match=r"reached recall@10 0\.\d+ .* below "
                       r"--target-recall 1\.0.*try --backend exact"):
        build_index(model, tmp_path / "index", config)
    assert not (tmp_path / "index" / "manifest.json").exists()
    assert list((tmp_path / "index").iterdir()) == []
    argv = ["index", "--model", str(model), "--output", str(tmp_path / "cli"), "--backend",
            "annoy", "--trees", "1", "--search-k", "10", "--target-recall", "1", "--k", "10",
            "--recall-sample", "100", "--quiet"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("pin2vec index: error: the annoy backend reached recall@10")
    assert "Traceback" not in err and "--backend hnsw" in err


def test_auto_picks_exact_for_small_catalogues(tmp_path):
    assert choose_backend(2_000, 64)[0] == "exact"
    big, estimates = choose_backend(5_000_000, 64)
    assert big in ("hnsw", "annoy") and estimates[big] < estimates["exact"]
    model = _hard_model(tmp_path, n=500, dim=8)
    m = build_index(model, tmp_path / "index", IndexConfig(k=5, **QUIET))
    assert m["backend"] == "exact" and m["recall_at_10"] == 1.0
    assert m["backend_estimates"]["exact"] <= min(m["backend_estimates"].values())
    assert "items.ann" not in m["files"] and not (tmp_path / "index" / "items.ann").exists()
    assert m["calibration"] == [] and m["target_recall"] is None


def test_missing_hnswlib_gives_an_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "hnswlib", None)  # import hnswlib -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'pin2vec\[hnsw\]'"):
        get_backend("hnsw")
    model = _hard_model(tmp_path, n=50, dim=4)
    argv = ["index", "--model", str(model), "--output", str(tmp_path / "i"), "--backend", "hnsw",
            "--quiet"]
    assert cli.main(argv) == 2
    # auto falls back to the next approximate backend when hnswlib is missing
    assert choose_backend(5_000_000, 64)[0] == "annoy"


@pytest.mark.parametrize("kwargs", [dict(backend="faiss"), dict(target_recall=1.5),
                                    dict(target_recall="high"), dict(ef=0), dict(hnsw_m=-1)])
def test_config_rejects_bad_backend_values(kwargs):
    with pytest.raises(ConfigError):
        IndexConfig(**kwargs)


def test_manifest_records_backend_and_cli_prints_it(tmp_path, capsys):
    model = _hard_model(tmp_path, n=400, dim=8)
    out = tmp_path / "index"
    assert cli.main(["index", "--model", str(model), "--output", str(out), "--backend", "exact",
                     "--k", "5", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "backend=exact" in text and "recall@5 vs exact on 400 items: 1.000" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["backend"] == "exact" and manifest["backend_settings"] == {}


@pytest.mark.parametrize("backend", ["exact", "annoy"])
def test_in_process_table_starts_no_process(tmp_path, monkeypatch, backend):
    # Threads end with the process; a worker process could outlive a kill -9 of pin2vec.
    import multiprocessing
    import subprocess

    def refuse(*args, **kwargs):
        raise AssertionError("the in-process table must not start a process")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(multiprocessing.Process, "start", refuse)
    model = _hard_model(tmp_path, n=3000, dim=8)
    m = build_index(model, tmp_path / "index", IndexConfig(
        k=5, backend=backend, n_jobs=2, batch_size=256, recall_sample=100, use_beam=False,
        **QUIET))
    assert m["table_engine"] == "in-process" and m["recall_at_10"] >= 0.95
