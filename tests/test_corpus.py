"""Vocabulary, tokenising, subsampling and (centre, context) pair generation."""

import subprocess
import sys
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from recommender.core.errors import TrainingError
from recommender.train import corpus as corpus_module
from recommender.train.corpus import BatchMaker, Corpus, alias_table
from recommender.train.trainer import TrainConfig
from tests.factories import write_sessions_dir


def _pairs(sessions, batch_size=256, **kw):
    """All (input, output) id pairs of one epoch, as strings, in order."""
    config = TrainConfig(sample=0, progress=False, **kw)
    corpus = Corpus(sessions, config.min_count)
    maker = BatchMaker(config, corpus.vocab, 4, batch_size, 4, 2)
    ids = corpus.vocab.item_ids
    got = []
    for tokens, lengths in corpus.chunks():
        for b in maker.batches(tokens, lengths, np.random.default_rng(0), lambda f: 0.01):
            got += [(ids[i], ids[o]) for i, o in zip(b.inp[:b.examples], b.out[:b.examples])]
    return got


def test_vocab_orders_by_count_then_id_and_applies_min_count():
    corpus = Corpus([["b", "a", "c", "a"], ["c", "d"], ["a"]], min_count=2)
    assert corpus.vocab.item_ids == ["a", "c"]
    assert corpus.vocab.counts.tolist() == [3, 2]
    assert corpus.raw_tokens == 5
    assert [t.tolist() for t, _ in corpus.chunks()] == [[0, 1, 0, 1, 0]]
    assert [n.tolist() for _, n in corpus.chunks()] == [[3, 1, 1]]


def test_min_count_leaving_nothing_says_what_to_do():
    with pytest.raises(TrainingError, match="min-count"):
        Corpus([["a", "b"]], min_count=5)


def test_fixed_window_gives_every_pair_within_distance():
    got = _pairs([["a", "b", "c", "d"], ["e", "f"]], window=2, shrink_window=False)
    # input = context item, output = centre item (word2vec's orientation)
    expected = [("b", "a"), ("c", "a"), ("a", "b"), ("c", "b"), ("d", "b"), ("a", "c"),
                ("b", "c"), ("d", "c"), ("b", "d"), ("c", "d"), ("f", "e"), ("e", "f")]
    assert got == expected


def test_window_zero_is_the_whole_session():
    got = _pairs([["a", "b", "c", "d", "e", "f", "g"]], window=0)
    assert len(got) == 7 * 6
    assert Counter(got)[("g", "a")] == 1


def test_shrunk_windows_are_a_subset_within_the_window():
    session = [f"i{k:02d}" for k in range(40)]
    got = _pairs([session], window=3)
    assert all(0 < abs(int(i[1:]) - int(o[1:])) <= 3 for i, o in got)
    full = _pairs([session], window=3, shrink_window=False)
    assert set(got) < set(full) and len(got) < len(full)


def test_long_sessions_are_not_truncated():
    session = [f"i{k}" for k in range(12_000)]
    got = _pairs([session], batch_size=4096, window=1, shrink_window=False)
    assert len(got) == 2 * (12_000 - 1)
    assert ("i11998", "i11999") in set(got)


def test_subsampling_follows_word2vec_formula():
    sessions = [["pop"] * 98 + ["r1", "r2"]] * 10
    config = TrainConfig(sample=0.01, progress=False)
    corpus = Corpus(sessions)
    maker = BatchMaker(config, corpus.vocab, 4, 256, 4, 2)
    threshold = 0.01 * 1000
    pop = (np.sqrt(980 / threshold) + 1) * threshold / 980
    assert maker.keep.tolist() == pytest.approx([pop, 1.0, 1.0])


def test_negatives_follow_unigram_to_the_power():
    corpus = Corpus([["a"] * 16 + ["b"]])
    for exponent, p_b in ((0.75, 1 / (16**0.75 + 1)), (0.0, 0.5), (-1.0, 1 / (1 / 16 + 1))):
        maker = BatchMaker(TrainConfig(ns_exponent=exponent), corpus.vocab, 4, 256, 4, 2)
        assert maker.noise.tolist() == pytest.approx([1 - p_b, p_b])


def _alias_distribution(prob, alias):
    """The exact distribution an alias table draws from."""
    n = len(prob)
    p = prob / n
    np.add.at(p, alias, (1 - prob) / n)
    return p


_ZIPF = np.arange(1, 301) ** -0.75


@pytest.mark.parametrize("p", [[1.0], [0.5, 0.5], [0.7, 0.2, 0.1], [0.0, 0.25, 0.75],
                               list(_ZIPF / _ZIPF.sum())])
def test_alias_table_gives_exactly_the_distribution(p):
    prob, alias = alias_table(np.array(p))
    assert ((prob >= 0) & (prob <= 1)).all() and alias.dtype == np.int32
    assert _alias_distribution(prob, alias) == pytest.approx(p, rel=1e-12, abs=1e-15)


def test_alias_table_known_answer():
    # slots of 0.7, 0.2, 0.1 (x3): item 2 keeps 0.3 of its slot and lends 0.7 to item 0, item 1
    # keeps 0.6 and lends 0.4 to item 0 (2.1 - 0.7 - 0.4 = 1.0 left for item 0's own slot)
    prob, alias = alias_table(np.array([0.7, 0.2, 0.1]))
    assert prob.tolist() == pytest.approx([1.0, 0.6, 0.3])
    assert alias.tolist()[1:] == [0, 0]


def test_negative_draws_follow_the_noise_distribution():
    corpus = Corpus([["a"] * 40 + ["b"] * 9 + ["c"] * 3 + ["d"]])
    maker = BatchMaker(TrainConfig(ns_exponent=0.75), corpus.vocab, 4, 256, 4, 2)
    draws = maker._negatives(np.random.default_rng(0), (200, 1000))
    assert draws.dtype == np.int32 and draws.shape == (200, 1000)
    freq = np.bincount(draws.ravel(), minlength=4) / draws.size
    # 200k draws: a standard error of at most 0.0011 per item
    assert freq == pytest.approx(maker.noise, abs=0.005)


def test_reads_a_sessions_dir_in_streamed_chunks(tmp_path):
    sessions = [["x", "y", "z"], ["y", "y2"], ["z", "x", "q"]]
    write_sessions_dir(tmp_path / "s", sessions, shards=2)
    from_dir = Corpus(tmp_path / "s", min_count=2)
    assert from_dir.vocab.item_ids == ["x", "y", "z"]  # y2 and q are under min_count
    assert from_dir.sessions == 3 and from_dir.raw_tokens == 6
    tokens = np.concatenate([t for t, _ in from_dir.chunks()])
    lengths = np.concatenate([n for _, n in from_dir.chunks()])
    assert tokens.tolist() == [0, 1, 2, 1, 2, 0] and lengths.tolist() == [3, 1, 2]
    from_list = Corpus(sessions, min_count=2)
    assert from_list.vocab.digest() == from_dir.vocab.digest()



def _assert_every_window_2_pair_once_and_no_centre_twice(batches, n_items):
    """The batches of one session of ``n_items`` distinct items, window 2: every (context,
    centre) pair exactly once, and no batch with two pairs of one centre."""
    seen = []
    for b in batches:
        centres = b.out[:b.examples].tolist()
        assert len(set(centres)) == len(centres)
        seen += zip(b.inp[:b.examples].tolist(), centres)
    expected = [(c, o) for o in range(n_items)
                for c in range(max(0, o - 2), min(n_items, o + 3)) if c != o]
    assert sorted(seen) == sorted(expected)

def test_skipgram_batches_deal_pairs_round_robin():
    # 12 distinct items in one session, window 2 without shrinking: 42 pairs; batches of 8 pairs
    # make 6 batches of every 6th pair, so no batch holds two pairs of one centre (word2vec
    # updates a row between them), and together they hold every pair once.
    config = TrainConfig(sample=0, window=2, shrink_window=False, progress=False)
    corpus = Corpus([[f"i{k:02d}" for k in range(12)]], 1)
    maker = BatchMaker(config, corpus.vocab, 4, 8, 4, 2)
    tokens, lengths = next(corpus.chunks())
    batches = list(maker.batches(tokens, lengths, np.random.default_rng(0), lambda f: f))
    assert [b.examples for b in batches] == [7] * 6
    assert [b.lr for b in batches] == [(r + 1) / 6 for r in range(6)]
    _assert_every_window_2_pair_once_and_no_centre_twice(batches, 12)


def test_big_chunks_are_dealt_in_parts_each_round_robin(monkeypatch):
    # 38 pairs (centres with 2, 3, 4 x 7, 3, 2 pairs) dealt about 16 at a time: 3 deals of
    # consecutive centres, cut after the centre passing 38/3 and 2 x 38/3 pairs (13, 16 and 9
    # pairs), each round-robin to batches of at most 2 pairs; every pair exactly once, no batch
    # with two pairs of one centre, and the learning rate follows the share of pairs done.
    monkeypatch.setattr(corpus_module, "DEAL_PAIRS", 16)
    config = TrainConfig(sample=0, window=2, shrink_window=False, progress=False)
    corpus = Corpus([[f"i{k:02d}" for k in range(11)]], 1)
    maker = BatchMaker(config, corpus.vocab, 4, 2, 4, 2)
    tokens, lengths = next(corpus.chunks())
    batches = list(maker.batches(tokens, lengths, np.random.default_rng(0), lambda f: f))
    assert [b.examples for b in batches] == [2] * 6 + [1] + [2] * 8 + [2, 2, 2, 2, 1]
    assert [b.lr for b in batches] == pytest.approx(
        [(r + 1) / 7 * 13 / 38 for r in range(7)] + [(13 + (r + 1) * 2) / 38 for r in range(8)]
        + [(29 + (r + 1) / 5 * 9) / 38 for r in range(5)])
    _assert_every_window_2_pair_once_and_no_centre_twice(batches, 11)


def test_in_memory_ids_that_are_not_strings_count_as_their_str():
    corpus = Corpus([[1, 2, 2], [np.int64(2), "1", 3.5]], 1)
    assert corpus.vocab.item_ids == ["2", "1", "3.5"] and corpus.vocab.counts.tolist() == [3, 2, 1]
    tokens, lengths = next(corpus.chunks())
    assert tokens.tolist() == [1, 0, 0, 0, 1, 2] and lengths.tolist() == [3, 3]


def test_vocab_counts_merged_across_chunks_keep_python_order(monkeypatch, tmp_path):
    # Tiny chunks and merges after a few ids: the Arrow merge/sort must give Counter + sorted's
    # vocabulary exactly (count descending, then id in code-point order, non-ASCII included).
    monkeypatch.setattr(corpus_module, "CHUNK_SESSIONS", 2)
    monkeypatch.setattr(corpus_module._IdCounts, "MERGE_IDS", 3)
    sessions = [["é", "b", "a"], ["日本", "a"], ["Z", "é", "b"], ["a b", "ß", "é"], ["b", ""],
                ["ß", "Z"], ["é"]]
    counts = Counter(i for s in sessions for i in s)
    for min_count in (1, 2, 3):
        expected = sorted((-n, i) for i, n in counts.items() if n >= min_count)
        rows = {i: r for r, (_, i) in enumerate(expected)}
        for source in (sessions, tmp_path / f"s{min_count}"):
            if not isinstance(source, list):
                write_sessions_dir(source, sessions, shards=3)
            corpus = Corpus(source, min_count=min_count)
            assert corpus.vocab.item_ids == [i for _, i in expected]
            assert corpus.vocab.counts.tolist() == [-n for n, _ in expected]
            tokens = np.concatenate([t for t, _ in corpus.chunks()])
            lengths = np.concatenate([n for _, n in corpus.chunks()])
            assert tokens.dtype == np.int32
            assert tokens.tolist() == [rows[i] for s in sessions for i in s if i in rows]
            assert lengths.tolist() == [sum(i in rows for i in s) for s in sessions]


def test_none_item_ids_in_memory_are_refused_with_where():
    with pytest.raises(TrainingError, match=r"1 item id\(s\) are None in sessions 0\.\.1"):
        Corpus([["a", "b"], ["a", None]], 1)


def test_vocab_counts_accept_large_string_chunks():
    counted = corpus_module._IdCounts()
    counted.add(pa.array(["b", "a"], pa.large_string()), np.array([1, 2]))
    counted.add(pa.array(["a", "c"], pa.string()), np.array([1, 1]))
    vocab = counted.vocab(1)
    assert vocab.item_ids == ["a", "b", "c"] and vocab.counts.tolist() == [3, 1, 1]


def test_scatter_indices_from_the_small_catalogue_table_equal_the_computed_ones():
    corpus = Corpus([[f"i{k}" for k in range(50)] * 3])
    maker = BatchMaker(TrainConfig(), corpus.vocab, 6, 256, 4, 2)
    assert maker._table is not None  # 50 items x 3 lanes: far below FLAT_TABLE_BYTES
    rows = np.array([0, 49, 7, 7, 0], dtype=np.int32)
    expected = (rows.astype(np.int64)[:, None] * 3 + np.arange(3)).ravel()
    assert maker._flat(rows).tolist() == expected.tolist()
    # rows of another matrix (CBOW's per-batch means) may exceed the vocabulary
    local = np.array([0, 120, 3])
    assert maker._flat(local, False).tolist() == [0, 1, 2, 360, 361, 362, 9, 10, 11]
    maker._table = None
    assert maker._flat(rows).tolist() == expected.tolist()


def test_building_a_vocabulary_does_not_import_arrow_query_engine_or_numpy_ma():
    """Arrow's group_by (acero, dataset), ``pa.array`` of a numpy array (numpy.ma) and compute
    calls with Python scalars (dateutil) import ~35 ms of modules on first use, a fixed cost of
    every training run; the vocabulary is built without them."""
    code = ("import sys; from recommender.train.corpus import Corpus; "
            "Corpus([['a', 'b'], ['b', 'c']], 1); "
            "print(sorted(m for m in ('pyarrow.acero', 'pyarrow.dataset', 'numpy.ma', "
            "'dateutil') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_sorted_distinct_is_unique_of_a_sorted_array():
    from recommender.train.corpus import sorted_distinct

    for a in ([0, 0, 3, 3, 3, 7, 9, 9], [5], [], [1, 2, 3], [4, 4, 4]):
        a = np.array(a, dtype=np.int64)
        assert sorted_distinct(a).tolist() == np.unique(a).tolist()


@pytest.mark.parametrize("setting", ["processes=2", "architecture='cbow'"])
def test_training_does_not_import_numpy_ma(setting):
    """``np.unique``'s first call imports numpy.ma (~6 ms of every training run); the units of
    several processes and CBOW's batch bounds are cut without it."""
    code = ("import sys; from recommender.train.trainer import TrainConfig, train; "
            "s = [[str(i % 7), str(i % 5), str(i % 3)] * 3 for i in range(60)]; "
            f"train(s, TrainConfig(dim=8, epochs=2, progress=False, {setting})); "
            "print('numpy.ma' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
