"""RelatedItems and ``pin2vec related``: exact lookups, fallbacks, load errors, threads, CLI."""

from __future__ import annotations

import json
import math
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from recommender import RelatedItems, cli
from recommender.core.errors import ArtifactError
from recommender.core.integrity import describe_files
from recommender.index.backends import available
from recommender.index.build import IndexConfig, build_index
from tests.factories import write_model_dir

BACKENDS = ["exact", "annoy",
            pytest.param("hnsw", marks=pytest.mark.skipif(not available("hnsw"),
                                                          reason="hnswlib not installed"))]

ANGLES = [0, 10, 30, 90, 180]  # a..e on the unit circle: cosine = cos(angle difference)
IDS = ["a", "b", "c", "d", "e"]
COUNTS = [5, 1, 3, 2, 4]


def cos(x, y):
    return pytest.approx(math.cos(math.radians(abs(ANGLES[IDS.index(x)] - ANGLES[IDS.index(y)]))),
                         abs=1e-6)


@pytest.fixture(scope="module", params=BACKENDS)
def index_dir(tmp_path_factory, request):
    """The circle index, built with each backend in turn (every test below runs on each)."""
    tmp = tmp_path_factory.mktemp("lookup")
    rad = np.radians(ANGLES)
    vectors = np.stack([np.cos(rad), np.sin(rad)], axis=1) * 2.0
    model = write_model_dir(tmp / "model", IDS, vectors, counts=COUNTS)
    build_index(model, tmp / "index", IndexConfig(k=3, progress=False, backend=request.param))
    return tmp / "index"


def _backend(index_dir) -> str:
    return json.loads((index_dir / "manifest.json").read_text())["backend"]


@pytest.fixture(scope="module")
def related(index_dir):
    return RelatedItems.load(index_dir)


@pytest.fixture
def broken(index_dir, tmp_path):
    """A private copy of the index to damage."""
    return shutil.copytree(index_dir, tmp_path / "index")


def test_related_is_exact_best_first_and_never_the_item(related):
    assert related.related("a", k=3) == [("b", cos("a", "b")), ("c", cos("a", "c")),
                                         ("d", cos("a", "d"))]
    assert [i for i, _ in related.related("d", k=3)] == ["c", "b", "a"]  # a, e tie: lower row
    assert [i for i, _ in related.related("e", k=1)] == ["d"]
    for item in IDS:
        assert item not in [i for i, _ in related.related(item, k=3)]
    assert all(isinstance(s, float) for _, s in related.related("a", k=3))


def test_k_above_stored_k_is_a_clear_error(related):
    assert related.k == 3 and len(related.related("a", k=3)) == 3
    with pytest.raises(ValueError, match=r"k=4 .* only the top K=3 .*--k 4"):
        related.related("a", k=4)
    with pytest.raises(ValueError, match="k must be >= 1"):
        related.related("a", k=0)


def test_exclude_skips_ids_and_may_shorten_the_list(related):
    assert [i for i, _ in related.related("a", k=2, exclude=["b"])] == ["c", "d"]
    assert [i for i, _ in related.related("a", k=3, exclude={"b", "zzz"})] == ["c", "d"]


def test_unknown_ids_raise_key_error_naming_id_and_size(related):
    with pytest.raises(KeyError, match=r"'nope' is not in the index \(5 items"):
        related.related("nope")
    with pytest.raises(KeyError, match="nope"):
        related.vector("nope")
    with pytest.raises(KeyError):
        related.related(0)  # ids are strings


def test_default_fallbacks(related):
    # popular: by count (a=5, e=4, c=3, ...), score = share of all engagements (15).
    assert related.related("new", k=2, default="popular") == [("a", 5 / 15), ("e", 4 / 15)]
    assert related.related("new", k=2, default="popular", exclude=["a"]) == [
        ("e", 4 / 15), ("c", 3 / 15)]
    assert related.related("new", default=[]) == []
    assert related.related("new", default=[("x", 1.0)]) == [("x", 1.0)]
    with pytest.raises(ValueError, match="popular"):
        related.related("new", default="trending")


def test_related_many_matches_related(related):
    assert related.related_many(IDS, k=2) == [related.related(i, k=2) for i in IDS]
    assert related.related_many(["a", "new"], k=2, default="popular") == [
        related.related("a", k=2), [("a", 5 / 15), ("e", 4 / 15)]]
    assert related.related_many(["a"], k=2, exclude=["b"]) == [related.related("a", 2, ["b"])]
    with pytest.raises(KeyError):
        related.related_many(["a", "new"], k=2)


def test_related_to_session(related):
    # One item: every backend over 5 items is exhaustive, so the same list as the table.
    one = related.related_to_session(["a"], k=3)
    assert [i for i, _ in one] == ["b", "c", "d"]
    assert one[0][1] == pytest.approx(math.cos(math.radians(10)), abs=1e-5)
    # b (10°) then d (90°): the last item weighs most; the query sits at ~63°, nearest is c (30°).
    session = related.related_to_session(["b", "d"], k=2, half_life=1.0)
    assert [i for i, _ in session] == ["c", "a"]
    assert "a" not in [i for i, _ in related.related_to_session(["b", "d"], k=3, exclude=["a"])]
    assert related.related_to_session(["b", "unknown"], k=1) == related.related_to_session(["b"], 1)
    assert len(related.related_to_session(["a"], k=10)) == 4  # not limited by K; never the item
    with pytest.raises(KeyError):
        related.related_to_session(["x", "y"])
    assert related.related_to_session(["x"], k=1, default="popular") == [("a", 5 / 15)]


def test_vector_len_contains_item_ids(related):
    np.testing.assert_allclose(related.vector("d"), [0.0, 2.0], atol=1e-6)
    assert related.vector("d").dtype == np.float32
    assert len(related) == 5 and "c" in related and "z" not in related
    assert related.item_ids == tuple(IDS)


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_lookups_equal_serial(tmp_path, backend):
    rng = np.random.default_rng(7)
    ids = [f"i{i}" for i in range(400)]
    model = write_model_dir(tmp_path / "model", ids, rng.standard_normal((400, 8)))
    build_index(model, tmp_path / "index", IndexConfig(k=10, progress=False, recall_sample=0,
                                                       backend=backend))
    r = RelatedItems.load(tmp_path / "index")
    sessions = [ids[i : i + 3] for i in range(0, 400, 7)]

    def work(_):
        return ([r.related(i, k=10) for i in ids],
                [r.related_to_session(s, k=5) for s in sessions])

    serial = work(None)
    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(work, range(16)))
    assert all(res == serial for res in results)


def test_missing_file_is_named(broken):
    (broken / "scores.npy").unlink()
    with pytest.raises(ArtifactError, match=r"scores\.npy is missing"):
        RelatedItems.load(broken)


@pytest.mark.parametrize("name", ["ann", "neighbors.npy", "vectors.npy", "items.parquet"])
def test_truncated_file_is_an_error_not_a_crash(broken, name):
    if name == "ann":  # the backend's own file, if it has one
        name = {"annoy": "items.ann", "hnsw": "items.hnsw"}.get(_backend(broken))
        if name is None:
            pytest.skip("the exact backend keeps no index file")
    data = (broken / name).read_bytes()
    (broken / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match=rf"{name} is .* bytes but the manifest says"):
        RelatedItems.load(broken)


def test_corrupt_annoy_file_of_the_right_size_is_an_error(broken):
    if _backend(broken) != "annoy":
        pytest.skip("Annoy's file only")
    size = (broken / "items.ann").stat().st_size
    rng = np.random.default_rng(0)
    (broken / "items.ann").write_bytes(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    with pytest.raises(ArtifactError, match=r"items\.ann does not match the digest"):
        RelatedItems.load(broken)
    with pytest.raises(ArtifactError, match=r"items\.ann holds .* items; the manifest says 5"):
        RelatedItems.load(broken, verify=False)  # no digests: Annoy's item count still checked


def test_wrong_format_version_kind_and_shape(broken, tmp_path):
    manifest = json.loads((broken / "manifest.json").read_text())
    (broken / "manifest.json").write_text(json.dumps({**manifest, "format_version": 2}))
    with pytest.raises(ArtifactError, match="format_version 2"):
        RelatedItems.load(broken)
    (broken / "manifest.json").write_text(json.dumps({**manifest, "kind": "model"}))
    with pytest.raises(ArtifactError, match="holds a model artifact, expected index"):
        RelatedItems.load(broken)
    # A well-formed .npy of the wrong shape, with the manifest size patched to match.
    np.save(broken / "scores.npy", np.zeros((5, 2), dtype=np.float32))
    files = {**manifest["checksums"], "scores.npy": describe_files(broken, ["scores.npy"])[
        "scores.npy"]}
    (broken / "manifest.json").write_text(json.dumps({**manifest, "checksums": files}))
    with pytest.raises(ArtifactError, match=r"float32\[5, 2\], expected float32\[5, 3\]"):
        RelatedItems.load(broken)


def test_cli_text_json_catalog_and_unknown(index_dir, tmp_path, capsys):
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("item_id,title,category\na,Apple,fruit\nb,Banana,fruit\nc,Carrot,veg\n")
    assert cli.main(["related", "--index", str(index_dir), "a", "--k", "2",
                     "--catalog", str(catalog)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "a  Apple [fruit]"
    assert out[1].startswith("    1. b  cosine=0.9848  Banana [fruit]")
    assert out[2].startswith("    2. c  cosine=0.8660  Carrot [veg]")
    assert cli.main(["related", "--index", str(index_dir), "a", "e", "--k", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(r["item_id"], [x["item_id"] for x in r["related"]]) for r in doc["results"]] == [
        ("a", ["b"]), ("e", ["d"])]
    # unknown ids are named on stderr; the known ones still print; exit 2 only if none is known
    assert cli.main(["related", "--index", str(index_dir), "zz", "a", "yy", "--k", "1"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == "a" and "    1. b" in captured.out
    assert "skipped: 'zz', 'yy'" in captured.err
    assert cli.main(["related", "--index", str(index_dir), "zz", "yy", "--k", "3"]) == 2
    assert "'zz', 'yy'" in capsys.readouterr().err
    assert cli.main(["related", "--index", str(index_dir), "a", "--k", "9"]) == 2
    assert "K this index was built with" in capsys.readouterr().err
    assert cli.main(["related", "--index", str(index_dir), "a"]) == 0  # default k: min(10, K)
    assert len(capsys.readouterr().out.splitlines()) == 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_complementary_lookups_use_input_dot_context(tmp_path, backend):
    inputs = [[1, 0], [0, 1], [1, 1], [-1, 0]]
    contexts = [[3, 0], [0, 2], [1, 1], [0, -1]]
    model = write_model_dir(tmp_path / "model", ["w", "x", "y", "z"], inputs, contexts)
    build_index(model, tmp_path / "index", IndexConfig(k=3, scoring="complementary",
                                                       progress=False, backend=backend))
    r = RelatedItems.load(tmp_path / "index")
    assert r.related("y", k=3) == [("w", 3.0), ("x", 2.0), ("z", -1.0)]
    # Session [y]: unit(y) = (1, 1)/sqrt(2) against the contexts of w, x, z.
    got = dict(r.related_to_session(["y"], k=3))
    assert got == pytest.approx({"w": 3 / math.sqrt(2), "x": 2 / math.sqrt(2),
                                 "z": -1 / math.sqrt(2)}, abs=1e-5)
    np.testing.assert_array_equal(r.vector("y"), [1, 1])


def test_table_without_a_search_backend_loads_and_refuses_session_queries(tmp_path):
    # e.g. a count-based INDEX dir: the table and vectors, no backend or ANN file
    rng = np.random.default_rng(3)
    model = write_model_dir(tmp_path / "model", [f"i{i}" for i in range(30)],
                            rng.standard_normal((30, 4)))
    build_index(model, tmp_path / "index", IndexConfig(k=3, progress=False, backend="exact"))
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    del manifest["backend"]  # and it has no items.ann: no search backend at all
    (tmp_path / "index" / "manifest.json").write_text(json.dumps(manifest))
    r = RelatedItems.load(tmp_path / "index")
    assert len(r.related("i0", k=3)) == 3
    with pytest.raises(ArtifactError, match="cannot answer session queries"):
        r.related_to_session(["i0"], k=3)
