"""`pin2vec report`: the reader tolerates any evaluation shape and missing parts; the page renders
in a real browser (headless Chromium) with its charts and a filled explorer."""

import json
import re
import shutil
import subprocess

import numpy as np
import pyarrow as pa
import pytest
from factories import write_model_dir, write_sessions_dir

from recommender.core.artifacts import save_npy, write_json, write_parquet
from recommender.report import write_report
from recommender.report.data import mean_pair_cosine, parse_results
from recommender.report.scoring import breakdown, bucket_thresholds, cooccurrence

ITEMS = ["a", "b", "c", "d", "e", "f"]
# issue-10 style: nested metrics at 10 and 20, breakdowns, a shipped flag on another scorer
EVALUATION = {
    "format_version": 2, "k": 10, "target": "next", "shipped": "hybrid",
    "results": [
        {"name": "pin2vec (similar)", "metrics": {"10": {"hr": 0.5, "mrr": 0.25, "ndcg": 0.3},
                                                  "20": {"hr": 0.6, "mrr": 0.26, "ndcg": 0.33}},
         "by_popularity": {"head": {"hr@10": 0.7}, "tail": {"hr@10": 0.1}},
         "unseen": {"hr@10": 0.0}, "coverage": 0.9, "unseen_share": 0.33},
        {"name": "hybrid", "HR@10": 0.55, "MRR@10": 0.3, "ndcg_at_10": 0.35, "hr@20": 0.65},
    ],
}


def test_parse_results_reads_nested_flat_and_legacy_shapes():
    a, b = parse_results(EVALUATION)
    assert a.metrics == {("hr", 10): 0.5, ("mrr", 10): 0.25, ("ndcg", 10): 0.3,
                         ("hr", 20): 0.6, ("mrr", 20): 0.26, ("ndcg", 20): 0.33}
    assert a.groups == {"by popularity head": {("hr", 10): 0.7},
                        "by popularity tail": {("hr", 10): 0.1}, "unseen": {("hr", 10): 0.0}}
    assert a.extra == {"coverage": 0.9, "unseen_share": 0.33}
    assert b.metrics == {("hr", 10): 0.55, ("mrr", 10): 0.3, ("ndcg", 10): 0.35, ("hr", 20): 0.65}
    assert (a.shipped, b.shipped) == (False, True)
    # today's evaluation.json: bare metric names at the top-level k
    (legacy,) = parse_results({"k": 10, "results": [{"name": "m", "hr": 0.4, "queries": 7}]})
    assert legacy.metrics == {("hr", 10): 0.4} and legacy.extra == {"queries": 7.0}
    assert parse_results({"results": "nonsense"}) == [] and parse_results({}) == []


def test_mean_pair_cosine_flags_collapsed_vectors():
    rng = np.random.default_rng(0)
    spread = rng.normal(size=(500, 16))
    collapsed = spread * 0.05 + 1.0  # all near one direction
    assert abs(mean_pair_cosine(spread)) < 0.05
    assert mean_pair_cosine(collapsed) > 0.95
    assert mean_pair_cosine(np.ones((1, 4))) is None


def test_bucket_thresholds_split_training_events_in_thirds():
    counts = {"a": 50, "b": 20, "c": 10, "d": 10, "e": 5, "f": 3, "g": 1, "h": 1}
    # 100 events: a alone is 50% (head), b..c reach 80% (torso), the rest tail
    assert bucket_thresholds(counts) == (50, 20)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "run"
    train = [["a", "b", "c"], ["a", "b"], ["d", "e", "f"], ["d", "e"]]
    write_sessions_dir(out / "sessions", train + [["a", "b"], ["d", "f"], ["x", "a"]])
    write_sessions_dir(out / "train_sessions", train)
    write_sessions_dir(out / "test_sessions", [["a", "b"], ["d", "f"], ["x", "a"]])
    rng = np.random.default_rng(1)
    write_model_dir(out / "model", ITEMS, rng.normal(size=(6, 4)), counts=[2, 2, 1, 2, 2, 1])
    manifest = json.loads((out / "model" / "manifest.json").read_text())
    manifest["epochs"] = [{"epoch": 1, "loss": 4.0, "words_per_second": 1000.0},
                          {"epoch": 2, "loss": 3.0, "words_per_second": 1200.0}]
    write_json(out / "model" / "manifest.json", manifest)
    # a hand-made INDEX dir: d's list misses f, so (d, f) is a miss for pin2vec, a hit for counts
    lists = {"a": "bc", "b": "ac", "c": "ab", "d": "ec", "e": "df", "f": "de"}
    neighbors = np.full((6, 10), -1, np.int32)
    scores = np.full((6, 10), np.nan, np.float32)
    for row, item in enumerate(ITEMS):
        neighbors[row, :2] = [ITEMS.index(x) for x in lists[item]]
        scores[row, :2] = [0.9, 0.8]
    index = out / "index"
    save_npy(index / "neighbors.npy", neighbors)
    save_npy(index / "scores.npy", scores)
    write_parquet(index / "items.parquet", pa.table({"item_id": ITEMS, "count": [2] * 6}))
    write_json(index / "manifest.json", {"format_version": 1, "kind": "index", "k": 10,
                                         "scoring": "similar", "recall_at_10": 0.97,
                                         "counts": {"items": 6}})
    catalog = out.parent / "catalog.csv"
    catalog.write_text("item_id,title,category\n" + "".join(
        f"{i},Title {i.upper()},{'cat1' if i in 'abc' else 'cat2'}\n" for i in ITEMS))
    write_json(out / "run.json", {"format_version": 1, "kind": "run",
                                  "catalog": str(catalog)})
    write_json(out / "evaluation.json", EVALUATION)
    return out


@pytest.fixture(scope="module")
def page_path(run_dir):
    return write_report(run_dir, run_dir.parent / "r.html")


def test_report_computes_buckets_and_cooccurrence_exactly(run_dir):
    ids, nb, sc = cooccurrence(run_dir, k=3)
    row = {item: r for r, item in enumerate(ids)}
    assert [ids[j] for j in nb[row["a"]][:2]] == ["b", "c"] and list(sc[row["a"]][:2]) == [2, 1]
    assert [ids[j] for j in nb[row["d"]][:2]] == ["e", "f"] and list(sc[row["d"]][:2]) == [2, 1]
    assert nb[row["a"]][2] == -1
    from recommender.report.data import read_index_table, test_pairs

    pairs = test_pairs(run_dir)
    assert pairs[0].to_pylist() == ["a", "d", "x"] and pairs[1].to_pylist() == ["b", "f", "a"]
    counts = {"a": 2, "b": 2, "c": 1, "d": 2, "e": 2, "f": 1}
    got = breakdown({"index": read_index_table(run_dir / "index"), "cooc": (ids, nb, sc)},
                    pairs, counts, ks=(2,))
    assert got["index"]["head"] == {"queries": 2, "hr@2": 0.5}
    assert got["cooc"]["head"] == {"queries": 2, "hr@2": 1.0}
    assert got["index"]["unseen"] == {"queries": 1, "hr@2": 0.0}


def test_report_page_holds_every_section(page_path):
    page = page_path.read_text()
    for anchor in ("evaluation", "buckets", "training", "index", "map", "explorer"):
        assert f'<section id="{anchor}">' in page
    assert page.count("<svg") >= 3 and "data:image/png;base64," in page
    # nothing is fetched at view time: no URL in a src/href/url(), no metadata links
    assert not re.search(r"""(src|href)=["']?(https?:)?//|url\(\s*["']?(https?:)?//""", page)
    assert "purl.org" not in page
    assert "MRR@20" in page and "shipped" in page and "Title A" in page
    data = json.loads(re.search(r'id="explorer-data">(.*?)</script>', page).group(1))
    names = [s["name"] for s in data["scorers"]]
    assert names == ["pin2vec (similar)", "co-occurrence"]
    first = data["items"][data["queries"][0]][0]
    related = [data["items"][u][0] for u in data["scorers"][0]["related"][0]]
    assert related == list({"a": "bc", "b": "ac", "d": "ec", "e": "df"}[first])


def test_report_of_a_half_written_run_dir_notes_what_is_missing(tmp_path):
    (tmp_path / "run" / "sessions").mkdir(parents=True)
    write_json(tmp_path / "run" / "evaluation.json", {"results": [{"name": "x", "hr@10": 0.1}]})
    write_json(tmp_path / "run" / "sessions" / "manifest.json",
               {"kind": "sessions", "warnings": ["every one of the 4 event times falls before"]})
    page = write_report(tmp_path / "run").read_text()
    assert "sessionize: every one of the 4 event times" in page
    assert "no readable model/" in page and "No INDEX dir found" in page
    assert "0.1000" in page


def test_report_cli_names_a_missing_dir(tmp_path, capsys):
    from recommender.cli.main import main as cli

    assert cli(["report", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "headless_shell"):
        if shutil.which(name):
            return shutil.which(name)
    return None


CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--hide-scrollbars"]


@pytest.mark.skipif(_chromium() is None,
                    reason="no chromium binary on PATH (Debian: apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(page_path, tmp_path):
    path = page_path
    cmd = [_chromium(), *CHROME_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=2000", "--dump-dom", path.resolve().as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    # the explorer's script ran: one table per scorer, filled with the first item's related items
    assert dom.count('class="scorer"') == 2
    assert dom.count('class="rank"') == 4
    assert 'id="explorer-title"' in dom and "Title A" in dom.split('id="explorer-out"')[1]
    assert dom.count('class="chart"') >= 3 and 'class="map"' in dom


def test_scorer_charts_keep_long_names_whole_and_grow_with_the_scorers():
    from recommender.report.charts import HIGHLIGHT, bar_panels, wrap_label

    name = "hybrid (co-occurrence (±2, shrunk) + similar, evidence 20) [index/]"
    assert wrap_label(name).split("\n") == ["hybrid (co-occurrence (±2, shrunk) +",
                                             "similar, evidence 20) [index/]"]
    assert wrap_label("x" * 130).split("\n") == ["x" * 40, "x" * 40, "x" * 39 + "…"]

    def height(svg):
        return float(re.search(r'viewBox="0 0 [\d.]+ ([\d.]+)"', svg).group(1))

    two = bar_panels(["a", name], {name}, [("HR", [[0.1, 0.2]])], ["@10"])
    many = bar_panels([f"s{i}" for i in range(11)], set(), [("HR", [[0.1] * 11])], ["@10"])
    assert "similar, evidence 20) [index/]" in two and "fill: " + HIGHLIGHT in two
    assert "fill: " + HIGHLIGHT not in many and height(many) > 2 * height(two)


def test_report_reads_the_catalogue_with_the_runs_options(tmp_path):
    """run.json's catalog_options: defaults keep the plain reader (category colours the map); a
    header-less ';' latin-1 file is read as the run read it, coloured by its categorical column."""
    from recommender.core.catalog import CatalogOptions, parse_attribute_specs
    from recommender.report.data import read_catalog

    plain = tmp_path / "c.csv"
    plain.write_text("item_id,title,category\na,Apple,fruit\nb,Bean,veg\n")
    expect = ({"a": ("Apple", "fruit"), "b": ("Bean", "veg")}, "category")
    assert read_catalog(plain) == expect
    assert read_catalog(plain, CatalogOptions().to_dict()) == expect
    bare = tmp_path / "items.txt"
    bare.write_bytes("a;Caf\xe9;fruit;x|y\nb;Bean;veg;z\n".encode("latin-1"))
    options = CatalogOptions(attributes=parse_attribute_specs("aisle,tags:multi"),
                             delimiter=";", encoding="latin-1", header=False,
                             columns=("item_id", "title", "aisle", "tags")).to_dict()
    assert read_catalog(bare, options) == ({"a": ("Café", "fruit"), "b": ("Bean", "veg")},
                                           "aisle")


def test_report_cli_reads_an_explicit_catalogue_with_the_catalog_flags(run_dir, tmp_path):
    from recommender.cli import main as cli

    bare = tmp_path / "items.txt"
    bare.write_bytes("".join(f"{i};Titr\xe9 {i.upper()};aisle{i in 'abc'}\n"
                             for i in ITEMS).encode("latin-1"))
    out = tmp_path / "r.html"
    assert cli(["report", str(run_dir), "--output", str(out), "--catalog", str(bare),
                "--catalog-delimiter", ";", "--catalog-encoding", "latin-1",
                "--catalog-no-header", "--catalog-columns", "item_id,title,aisle"]) == 0
    page = out.read_text("utf-8")
    assert "Titré A" in page and "could not be read" not in page
