"""Loss and gradient kernels for skip-gram and CBOW with (shared) negative sampling.

The trainer works on *groups*: a batch of ``G * b`` examples is viewed as ``G`` groups of ``b``
examples, and the ``b`` examples of a group share ``S`` negative samples (HogBatch, Ji et al. 2016).
Scoring an example against its group's negatives is then one small matrix product per group instead
of ``b * S`` separate dot products, and each shared negative carries the weight ``negative / S`` so
the expected loss and gradient equal word2vec's per-pair sampling of ``negative`` items.

For an input vector ``v`` (skip-gram: the context item; CBOW: the mean of the context items), the
positive output vector ``u`` and negatives ``n_s`` with weights ``w_s`` the loss is::

    L = pos_weight * softplus(-v.u) + sum_s w_s * softplus(v.n_s)

which is word2vec's ``-log sigmoid(v.u) - sum log sigmoid(-v.n)``. Every kernel returns the summed
loss (float64) and gradients multiplied by ``scale`` (the trainer passes ``-learning_rate`` so the
results can be added straight into the weights; tests pass 1.0 and compare with finite differences).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

# Scores are clipped here before exp(): exp(80) is finite in float32, and at |score| > 80 the
# sigmoid is 0 or 1 to float32 precision anyway, so clipping changes neither gradients nor loss.
_CLIP = 80.0


_SCRATCH = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A scratch array of the calling thread, reused by the next call with the same name and shape.

    The training step's big temporaries (gathered rows, gradients: about 2 MB for a batch of
    2,048 pairs) come from here instead of a fresh allocation per batch. Freshly allocated, they
    went through glibc's allocator, which hands blocks that size out as new pages and returns
    them to the system on free, so every batch faulted its pages in again whenever the process
    had not yet freed a large block (which raises those thresholds): 523k page faults and 1.8x
    the time in a two-process training of the dense benchmark log
    (``benchmarks/bench_page_faults.py``; issue 9). The arrays are the thread's own, so the
    prefetch thread and the training thread never share one; :func:`release_scratch` drops them.
    """
    pool = getattr(_SCRATCH, "pool", None)
    if pool is None:
        pool = _SCRATCH.pool = {}
    a = pool.get(name)
    if a is None or a.shape != shape or a.dtype != dtype:
        a = pool[name] = np.empty(shape, dtype)
    return a


def _scratch_if(reuse: bool, name: str, like: np.ndarray) -> np.ndarray | None:
    """A scratch array shaped like ``like`` when ``reuse``, else None (a ufunc's fresh output)."""
    return scratch(name, like.shape, like.dtype) if reuse else None


def release_scratch() -> None:
    """Drop the calling thread's scratch arrays (the trainer calls it when training ends)."""
    _SCRATCH.pool = {}


def sgns_coefficients(s_pos, s_neg, pos_weight, neg_weight, scale=1.0, max_exp=None,
                      reuse=False):
    """Loss and ``scale * dL/dscore`` for positive scores ``s_pos`` and negative scores ``s_neg``.

    Parameters
    ----------
    s_pos : ndarray, shape (G, b)
        Score of each example against its positive output vector.
    s_neg : ndarray, shape (G, b, S)
        Score of each example against each negative of its group.
    pos_weight : ndarray, shape (G, b)
        Weight of each example (0 for padding).
    neg_weight : ndarray, shape (G, b, S)
        Weight of each (example, negative) term: ``negative / S``, or 0 for padding and for a
        negative that happens to be the example's own positive output.
    scale : float
        Factor applied to the returned derivatives (not to the loss).
    max_exp : float, optional
        If given, terms scored beyond it on the wrong side (a positive below ``-max_exp``, a
        negative above ``max_exp``) get a zero derivative, as in gensim, whose sigmoid table ends
        at ±6 and skips them; word2vec.c and the exact gradient (None) apply the full push.
    reuse : bool
        Put ``d_neg`` and its temporary in :func:`scratch` arrays (valid until the next call).

    Returns
    -------
    loss : float
        Weighted loss summed over the batch, accumulated in float64.
    d_pos, d_neg : ndarray
        ``scale * dL/ds_pos`` and ``scale * dL/ds_neg``, same shapes as the scores.
    """
    e_pos = np.exp(-np.maximum(s_pos, -_CLIP))  # exp(-s): sigmoid(-s) = e / (1 + e)
    loss = float(np.dot(np.log1p(e_pos).ravel(), pos_weight.ravel().astype(e_pos.dtype)))
    d_pos = e_pos / (1 + e_pos)
    d_pos *= pos_weight
    d_pos *= -scale
    if max_exp:
        d_pos[s_pos <= -max_exp] = 0
    # The negatives are the big [G, b, S] arrays: few passes, in place (exp underflow to 0 is fine).
    d_neg = np.minimum(s_neg, _CLIP, out=_scratch_if(reuse, "d_neg", s_neg))
    np.exp(d_neg, out=d_neg)  # e = exp(s)
    t = np.add(d_neg, 1, out=_scratch_if(reuse, "t_neg", s_neg))
    np.divide(d_neg, t, out=d_neg)  # sigmoid(s) = e / (1 + e)
    np.log(t, out=t)  # softplus(s) = log(1 + e)
    t *= neg_weight
    loss += float(t.sum(dtype=np.float64))
    d_neg *= neg_weight
    if max_exp:
        np.putmask(d_neg, s_neg >= max_exp, 0)
    d_neg *= scale
    return loss, d_pos, d_neg


def sgns_loss_grad(v, u_pos, u_neg, pos_weight, neg_weight, scale=1.0, neg_scale=None,
                   max_exp=None, reuse=False):
    """Loss and scaled gradients of grouped negative-sampling logistic loss.

    Parameters
    ----------
    v : ndarray, shape (G, b, d)
        Input vectors (skip-gram: context items; CBOW: mean of the context).
    u_pos : ndarray, shape (G, b, d)
        Output vectors of the positive (true) items.
    u_neg : ndarray, shape (G, S, d)
        Output vectors of each group's shared negatives.
    pos_weight, neg_weight, scale, max_exp
        See :func:`sgns_coefficients`.
    reuse : bool
        Write ``grad_v`` into ``v``'s buffer and use ``u_pos``'s as scratch (both are then
        overwritten), and put the other temporaries and the output-side gradients in
        :func:`scratch` arrays, valid until the next call. The training step passes its own
        gathered copies: fewer and recycled buffers keep a batch's working set in a core's L2
        cache and its pages mapped (identical results).
    neg_scale : ndarray, shape (G, S), optional
        Factor applied to each negative row's summed update (not to the loss or the input side).
        The trainer uses it to cap how much one popular negative moves per batch (see
        ``row_update_cap`` in :mod:`recommender.train.corpus`); None gives the exact scaled
        gradients.

    Returns
    -------
    loss : float
    grad_v, grad_u_pos : ndarray, shape (G, b, d)
    grad_u_neg : ndarray, shape (G, S, d)
        Gradients of the loss times ``scale``. ``grad_u_pos`` and ``grad_u_neg`` are views of one
        contiguous [G*b + G*S, d] buffer (``grad_u_pos.base``), in the order of the scatter.
    """
    g, b, d = v.shape
    s_pos = np.einsum("gbd,gbd->gb", v, u_pos)
    s_neg = np.matmul(v, u_neg.transpose(0, 2, 1),
                      out=scratch("s_neg", (g, b, u_neg.shape[1]), v.dtype) if reuse else None)
    loss, d_pos, d_neg = sgns_coefficients(s_pos, s_neg, pos_weight, neg_weight, scale, max_exp,
                                           reuse)
    # Output-side gradients go to one buffer, [positives; negatives], ready for one scatter.
    out_shape = (g * b + u_neg.shape[0] * u_neg.shape[1], d)
    out = scratch("grad_out", out_shape, v.dtype) if reuse else np.empty(out_shape, v.dtype)
    grad_u_pos = out[: g * b].reshape(g, b, d)
    grad_u_neg = out[g * b:].reshape(u_neg.shape)
    np.multiply(d_pos[..., None], v, out=grad_u_pos)
    np.matmul(d_neg.transpose(0, 2, 1), v, out=grad_u_neg)
    if neg_scale is not None:
        grad_u_neg *= neg_scale[..., None]
    # With reuse, v and u_pos are dead from here on: grad_v goes into v, the product into u_pos.
    grad_v = np.matmul(d_neg, u_neg, out=v if reuse else None)
    grad_v += np.multiply(d_pos[..., None], u_pos, out=u_pos if reuse else None)
    return loss, grad_v, grad_u_pos, grad_u_neg


def cbow_hidden(ctx_vectors, centre_of_pair, counts):
    """Mean of the context vectors of each centre.

    Parameters
    ----------
    ctx_vectors : ndarray, shape (P, d)
        One row per (centre, context item) pair.
    centre_of_pair : ndarray of int, shape (P,)
        Row of ``counts`` (the centre) each pair belongs to.
    counts : ndarray, shape (C,)
        Number of context items of each centre (>= 1).
    """
    h = np.zeros((len(counts), ctx_vectors.shape[1]), dtype=ctx_vectors.dtype)
    np.add.at(h, centre_of_pair, ctx_vectors)  # reference version: any dtype, small inputs
    h /= counts[:, None].astype(h.dtype)
    return h


def _lanes(d: int) -> int:
    """float32 values moved per scatter element: pairs (viewed as complex64) when ``d`` is even.

    ``np.add.at`` costs per element, and complex64 addition is float32 addition on both halves, so
    scattering pairs halves the work with bit-identical results.
    """
    return 2 if d % 2 == 0 else 1


def _flat_rows(rows, d):
    """Scatter-element indices of every value of ``rows`` in a C-ordered [*, d] float32 matrix."""
    width = d // _lanes(d)
    return (np.asarray(rows, dtype=np.int64)[:, None] * width
            + np.arange(width, dtype=np.int64)).ravel()


def scatter_add(target: np.ndarray, flat: np.ndarray, values: np.ndarray) -> None:
    """``target[rows] += values`` for a C-contiguous float32 [*, d] ``target``, duplicates summed.

    ``flat`` comes from :func:`_flat_rows` (or the batch maker's equivalent).
    """
    values = np.ascontiguousarray(values, dtype=target.dtype).reshape(-1)
    if _lanes(target.shape[1]) == 2:
        np.add.at(target.view(np.complex64).reshape(-1), flat, values.view(np.complex64))
    else:
        np.add.at(target.reshape(-1), flat, values)


@dataclass
class Batch:
    """One prepared minibatch; every array is computed before the weights are touched.

    ``inp`` are the rows of the input matrix read per example (skip-gram) or per pair (CBOW),
    ``out`` the positive output rows (padded to ``G * b``), ``neg`` the shared negatives [G, S].
    ``*_flat`` are precomputed element indices for the unbuffered scatter-adds into the weights
    (``np.add.at`` on a flat view is the fastest duplicate-safe scatter numpy offers).
    """

    inp: np.ndarray
    out: np.ndarray
    neg: np.ndarray
    pos_weight: np.ndarray
    neg_weight: np.ndarray
    in_flat: np.ndarray
    out_flat: np.ndarray
    lr: float
    examples: int
    max_exp: float | None  # real (unpadded) examples: pairs for skip-gram, centres for CBOW
    centre_of_pair: np.ndarray | None = None  # CBOW only
    counts: np.ndarray | None = None  # CBOW only, padded with ones
    h_flat: np.ndarray | None = None  # CBOW only
    neg_scale: np.ndarray | None = None  # [G, S], see sgns_loss_grad


def _gather(w: np.ndarray, rows: np.ndarray, name: str) -> np.ndarray:
    """``w[rows]`` into the scratch array ``name`` (rows are vocabulary rows, always in range;
    ``mode="clip"`` because ``take`` with ``out`` and the default mode copies through a fresh
    temporary)."""
    return np.take(w, rows, axis=0, out=scratch(name, rows.shape + w.shape[1:], w.dtype),
                   mode="clip")


def apply_sgns_batch(w_in: np.ndarray, w_out: np.ndarray, batch: Batch) -> float:
    """One skip-gram SGD step on ``batch``, in place; returns the batch's summed loss."""
    g, b, s = batch.neg_weight.shape
    d = w_in.shape[1]
    v = _gather(w_in, batch.inp, "v").reshape(g, b, d)
    u_pos = _gather(w_out, batch.out, "u_pos").reshape(g, b, d)
    u_neg = _gather(w_out, batch.neg, "u_neg")
    loss, grad_v, grad_pos, grad_neg = sgns_loss_grad(
        v, u_pos, u_neg, batch.pos_weight, batch.neg_weight, -batch.lr, batch.neg_scale,
        batch.max_exp, reuse=True,
    )
    scatter_add(w_in, batch.in_flat, grad_v)
    scatter_add(w_out, batch.out_flat, grad_pos.base)
    return loss


def apply_cbow_batch(w_in: np.ndarray, w_out: np.ndarray, batch: Batch) -> float:
    """One CBOW SGD step on ``batch``, in place; returns the batch's summed loss.

    Like word2vec.c and gensim (``cbow_mean=1``), every context item receives the full gradient of
    the mean vector ``h`` rather than ``1/count`` of it.
    """
    g, b, s = batch.neg_weight.shape
    d = w_in.shape[1]
    ctx = _gather(w_in, batch.inp, "ctx")
    h = scratch("h", (g * b, d), w_in.dtype)
    h[...] = 0
    scatter_add(h, batch.h_flat, ctx)
    h /= batch.counts[:, None]
    u_pos = _gather(w_out, batch.out, "u_pos").reshape(g, b, d)
    u_neg = _gather(w_out, batch.neg, "u_neg")
    loss, grad_h, grad_pos, grad_neg = sgns_loss_grad(
        h.reshape(g, b, d), u_pos, u_neg, batch.pos_weight, batch.neg_weight, -batch.lr,
        batch.neg_scale, batch.max_exp, reuse=True,
    )
    grad_ctx = _gather(grad_h.reshape(g * b, d), batch.centre_of_pair, "ctx")  # ctx is dead
    scatter_add(w_in, batch.in_flat, grad_ctx)
    scatter_add(w_out, batch.out_flat, grad_pos.base)
    return loss
