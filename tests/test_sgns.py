"""The SGNS / CBOW kernels against finite differences and a naive per-example implementation."""

import numpy as np
import pytest

from recommender.train.sgns import (
    Batch,
    _flat_rows,
    apply_cbow_batch,
    apply_sgns_batch,
    cbow_hidden,
    sgns_coefficients,
    sgns_loss_grad,
)

G, B, S, D = 2, 3, 4, 5


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(G, B, D))
    u_pos = rng.normal(size=(G, B, D))
    u_neg = rng.normal(size=(G, S, D))
    pos_w = np.array([[1.0, 1.0, 0.0], [1.0, 0.5, 1.0]])
    neg_w = rng.uniform(0, 2, size=(G, B, S))
    neg_w[0, 1, 2] = 0.0
    return v, u_pos, u_neg, pos_w, neg_w


def _numeric_grad(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f()
        x[i] = old - eps
        down = f()
        x[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


def test_coefficients_at_zero_score_are_log2_and_half():
    s_pos = np.zeros((1, 2))
    s_neg = np.zeros((1, 2, 3))
    loss, d_pos, d_neg = sgns_coefficients(s_pos, s_neg, np.ones((1, 2)), np.full((1, 2, 3), 0.5))
    assert loss == pytest.approx(np.log(2) * (2 + 6 * 0.5))
    np.testing.assert_allclose(d_pos, -0.5)
    np.testing.assert_allclose(d_neg, 0.25)


def test_extreme_scores_stay_finite():
    s = np.array([[-1e4, 1e4]], dtype=np.float32)
    loss, d_pos, d_neg = sgns_coefficients(s, s[..., None], np.ones((1, 2)), np.ones((1, 2, 1)))
    assert np.isfinite(loss) and np.isfinite(d_pos).all() and np.isfinite(d_neg).all()
    np.testing.assert_allclose(d_pos, [[-1, 0]], atol=1e-6)


@pytest.mark.parametrize("size", [1.0, 60.0])  # 60: scores in the thousands, both signs
@pytest.mark.parametrize("max_exp", [None, 6.0])
def test_attribute_input_gradient_is_the_kernels_input_gradient(size, max_exp):
    """The attribute replay's input-side-only gradient equals sgns_loss_grad's, and extreme
    scores of either sign neither overflow nor warn."""
    from recommender.train.attributes import input_gradient

    v, u_pos, u_neg, pos_w, neg_w = _problem(3)
    v, u_pos, u_neg, pos_w, neg_w = (x.astype(np.float32) for x in (v * size, u_pos * size,
                                                                    u_neg * size, pos_w, neg_w))
    with np.errstate(all="raise"):
        got = input_gradient(v, u_pos, u_neg, pos_w, neg_w, 0.025, max_exp)
    _, want, _, _ = sgns_loss_grad(v, u_pos, u_neg, pos_w, neg_w, -0.025, max_exp=max_exp)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * size)


def test_max_exp_skips_saturated_wrong_side_terms_like_gensim():
    s_pos = np.array([[-7.0, -5.0, 7.0]])
    s_neg = np.array([[[7.0], [5.0], [-7.0]]])
    _, d_pos, d_neg = sgns_coefficients(s_pos, s_neg, np.ones((1, 3)), np.ones((1, 3, 1)),
                                        max_exp=6.0)
    assert d_pos[0, 0] == 0 and d_pos[0, 1] < -0.9 and -1e-3 < d_pos[0, 2] < 0
    assert d_neg[0, 0, 0] == 0 and d_neg[0, 1, 0] > 0.9 and 0 < d_neg[0, 2, 0] < 1e-3


def test_sgns_gradients_match_finite_differences():
    v, u_pos, u_neg, pos_w, neg_w = _problem()

    def loss():
        return sgns_loss_grad(v, u_pos, u_neg, pos_w, neg_w)[0]

    _, g_v, g_pos, g_neg = sgns_loss_grad(v, u_pos, u_neg, pos_w, neg_w)
    np.testing.assert_allclose(g_v, _numeric_grad(loss, v), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(g_pos, _numeric_grad(loss, u_pos), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(g_neg, _numeric_grad(loss, u_neg), rtol=1e-6, atol=1e-8)


def test_reusing_the_input_buffers_gives_the_same_gradients_exactly():
    """``reuse=True`` (the training step's) writes grad_v into v's buffer and uses u_pos's as
    scratch; the results are bit-identical to fresh buffers."""
    v, u_pos, u_neg, pos_w, neg_w = (x.astype(np.float32) for x in _problem(4))
    want = sgns_loss_grad(v, u_pos, u_neg, pos_w, neg_w, -0.025, max_exp=6.0)
    v2, u2 = v.copy(), u_pos.copy()
    got = sgns_loss_grad(v2, u2, u_neg, pos_w, neg_w, -0.025, max_exp=6.0, reuse=True)
    assert got[0] == want[0]
    assert got[1] is v2  # grad_v lives in v's buffer
    for a, b in zip(got[1:], want[1:]):
        np.testing.assert_array_equal(a, b)


def test_scale_multiplies_gradients_not_loss():
    args = _problem()
    plain = sgns_loss_grad(*args)
    scaled = sgns_loss_grad(*args, scale=-0.1)
    assert scaled[0] == pytest.approx(plain[0])
    for a, b in zip(plain[1:], scaled[1:]):
        np.testing.assert_allclose(b, -0.1 * a)


def test_neg_scale_scales_only_the_negative_rows_update():
    v, u_pos, u_neg, pos_w, neg_w = _problem()
    neg_s = np.array([[0.5, 1.0, 0.0, 0.25], [1.0, 1.0, 1.0, 0.125]])
    loss, g_v, g_pos, g_neg = sgns_loss_grad(v, u_pos, u_neg, pos_w, neg_w)
    d_loss, d_v, d_pos, d_neg = sgns_loss_grad(v, u_pos, u_neg, pos_w, neg_w, neg_scale=neg_s)
    assert d_loss == loss
    np.testing.assert_array_equal(d_v, g_v)
    np.testing.assert_array_equal(d_pos, g_pos)
    np.testing.assert_allclose(d_neg, neg_s[..., None] * g_neg)


def test_cbow_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    centre_of_pair = np.array([0, 0, 1, 2, 2, 2, 3, 4, 5, 5])
    counts = np.bincount(centre_of_pair).astype(float)
    ctx = rng.normal(size=(len(centre_of_pair), D))
    _, u_pos, u_neg, pos_w, neg_w = _problem(2)

    def loss():
        h = cbow_hidden(ctx, centre_of_pair, counts).reshape(G, B, D)
        return sgns_loss_grad(h, u_pos, u_neg, pos_w, neg_w)[0]

    h = cbow_hidden(ctx, centre_of_pair, counts)
    np.testing.assert_allclose(h[2], ctx[3:6].mean(axis=0))
    _, g_h, g_pos, g_neg = sgns_loss_grad(h.reshape(G, B, D), u_pos, u_neg, pos_w, neg_w)
    g_ctx = g_h.reshape(G * B, D)[centre_of_pair] / counts[centre_of_pair, None]
    np.testing.assert_allclose(g_ctx, _numeric_grad(loss, ctx), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(g_pos, _numeric_grad(loss, u_pos), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(g_neg, _numeric_grad(loss, u_neg), rtol=1e-6, atol=1e-8)


def _batch(inp, out, neg, lr, d, **extra):
    g, s = neg.shape
    b = len(out) // g
    pos_w = np.ones((g, b), np.float32)
    neg_w = np.full((g, b, s), 0.5, np.float32)
    rows = np.concatenate([out, neg.ravel()])
    return Batch(inp, out, neg, pos_w, neg_w, _flat_rows(inp, d), _flat_rows(rows, d), lr,
                 len(out), None, **extra)


def _sig(x):
    return 1 / (1 + np.exp(-x))


def test_sgns_step_sums_duplicate_rows_like_a_naive_loop():
    rng = np.random.default_rng(3)
    d = 4
    w_in = rng.normal(size=(6, d)).astype(np.float32)
    w_out = rng.normal(size=(6, d)).astype(np.float32)
    inp = np.array([1, 1, 2, 3], np.int32)  # row 1 twice
    out = np.array([2, 4, 4, 1], np.int32)  # row 4 twice; row 1 also an output
    neg = np.array([[4, 5]], np.int32)  # row 4 as negative too
    lr = 0.1
    exp_in, exp_out = w_in.astype(np.float64), w_out.astype(np.float64)
    new_in, new_out = exp_in.copy(), exp_out.copy()
    for i, o in zip(inp, out):  # all gradients from the old weights, then summed
        v, u = exp_in[i], exp_out[o]
        g = _sig(v @ u) - 1
        new_in[i] -= lr * g * u
        new_out[o] -= lr * g * v
        for n in neg[0]:
            gn = 0.5 * _sig(v @ exp_out[n])
            new_in[i] -= lr * gn * exp_out[n]
            new_out[n] -= lr * gn * v
    apply_sgns_batch(w_in, w_out, _batch(inp, out, neg, lr, d))
    np.testing.assert_allclose(w_in, new_in, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w_out, new_out, rtol=1e-5, atol=1e-6)


def test_cbow_step_gives_each_context_the_full_hidden_gradient():
    rng = np.random.default_rng(4)
    d = 3
    w_in = rng.normal(size=(5, d)).astype(np.float32)
    w_out = rng.normal(size=(5, d)).astype(np.float32)
    ctx = np.array([1, 2, 2, 3], np.int32)  # centre 0 has contexts 1, 2; centre 1 has 2, 3
    local = np.array([0, 0, 1, 1])
    out = np.array([0, 4], np.int32)
    neg = np.array([[3]], np.int32)
    lr = 0.05
    old_in, old_out = w_in.astype(np.float64), w_out.astype(np.float64)
    new_in, new_out = old_in.copy(), old_out.copy()
    for c in range(2):
        members = ctx[local == c]
        h = old_in[members].mean(axis=0)
        g = _sig(h @ old_out[out[c]]) - 1
        gh = g * old_out[out[c]]
        new_out[out[c]] -= lr * g * h
        gn = 0.5 * _sig(h @ old_out[3])
        gh += gn * old_out[3]
        new_out[3] -= lr * gn * h
        for m in members:
            new_in[m] -= lr * gh
    batch = _batch(ctx, out, neg, lr, d, centre_of_pair=local,
                   counts=np.array([2, 2], np.float32), h_flat=_flat_rows(local, d))
    apply_cbow_batch(w_in, w_out, batch)
    np.testing.assert_allclose(w_in, new_in, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w_out, new_out, rtol=1e-5, atol=1e-6)
