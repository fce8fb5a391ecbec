"""Reference next-item scorers and the evaluation protocol used to calibrate ``reallike`` logs.

The protocol, as the team measured it on real logs:

* dense logs: each user's time-ordered history is one sequence; its last ``n`` items are held out
  (:func:`holdout_last`). Test pairs are the consecutive pairs of the held-out tail, *including*
  the bridge pair (last training item -> first held-out item), so ``n`` pairs per user.
* session logs: sessions starting in the last ``test_frac`` of the time span are the test part
  (:func:`time_split_sessions`); test pairs are the consecutive pairs inside test sessions.

Scorers are fitted on training sequences of integer item ids (:func:`encode`) and return a
*scoring function* ``query ids -> [len(queries), n_items]`` dense scores; :func:`top_k` turns it
into top-K lists (query excluded, ties broken by training popularity, so a query with no evidence
falls back to most-popular) and :func:`hr_at_k` scores those lists.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

Scorer = Callable[[np.ndarray], np.ndarray]


def holdout_last(seqs: Sequence[Sequence[str]], n: int = 5):
    """Split each sequence into (training prefix, held-out tail with the bridge item in front).

    Sequences no longer than ``n`` + 1 are kept whole in training (no test tail).

    Returns
    -------
    (train, tails): ``tails[j]`` is ``[last training item] + last n items`` of a long sequence, so
    :func:`next_item_pairs` on it yields the bridge pair plus the ``n - 1`` held-out pairs.
    """
    train, tails = [], []
    for s in seqs:
        s = list(s)
        if len(s) <= n + 1:
            train.append(s)
            continue
        train.append(s[:-n])
        tails.append(s[-n - 1:])
    return train, tails


def time_test_mask(start_times, test_frac: float = 0.2) -> np.ndarray:
    """bool per session: it starts in the last ``test_frac`` of the time span (the test set)."""
    t = np.asarray(start_times, dtype=np.float64)
    return t >= t.min() + (1.0 - test_frac) * (t.max() - t.min())


def time_split_sessions(sessions: Sequence[Sequence[str]], start_times, test_frac: float = 0.2):
    """(train, test) sessions: test ones start in the last ``test_frac`` of the time span."""
    test = time_test_mask(start_times, test_frac)
    return ([list(s) for s, x in zip(sessions, test) if not x],
            [list(s) for s, x in zip(sessions, test) if x])


def next_item_pairs(seqs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(queries, targets): every consecutive pair ``(s[i], s[i+1])`` of integer-id sequences."""
    q = [s[:-1] for s in seqs if len(s) > 1]
    t = [s[1:] for s in seqs if len(s) > 1]
    if not q:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(q).astype(np.int64), np.concatenate(t).astype(np.int64)


def encode(train: Sequence[Sequence[str]], *others: Sequence[Sequence[str]]):
    """Integer-id sequences for ``train`` and ``others`` over one vocabulary, and that vocabulary.

    Training items get the low ids (``0 .. n_train_items - 1``), so items seen only outside
    training have ids ``>= n_train_items`` and zero popularity.
    """
    items: dict[str, int] = {}
    out = []
    for group in (train, *others):
        enc = []
        for s in group:
            enc.append(np.fromiter((items.setdefault(x, len(items)) for x in s), np.int64, len(s)))
        out.append(enc)
    return out, list(items)


def popularity(train: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """Event count of every item in the training sequences."""
    flat = np.concatenate(train) if train else np.zeros(0, np.int64)
    return np.bincount(flat, minlength=n_items).astype(np.float64)


def _offset_pairs(train: Sequence[np.ndarray], max_offset: int):
    """Yield (d, a, b): items ``a = s[i]`` and ``b = s[i + d]`` of one sequence, for d = 1..max."""
    flat = np.concatenate(train)
    seq = np.repeat(np.arange(len(train)), [len(s) for s in train])
    for d in range(1, max_offset + 1):
        same = seq[:-d] == seq[d:]
        yield d, flat[:-d][same], flat[d:][same]


def _sparse_scorer(m: sp.spmatrix) -> Scorer:
    m = sp.csr_matrix(m)
    return lambda q: m[q].toarray()


def popular(train: Sequence[np.ndarray], n_items: int) -> Scorer:
    """No evidence at all: :func:`top_k` ranks by its popularity tie-break alone."""
    return lambda q: np.zeros((len(q), n_items))


def cooccurrence(train: Sequence[np.ndarray], n_items: int, window: int = 5) -> Scorer:
    """Symmetric counts of item pairs at most ``window`` positions apart in a sequence."""
    rows, cols = [], []
    for _, a, b in _offset_pairs(train, window):
        rows += [a, b]
        cols += [b, a]
    r, c = np.concatenate(rows), np.concatenate(cols)
    return _sparse_scorer(sp.coo_matrix((np.ones(len(r)), (r, c)), shape=(n_items, n_items)))


def sequential_rules(train: Sequence[np.ndarray], n_items: int, steps: int = 10) -> Scorer:
    """Forward-only co-occurrence: ``b`` up to ``steps`` positions after ``a`` adds 1/distance."""
    rows, cols, vals = [], [], []
    for d, a, b in _offset_pairs(train, steps):
        rows.append(a)
        cols.append(b)
        vals.append(np.full(len(a), 1.0 / d))
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    return _sparse_scorer(sp.coo_matrix((v, (r, c)), shape=(n_items, n_items)))


def ease(train: Sequence[np.ndarray], n_items: int, lam: float = 100.0) -> Scorer:
    """EASE (Steck 2019): B = I - P diag(1/diag(P)), P = (X'X + lam I)^-1, X sequence x item.

    Only items seen in training enter the (dense) Gram matrix; a query's scores are its row of B.
    """
    n_seen = int(max(s.max() for s in train if len(s))) + 1
    rows = np.repeat(np.arange(len(train)), [len(s) for s in train])
    x = sp.csr_matrix((np.ones(len(rows)), (rows, np.concatenate(train))),
                      shape=(len(train), n_seen))
    x.data[:] = 1.0  # binary: repeated items in a sequence count once
    g = (x.T @ x).toarray()
    g[np.diag_indices(n_seen)] += lam
    chol, info = lapack.dpotrf(g, lower=True)  # Cholesky inverse: half the work of LU's
    p, info2 = lapack.dpotri(chol, lower=True)
    if info or info2:
        raise np.linalg.LinAlgError(f"EASE Gram matrix is not positive definite (lam={lam})")
    p = np.tril(p) + np.tril(p, -1).T
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices(n_seen)] = 0.0

    def score(q: np.ndarray) -> np.ndarray:
        out = np.zeros((len(q), n_items))
        seen = q < n_seen
        out[seen, :n_seen] = b[q[seen]]
        return out
    return score


def embedding(w: np.ndarray, c: np.ndarray | None = None, cosine: bool = True) -> Scorer:
    """Scores from item vectors: cosine of ``w`` rows, or ``w[q] . c`` (input . output vectors).

    Rows of zeros (items the model never saw) score 0 everywhere, i.e. fall back to popularity.
    """
    if cosine:
        norm = np.linalg.norm(w, axis=1, keepdims=True)
        w = w / np.where(norm > 0, norm, 1.0)
        c = w
    return lambda q: w[q] @ c.T


def gensim_vectors(train: Sequence[np.ndarray], n_items: int, **params):
    """(W, C) of a gensim skip-gram Word2Vec on ``train``, rows indexed by our item ids.

    ``params`` override the team's calibration settings (dim 64, window 5, negative 5, ns_exponent
    .75, sample 1e-3, 5 epochs, min_count 1, 2 workers, seed 1). Needs gensim.
    """
    from gensim.models import Word2Vec

    settings = dict(vector_size=64, window=5, negative=5, ns_exponent=0.75, sample=1e-3,
                    epochs=5, min_count=1, workers=2, seed=1, sg=1)
    settings.update(params)
    model = Word2Vec([[str(i) for i in s] for s in train], **settings)
    dim = model.wv.vector_size
    w, c = np.zeros((n_items, dim), np.float32), np.zeros((n_items, dim), np.float32)
    ids = np.array([int(k) for k in model.wv.index_to_key])
    w[ids] = model.wv.vectors
    c[ids] = model.syn1neg
    return w, c


def top_k(scorer: Scorer, queries: np.ndarray, pop: np.ndarray, k: int = 10,
          chunk: int = 1024) -> np.ndarray:
    """[len(queries), k] best items per query, the query itself excluded.

    Ties (including "no evidence") are broken by training popularity: it is added scaled far
    below any score difference a scorer produces, so it only ever reorders equal scores.
    """
    uniq, inverse = np.unique(queries, return_inverse=True)
    tie = 1e-7 * pop / max(pop.max(), 1.0)
    best = np.empty((len(uniq), k), np.int64)
    for lo in range(0, len(uniq), chunk):
        q = uniq[lo:lo + chunk]
        s = scorer(q).astype(np.float64) + tie[None, :len(pop)]
        s[np.arange(len(q)), q] = -np.inf
        part = np.argpartition(-s, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
        best[lo:lo + chunk] = np.take_along_axis(part, order, axis=1)
    return best[inverse]


def hr_at_k(topk: np.ndarray, targets: np.ndarray) -> float:
    """Share of pairs whose target is in its top-K list."""
    if len(targets) == 0:
        return float("nan")
    return float((topk == targets[:, None]).any(axis=1).mean())
