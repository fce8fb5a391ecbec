"""End to end: `pin2vec run` on data_samples/, and `pin2vec tune` on a small planted corpus."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from factories import write_sessions_dir

from recommender.cli import main as cli
from recommender.evaluate.tune import SPACE, TuneConfig, propose, tune
from recommender.lookup import RelatedItems

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"


CATALOG_COLUMNS = "item_id,title,category,brand,tags,price"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    # The catalogue as many real exports come: ';'-separated, latin-1, no header line. Every
    # stage that reads it (titles in the summary, the report) must use the run's options.
    tmp = tmp_path_factory.mktemp("run")
    lines = (SAMPLES / "catalog.csv").read_text("utf-8").splitlines()[1:]
    assert not any(";" in line for line in lines)
    catalog = tmp / "items.txt"
    catalog.write_bytes("".join(f"{line.replace(',', ';')}\n" for line in lines)
                        .encode("latin-1"))
    out = tmp / "out"
    code = cli(["run", "--input", str(SAMPLES / "events" / "*"),
                "--catalog", str(catalog), "--catalog-delimiter", ";",
                "--catalog-encoding", "latin-1", "--catalog-no-header",
                "--catalog-columns", CATALOG_COLUMNS,
                "--train-config", str(SAMPLES / "train_config.json"),
                "--output", str(out), "--quiet"])
    assert code == 0
    return out


def test_run_writes_every_stage(run_dir):
    for stage in ("sessions", "train_sessions", "test_sessions", "model", "index"):
        assert (run_dir / stage / "manifest.json").is_file(), stage
    run = json.loads((run_dir / "run.json").read_text())
    assert run["kind"] == "run" and run["train_config"]["epochs"] == 20
    selection = json.loads((run_dir / "validation" / "selection.json").read_text())
    assert selection["winner"]["name"] == run["shipped"]["name"]
    related = RelatedItems.load(run_dir / "index")
    assert len(related) > 2000
    page = (run_dir / "report.html").read_text()  # the run's report, titles from the catalogue
    assert '<section id="explorer">' in page and "Drought-tolerant tomato garden" in page
    assert run["catalog_options"]["columns"] == CATALOG_COLUMNS.split(",")
    assert run["catalog_options"]["delimiter"] == ";" and not run["catalog_options"]["header"]


def test_run_on_samples_ships_a_scorer_that_beats_the_baselines(run_dir):
    # The product's outcome on data_samples/: the scorer chosen on validation and shipped as
    # index/ beats most-popular 3x and every count-based baseline on the test sessions.
    report = json.loads((run_dir / "evaluation.json").read_text())
    lines = report["results"]
    shipped = [r for r in lines if r["shipped"]]
    assert len(shipped) == 1
    hr = {r["name"]: r["metrics"]["hr@10"] for r in lines}
    top = shipped[0]["metrics"]["hr@10"]
    assert top >= 3 * hr["most-popular"]
    for name in ("co-occurrence (±5)", "sequential rules (10, 1/d)", "item-kNN (cosine)"):
        assert top >= hr[name], name
    assert "beats the best baseline" in report["verdict"]
    run = json.loads((run_dir / "run.json").read_text())
    kind, params = run["shipped"]["kind"], run["shipped"]["params"]
    expect = {"counts": "cooccurrence", "ease": "ease", "hybrid": "hybrid", "popular": "popular"}
    assert RelatedItems.load(run_dir / "index").scoring == expect.get(kind, params.get("scoring"))


def test_run_twice_replaces_its_own_output(run_dir, capsys):
    # A second run into a directory written by `pin2vec run` needs no --overwrite...
    assert (run_dir / "run.json").exists()
    other = run_dir.parent / "not-a-run"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    # ...but a foreign non-empty directory is refused with one clear line.
    code = cli(["run", "--input", str(SAMPLES / "events" / "*"), "--output", str(other),
                "--quiet"])
    assert code == 2
    assert "not written by `pin2vec run`" in capsys.readouterr().err
    assert (other / "precious.txt").read_text() == "keep me"


def _planted_sessions(rng, clusters=6, per_cluster=8, sessions=600):
    out = []
    for _ in range(sessions):
        c = rng.integers(clusters)
        items = rng.choice(per_cluster, size=rng.integers(3, 7), replace=True)
        out.append([f"c{c}_{i}" for i in items])
    return out


def test_tune_ranks_counts_embeddings_and_hybrids_and_ships_the_best(tmp_path):
    rng = np.random.default_rng(0)
    src = write_sessions_dir(tmp_path / "s", _planted_sessions(rng))
    summary = tune(src, tmp_path / "t", TuneConfig(trials=2, seed=0, progress=False))
    board = pq.read_table(tmp_path / "t" / "leaderboard.parquet").to_pylist()
    kinds = {r["kind"] for r in board}
    assert {"counts", "popular", "ease", "embedding", "hybrid"} <= kinds
    hr = [r["hr@10"] for r in board if r["hr@10"] is not None]
    assert hr == sorted(hr, reverse=True) and hr[0] == summary["best"]["hr@10"]
    assert board[0]["scorer"] == summary["best"]["scorer"]
    best = json.loads((tmp_path / "t" / "best.json").read_text())
    assert best["trials"] == 2 and "sequential rules (10, 1/d)" in best["baselines"]
    related = RelatedItems.load(tmp_path / "t" / "index")
    # planted clusters: an item's related items come from its own cluster
    top = related.related("c0_0", k=5)
    assert sum(other.startswith("c0_") for other, _ in top) >= 4
    assert not (tmp_path / "t" / ".split").exists()


def test_tune_stops_a_trial_that_overruns_its_budget(tmp_path, monkeypatch):
    import sys
    import time

    import recommender.evaluate.tune as tune_module

    # A fake trial that would train for a minute: the budget of 4 s must stop it.
    monkeypatch.setattr(tune_module, "_trial_command",
                        lambda spec: [sys.executable, "-c", "import time; time.sleep(60)"])
    rng = np.random.default_rng(0)
    src = write_sessions_dir(tmp_path / "s", _planted_sessions(rng, sessions=200))
    started = time.monotonic()
    summary = tune(src, tmp_path / "t", TuneConfig(trials=3, time_budget=4.0, seed=0,
                                                   progress=False))
    assert summary["stopped"] >= 1 and summary["trials"] == 0
    board = pq.read_table(tmp_path / "t" / "leaderboard.parquet").to_pylist()
    assert "stopped" in {r["status"] for r in board}
    # nothing trained: the best count-based scorer is shipped
    assert summary["best"]["kind"] in ("counts", "ease", "popular")
    assert RelatedItems.load(tmp_path / "t" / "index").scoring in ("cooccurrence", "ease")
    assert time.monotonic() - started < 60


def test_propose_starts_from_defaults_and_never_repeats():
    import random

    from recommender.train.trainer import TrainConfig

    rng, seen = random.Random(0), set()
    first = propose(0, 10, None, rng, seen)
    assert first == {name: getattr(TrainConfig(), name) for name in SPACE}
    drawn = [first] + [propose(t, 10, first, rng, seen) for t in range(1, 10)]
    assert len({tuple(sorted(p.items())) for p in drawn}) == 10
    for p in drawn:
        assert all(p[name] in values or p[name] == first[name] for name, values in SPACE.items())


def test_tune_config_validation():
    from recommender.core.errors import ConfigError

    with pytest.raises(ConfigError, match="trials"):
        TuneConfig(trials=0)
    with pytest.raises(ConfigError, match="test fraction"):
        TuneConfig(test_fraction=1.0)


def test_samples_are_found_beside_the_checkout_from_any_directory(tmp_path, monkeypatch):
    from recommender.cli.run import find_samples

    monkeypatch.chdir(tmp_path)
    assert find_samples() == Path(__file__).resolve().parents[1] / "data_samples"
