"""Cold scoring chosen by validation on pseudo-cold items; cold rows in count-based indexes."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from test_coldstart import CLUSTERS, PER, _cluster, _train_planted

from recommender import RelatedItems
from recommender.core.attributes import SharedValues, cold_scores
from recommender.core.catalog import CatalogOptions, parse_attribute_specs, read_catalog
from recommender.core.errors import ConfigError
from recommender.core.vectors import top_k_rows
from recommender.index import IndexConfig, build_index
from recommender.index.cold import ColdConfig
from recommender.scorers import CooccurrenceConfig, cooccurrence, from_lists, write_index
from recommender.scorers.cold import add_cold_rows
from recommender.train import TrainConfig, cold_choice, train
from recommender.train.attributes import AttributeConfig, CatalogAttributes
from recommender.train.model import Model


def _four_sessions():
    """Chunks of the sessions [0 1 2] [3 0] [0 4] [5 0 0 1] (corpus order); items 0 and 5
    pseudo-cold."""
    chunks = [(np.array([0, 1, 2, 3, 0], np.int32), np.array([3, 2])),
              (np.array([0, 4, 5, 0, 0, 1], np.int32), np.array([2, 4]))]
    pseudo = np.zeros(6, bool)
    pseudo[[0, 5]] = True
    return chunks, pseudo


def test_validation_pairs_stay_in_late_sessions_and_count_the_earlier_ones():
    # In corpus order the late half is [0 4] [5 0 0 1].
    chunks, pseudo = _four_sessions()
    v = cold_choice.validation_pairs(chunks, pseudo, sessions=4, limit=100,
                                     rng=np.random.default_rng(0), late=0.5)
    # (5,0), (0,1); never (0,0) (same item), a pair across sessions (4,5), nor (0,4): item 4
    # was first engaged in the late sessions (the test cannot return such items either).
    assert list(zip(v.queries.tolist(), v.targets.tolist())) == [(5, 0), (0, 1)]
    assert v.early[0.0].tolist() == [2, 1, 1, 1, 0, 0]  # engagements in the first two sessions
    # Without start times no recent engagements are counted, whatever the half-lives asked.
    v = cold_choice.validation_pairs(chunks, pseudo, sessions=4, limit=100,
                                     rng=np.random.default_rng(0), late=0.5, half_lives=(0.5,))
    assert list(v.early) == [0.0] and v.final == {}


def test_validation_pairs_follow_start_times_and_count_recent_engagements():
    # The same sessions, started at 30, 0, 10, 20 s: the late half is the first and the last.
    chunks, pseudo = _four_sessions()
    v = cold_choice.validation_pairs(chunks, pseudo, sessions=4, limit=100,
                                     rng=np.random.default_rng(0), late=0.5,
                                     times=[30.0, 0.0, 10.0, 20.0], half_lives=(0.5,))
    # (0,1) twice and (5,0) in the late sessions; item 1 was not engaged before them.
    assert list(zip(v.queries.tolist(), v.targets.tolist())) == [(5, 0)]
    assert v.early[0.0].tolist() == [2, 0, 0, 1, 1, 0]  # sessions at 0 s and 10 s
    assert v.late.tolist() == [3, 2, 1, 0, 0, 1]
    assert v.half_life == {0.5: 15.0}  # half the 30 s span
    # Before the first late session (20 s): ages 20 s and 10 s.
    a, b = 0.5 ** (20 / 15), 0.5 ** (10 / 15)
    np.testing.assert_allclose(v.early[0.5], [a + b, 0, 0, a, b, 0])
    # Over all sessions, from the latest (30 s): ages 0, 30, 20 and 10 s.
    w0, w1, w2, w3 = 1.0, 0.25, 0.5 ** (20 / 15), 0.5 ** (10 / 15)
    np.testing.assert_allclose(v.final[0.5], [w0 + w1 + w2 + 2 * w3, w0 + w3, w0, w1, w2, w3])


def test_popularity_source_is_recent_only_where_it_predicts_the_late_sessions_better():
    # Items 0-3 were engaged long ago, items 4-5 lately; the late sessions engage items 4-5.
    early = {0.0: np.array([40.0, 40, 40, 40, 10, 10]),
             0.1: np.array([1.0, 1, 1, 1, 9, 9])}
    late = np.array([0.0, 0, 0, 0, 30, 30])
    v = cold_choice.Validation(np.zeros(0, np.int64), np.zeros(0, np.int64), early, late,
                               {0.1: early[0.1]}, {0.1: 5.0})
    recency, record = cold_choice.popularity_source(v)
    assert recency == 0.1 and record["tokens"] == 60
    p0 = 0.9 * 10 / 180 + 0.1 / 6  # all-time: item 4's (and 5's) probability
    p1 = 0.9 * 9 / 22 + 0.1 / 6
    assert record["all_time"] == round(np.log(p0), 4)
    assert record["recent 0.1"] == round(np.log(p1), 4)
    # Late sessions like the old ones: all-time counts stay.
    v = v._replace(late=np.array([10.0, 10, 10, 10, 3, 3]))
    assert cold_choice.popularity_source(v)[0] == 0.0
    # Without recent engagements to try there is nothing to decide.
    assert cold_choice.popularity_source(v._replace(early={0.0: early[0.0]})) == (0.0, {})


def test_hit_rates_break_ties_by_row_like_the_index():
    counts = np.array([9, 5, 1, 1])
    space = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    query = np.array([[1.0, 0.0]], np.float32)
    # Rows 0..2 tie at cosine 1; with k=1 and the query being row 0, row 1 ranks first.
    grid = (("space", 0.0),)
    assert cold_choice.hit_rates(query, np.array([0]), np.array([1]), counts, space, space,
                                 k=1, grid=grid) == [1.0]
    assert cold_choice.hit_rates(query, np.array([0]), np.array([2]), counts, space, space,
                                 k=1, grid=grid) == [0.0]


def _planted_choice(popular_targets: bool):
    """20 candidates in 2 attribute groups; item 0 is by far the most engaged. Queries are of
    group B; their next item is item 0 (group A) or a rare item of their own group."""
    rng = np.random.default_rng(1)
    n = 20
    group = np.array([0] * 10 + [1] * 10)
    counts = np.where(np.arange(n) == 0, 10_000, 1 + rng.integers(0, 3, n))
    space = np.stack([np.where(group == 0, 1.0, 0.0), np.where(group == 1, 1.0, 0.0)], 1)
    space = (space + 0.01 * rng.standard_normal((n, 2))).astype(np.float32)
    q_rows = np.arange(10, 20).repeat(4)
    queries = space[q_rows]
    targets = (np.zeros(len(q_rows), np.int64) if popular_targets
               else 10 + (q_rows - 10 + 1) % 10)
    return queries, q_rows, targets, counts, space


def test_choice_picks_a_popularity_weight_where_next_items_are_popular():
    queries, q_rows, targets, counts, space = _planted_choice(popular_targets=True)
    choice = cold_choice.choose(queries, q_rows, targets, counts, space, space, k=3)
    assert choice["chosen_by"] == "validation" and choice["popularity"] > 0
    assert choice["validation"]["pairs"] == 40
    hr = choice["validation"]["hr"]
    assert hr[f"{choice['scoring']} {choice['popularity']:g}"] == 1.0 and hr["space 0"] == 0.0


def test_choice_keeps_pure_attribute_matching_where_next_items_share_attributes():
    queries, q_rows, targets, counts, space = _planted_choice(popular_targets=False)
    # 9 other group-B items within cosine ~1 of each query: k=10 holds them all without weight.
    choice = cold_choice.choose(queries, q_rows, targets, counts, space, space, k=10)
    assert (choice["scoring"], choice["popularity"]) == ("space", 0.0)
    assert choice["validation"]["hr"]["space 0"] == 1.0


def test_too_few_validation_pairs_fall_back_to_the_default():
    queries, q_rows, targets, counts, space = _planted_choice(popular_targets=True)
    choice = cold_choice.choose(queries[:5], q_rows[:5], targets[:5], counts, space, space)
    assert (choice["scoring"], choice["popularity"]) == ("space", 0.0)
    assert choice["chosen_by"].startswith("default")


def test_cold_scores_context_is_the_logit_plus_popularity():
    q = np.array([[1.0, 2.0]], np.float32)
    ctx = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    got = cold_scores(q, "context", 0.5, np.array([0, np.e - 1]), context=ctx)
    np.testing.assert_allclose(got, [[1.0, 2.5]], rtol=1e-6)


@pytest.fixture(scope="module")
def planted_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("choice")
    sessions, _, _, model = _train_planted(tmp, validation=0.25)
    return tmp, model, sessions


def test_model_index_and_lookup_record_and_use_the_validated_choice(planted_model, tmp_path):
    tmp, model, _ = planted_model
    choice = model.manifest["attributes_training"]["cold_scoring"]
    assert choice["chosen_by"] == "validation" and choice["validation"]["items"] == 9
    columns = [spec.name for spec in model.attributes.schema.specs]
    # In-memory sessions without start times: all-time engagements only.
    assert set(choice["validation"]["hr"]) == {f"{s} {w:g}"
                                               for s, w in cold_choice.grid_for(columns)}
    assert choice["recency"] == 0.0 and model.attributes.recent is None
    saved = json.loads((tmp / "model" / "attributes.json").read_text())["cold_scoring"]
    assert saved == choice
    m = build_index(tmp / "model", tmp_path / "auto", IndexConfig(k=5, progress=False,
                                                                   n_jobs=1))
    assert (m["cold"]["scoring"], m["cold"]["popularity"]) == (choice["scoring"],
                                                               choice["popularity"])
    assert m["cold"]["chosen_by"] == "validation"
    # Options override the choice; "context" scoring keeps the context vectors for lookups.
    m = build_index(tmp / "model", tmp_path / "ctx", IndexConfig(k=5, progress=False, n_jobs=1),
                    cold=ColdConfig(scoring="context", popularity=0.0))
    assert m["cold"]["chosen_by"] == "options" and "attribute_context.npy" in m["files"]
    related = RelatedItems.load(tmp_path / "ctx")
    line = [r for r in (tmp / "catalog.csv").read_text().splitlines() if r.startswith("c2x9,")]
    _, _, brand, tags, price = line[0].split(",")
    found = related.related_to_attributes({"brand": brand, "tags": tags, "price": price}, 5)
    assert [i for i, _ in found] == [i for i, _ in related.related("c2x9", k=5)]
    assert [_cluster(i) for i, _ in found] == ["c2"] * 5


def test_count_based_index_gets_cold_rows(planted_model, tmp_path):
    tmp, model, sessions = planted_model
    data = from_lists(sessions)
    table = cooccurrence(data, CooccurrenceConfig(window=2, k=5))
    extended, cold = add_cold_rows(table, model.attributes, model.item_ids, model.vectors,
                                   model.context_vectors, ColdConfig(scoring="space",
                                                                     popularity=0.0))
    assert cold["cold_catalogue"] == CLUSTERS and cold["warm"] == CLUSTERS * (PER - 1)
    assert cold["chosen_by"] == "options"
    write_index(extended, tmp_path / "idx", extra={"cold": cold})
    related = RelatedItems.load(tmp_path / "idx")
    assert len(related) == CLUSTERS * PER
    for c in range(CLUSTERS):
        found = related.related(f"c{c}x9", k=5)
        assert [_cluster(i) for i, _ in found] == [f"c{c}"] * 5
    # The warm rows are the count table's own, untouched.
    assert related.related("c0x0", k=5) == RelatedItems.load(
        write_index(table, tmp_path / "plain") and tmp_path / "plain").related("c0x0", k=5)
    assert pa.array(extended.item_ids).to_pylist()[-CLUSTERS:] == [f"c{c}x9"
                                                                   for c in range(CLUSTERS)]


def test_default_blends_only_items_seen_at_most_twice(planted_model):
    from recommender.index.cold import extend_rows

    tmp, model, _ = planted_model
    n = len(model.item_ids)
    counts = pa.array(np.arange(n) % 4, pa.int64())  # 0, 1, 2, 3, 0, 1, ...
    vectors = np.asarray(model.vectors)
    rows = extend_rows(tmp / "model", list(model.item_ids), counts, vectors, ColdConfig(),
                       "similar")
    c = np.arange(n) % 4
    same = np.all(rows.vectors[:n] == vectors, axis=1)
    assert same[c == 3].all() and not same[(c == 1) | (c == 2)].any()
    assert rows.stats["tail_blended"] == int(((c == 1) | (c == 2)).sum())
    # prior_max_count 0 blends every item with engagements; prior 0 none.
    every = extend_rows(tmp / "model", list(model.item_ids), counts, vectors,
                        ColdConfig(prior_max_count=0), "similar")
    assert not np.all(every.vectors[:n] == vectors, axis=1)[c == 3].any()
    off = extend_rows(tmp / "model", list(model.item_ids), counts, vectors, ColdConfig(prior=0),
                      "similar")
    assert np.all(off.vectors[:n] == vectors, axis=1)[c > 0].all()


def test_pick_prefers_the_smaller_weight_unless_the_larger_wins_beyond_noise():
    grid = (("space", 0.0), ("space", 0.1), ("context", 0.0), ("context", 1.0))
    hits = np.zeros((100, 4), bool)
    hits[:30, 0] = True
    hits[5:36, 1] = True  # one pair more, 11 pairs differ: within a paired standard error
    assert cold_choice.pick(hits, grid) == 0
    hits[:60, 1] = True  # 30 pairs more: beyond it
    assert cold_choice.pick(hits, grid) == 1
    hits[:70, 3] = True  # the best is context 1; context 0 is far below it
    hits[:10, 2] = True
    assert cold_choice.pick(hits, grid) == 3


# --- same:<column> scoring: the popular-within-the-same-value baseline, blended with cosine ----


def test_shared_values_marks_candidates_carrying_a_value_of_the_column():
    cands = [["brand=a", "tags=x"], ["brand=b", "tags=x", "tags=y"], [], ["brand=a"]]
    brand, tags = SharedValues(cands, "brand"), SharedValues(cands, "tags")
    assert brand([["brand=a", "tags=y"], ["brand=c"], []]).tolist() == [
        [True, False, False, True], [False, False, False, False], [False] * 4]
    assert tags([["tags=y", "brand=a"], ["tags=x"]]).tolist() == [
        [False, True, False, False], [True, True, False, False]]


def test_same_scoring_weight_1_is_popular_within_the_same_value_then_popular():
    counts = np.array([50, 20, 20, 7, 3])
    shared = np.array([[False, True, True, False, True]])
    space = np.eye(5, 2, dtype=np.float32)
    q = np.array([[0.0, 1.0]], np.float32)
    got = cold_scores(q, "same:brand", 1.0, counts, space, shared=shared)
    # Sharing rows 1, 2 (tie at 20: lower row first), 4; then the rest by popularity.
    assert np.argsort(-got[0], kind="stable").tolist() == [1, 2, 4, 0, 3]
    np.testing.assert_allclose(got[0], 64 * shared[0] + np.log1p(counts))
    # Weight 0: cosine within the sharing group (row 1 is the query's direction), then outside.
    got = cold_scores(q, "same:brand", 0.0, counts, space, shared=shared)
    np.testing.assert_allclose(got[0], [0, 65, 64, 0, 64])
    assert np.argsort(-got[0], kind="stable").tolist() == [1, 2, 4, 0, 3]
    with pytest.raises(ValueError, match="shared-value mask"):
        cold_scores(q, "same:brand", 1.0, counts, space)


def test_pick_keeps_the_baseline_in_the_same_family_unless_a_blend_wins_beyond_noise():
    grid = (("space", 0.0), ("same:brand", 1.0), ("same:brand", 0.1))
    # The blend wins 2 pairs and loses 1 of 40: within a standard error -> the baseline.
    hits = np.zeros((40, 3), bool)
    hits[:20, 1] = True
    hits[1:22, 2] = True
    assert cold_choice.pick(hits, grid) == 1
    # The blend hits 20 pairs more: beyond noise -> the blend.
    hits[:, 2] = True
    assert cold_choice.pick(hits, grid) == 2


def test_choice_falls_back_to_the_baseline_where_vectors_carry_no_signal():
    # Attribute vectors are noise; next items are the most engaged item sharing the brand.
    rng = np.random.default_rng(4)
    n = 30
    brand = np.arange(n) % 3
    counts = 1 + rng.integers(0, 5, n)
    counts[:3] = 1000  # rows 0, 1, 2: the most engaged of brands 0, 1, 2
    tokens = [[f"brand={b}"] for b in brand]
    space = rng.standard_normal((n, 4)).astype(np.float32)
    q_rows = np.arange(3, n).repeat(2)
    targets = brand[q_rows]
    choice = cold_choice.choose(space[q_rows], q_rows, targets, counts, space, space, k=1,
                                item_tokens=tokens, columns=["brand"])
    assert (choice["scoring"], choice["popularity"]) == ("same:brand", 1.0)
    assert choice["validation"]["hr"]["same:brand 1"] == 1.0


def test_index_and_lookup_serve_same_scoring(planted_model, tmp_path):
    tmp, model, _ = planted_model
    m = build_index(tmp / "model", tmp_path / "same", IndexConfig(k=5, progress=False,
                                                                   n_jobs=1),
                    cold=ColdConfig(scoring="same:brand", popularity=1.0))
    assert (m["cold"]["scoring"], m["cold"]["popularity"]) == ("same:brand", 1.0)
    assert "item_attributes.parquet" in m["files"]
    related = RelatedItems.load(tmp_path / "same")
    # The cold item's row: the 5 most engaged items of its brand (its cluster), by count.
    got = [i for i, _ in related.related("c2x9", k=5)]
    counts = dict(zip(model.item_ids, model.counts.tolist()))
    brand_c2 = sorted((i for i in model.item_ids if _cluster(i) == "c2"),
                      key=lambda i: (-counts[i], model.item_ids.index(i)))
    assert got == brand_c2[:5]
    line = [r for r in (tmp / "catalog.csv").read_text().splitlines() if r.startswith("c2x9,")]
    _, _, brand, tags, price = line[0].split(",")
    found = related.related_to_attributes({"brand": brand, "tags": tags, "price": price}, 5)
    assert [i for i, _ in found] == got
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        ColdConfig(scoring="same:brand", popularity=2.0)
    with pytest.raises(ConfigError, match="cold scoring"):
        ColdConfig(scoring="same:")


# --- recent engagements: products that fade -----------------------------------------------------


def _fading(tmp):
    """3 brands of 30 items; every session stays in a brand. In the first two thirds of the log
    the hits are x0-x9 (3 clicks of a session's 4), in the last third x10-x14 (2 clicks of 4),
    so the old hits stay the most engaged over all time; x15-x28 fill the other clicks; x29 is
    never seen (cold)."""
    rng = np.random.default_rng(5)
    sessions, times = [], []
    for s in range(1200):
        b = int(rng.integers(3))
        hits, n_hits = (range(10), 3) if s < 800 else (range(10, 15), 2)
        picked = ([f"b{b}x{x}" for x in rng.choice(list(hits), n_hits, replace=False)]
                  + [f"b{b}x{x}" for x in rng.choice(range(15, 29), 4 - n_hits, replace=False)])
        sessions.append([picked[i] for i in rng.permutation(4)])
        times.append(60.0 * s)
    path = tmp / "catalog.csv"
    path.write_text("item_id,title,brand\n" + "".join(
        f"b{b}x{x},Item {x},b{b}\n" for b in range(3) for x in range(30)))
    specs = parse_attribute_specs("brand")
    attrs = CatalogAttributes.from_catalog(read_catalog(path, CatalogOptions(attributes=specs)),
                                           specs)
    return sessions, times, attrs


def test_recent_engagements_are_chosen_saved_and_used_by_index_and_lookup(tmp_path):
    sessions, times, attrs = _fading(tmp_path)
    config = TrainConfig(dim=8, window=3, epochs=3, seed=2, progress=False, workers=1)
    model = train(sessions, config, output_dir=tmp_path / "model", session_times=times,
                  attributes=(attrs, AttributeConfig(validation=0.3)))
    choice = model.manifest["attributes_training"]["cold_scoring"]
    assert choice["chosen_by"] == "validation" and choice["recency"] > 0
    assert choice["half_life"] == pytest.approx(choice["recency"] * 60.0 * 1199)
    # The old hits' all-time engagements beat the new hits', their recent ones do not.
    row = {i: r for r, i in enumerate(model.item_ids)}
    old = [row[f"b0x{x}"] for x in range(10)]
    new = [row[f"b0x{x}"] for x in range(10, 15)]
    assert model.counts[old].min() > model.counts[new].max()
    assert model.attributes.recent[new].min() > model.attributes.recent[old].max()
    loaded = Model.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.attributes.recent, model.attributes.recent)
    # The index's cold rows and the attribute lookups rank the brand's items by their recent
    # engagements (attribute vectors are the brand's alone): the new hits first.
    m = build_index(tmp_path / "model", tmp_path / "index", IndexConfig(k=5, progress=False,
                                                                         n_jobs=1))
    assert m["cold"]["recency"] == choice["recency"] and "attribute_popularity.npy" in m["files"]
    related = RelatedItems.load(tmp_path / "index")
    for b in range(3):
        found = [i for i, _ in related.related(f"b{b}x29", k=5)]
        brand = [i for i in model.item_ids if i.startswith(f"b{b}x")]
        assert found == sorted(brand, key=lambda i: -model.attributes.recent[row[i]])[:5]
        assert sum(10 <= int(i.split("x")[1]) < 15 for i in found) >= 4
        assert [i for i, _ in related.related_to_attributes({"brand": f"b{b}"}, 5)] == found
    # Options instead of the choice read all-time engagements: the old hits come back.
    m = build_index(tmp_path / "model", tmp_path / "options", IndexConfig(k=5, progress=False,
                                                                           n_jobs=1),
                    cold=ColdConfig(scoring="same:brand", popularity=1.0))
    assert m["cold"]["recency"] == 0.0
    found = [i for i, _ in RelatedItems.load(tmp_path / "options").related("b1x29", k=5)]
    assert all(int(i.split("x")[1]) < 10 for i in found)


def test_session_times_must_be_one_finite_number_per_session():
    sessions = [["a", "b"], ["b", "c"]]
    config = TrainConfig(dim=4, epochs=1, progress=False)
    for bad, message in (([0.0], "one start time per session"), ([0.0, np.nan], "finite"),
                         (["x", "y"], "numbers")):
        with pytest.raises(ConfigError, match=message):
            train(sessions, config, session_times=bad)


def test_a_sessions_dir_gives_its_start_times_in_corpus_order(tmp_path):
    import datetime as dt

    from tests.factories import write_sessions_dir

    sessions, times, attrs = _fading(tmp_path)
    order = np.random.default_rng(0).permutation(len(sessions))  # shards not in time order
    sessions = [sessions[i] for i in order]
    times = [times[i] for i in order]
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    write_sessions_dir(tmp_path / "sessions", sessions, shards=3,
                       starts=[t0 + dt.timedelta(seconds=t) for t in times])
    config = TrainConfig(dim=8, window=3, epochs=2, seed=2, progress=False, workers=1)
    options = (attrs, AttributeConfig(validation=0.3))
    from_dir = train(tmp_path / "sessions", config, attributes=options)
    in_memory = train(sessions, config, attributes=options, session_times=times)
    choice = from_dir.manifest["attributes_training"]["cold_scoring"]
    same = in_memory.manifest["attributes_training"]["cold_scoring"]
    assert choice["recency"] > 0 and choice["recency"] == same["recency"]
    assert choice["half_life"] == same["half_life"]
    assert choice["validation"]["popularity_source"] == same["validation"]["popularity_source"]
    # Each item's recent engagements (the two vocabularies may order equal counts differently).
    recent = dict(zip(in_memory.item_ids, in_memory.attributes.recent))
    np.testing.assert_allclose(from_dir.attributes.recent,
                               [recent[i] for i in from_dir.item_ids], rtol=1e-12)


def test_evaluate_cli_cold_start_reuses_the_models_settings_and_attributes(tmp_path, capsys):
    import datetime as dt

    from recommender.cli.main import main as cli
    from recommender.evaluate.cold import evaluate_cold
    from tests.factories import write_sessions_dir

    sessions, times, attrs = _fading(tmp_path)
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    write_sessions_dir(tmp_path / "sessions", sessions, shards=2,
                       starts=[t0 + dt.timedelta(seconds=t) for t in times])
    config = TrainConfig(dim=8, window=3, epochs=2, seed=2, progress=False, workers=1)
    options = AttributeConfig(validation=0.3)
    train(tmp_path / "sessions", config, output_dir=tmp_path / "model",
          attributes=(attrs, options))
    assert cli(["evaluate", "--model", str(tmp_path / "model"), "--sessions",
                str(tmp_path / "sessions"), "--cold-start", "--output",
                str(tmp_path / "eval.json")]) == 0
    assert "cold start: 20% of trained items held out entirely" in capsys.readouterr().out
    got = json.loads((tmp_path / "eval.json").read_text())["cold_start"]
    # The same as evaluate_cold on the time split (the latest 240 sessions are the test set).
    want = evaluate_cold(sessions[:960], sessions[960:], attrs, config, options,
                         train_times=times[:960])
    np.testing.assert_equal(got["results"], want["results"])  # NaN (no tail query) included
    assert got["cold_choice"] == want["cold_choice"]
    # Nothing to reuse without a model trained with attributes.
    assert cli(["evaluate", "--index", str(tmp_path / "model"), "--sessions",
                str(tmp_path / "sessions"), "--cold-start"]) == 2
    assert "--cold-start needs --model" in capsys.readouterr().err
    train(tmp_path / "sessions", config, output_dir=tmp_path / "plain")
    assert cli(["evaluate", "--model", str(tmp_path / "plain"), "--sessions",
                str(tmp_path / "sessions"), "--cold-start"]) == 2
    assert "has no catalogue attributes" in capsys.readouterr().err


def test_pair_hits_equal_ranking_each_setting_with_cold_scores_itself():
    # pair_hits shares one cosine per block across settings and masks non-candidates once per
    # scoring; the hits must be those of scoring every setting from scratch, as the index does.
    rng = np.random.default_rng(7)
    n, d = 60, 6
    space = rng.standard_normal((n, d)).astype(np.float32)
    context = rng.standard_normal((n, d)).astype(np.float32)
    counts = rng.integers(0, 20, n).astype(np.float64)
    tokens = [[f"brand=b{rng.integers(4)}", f"tags=t{rng.integers(3)}"] for _ in range(n)]
    candidates = rng.random(n) < 0.8
    q_rows = rng.choice(n, 50)
    targets = np.flatnonzero(candidates)[rng.integers(0, candidates.sum(), 50)]
    queries = (space[q_rows] + 0.5 * rng.standard_normal((50, d))).astype(np.float32)
    grid = cold_choice.grid_for(["brand", "tags"])
    shared = {c: SharedValues(tokens, c) for c in ("brand", "tags")}
    q_tokens = [tokens[r] for r in q_rows]
    got = cold_choice.pair_hits(queries, q_rows, targets, counts, space, context, k=5,
                                grid=grid, block=16, query_tokens=q_tokens, shared=shared,
                                candidates=candidates)
    for g, (scoring, weight) in enumerate(grid):
        mask = shared[scoring[5:]](q_tokens) if scoring.startswith("same:") else None
        sc = cold_scores(queries, scoring, weight, counts, space, context, mask)
        sc[:, ~candidates] = -np.inf
        sc[np.arange(50), q_rows] = -np.inf
        top = top_k_rows(sc, 5)
        np.testing.assert_array_equal(got[:, g], (top == targets[:, None]).any(axis=1))
