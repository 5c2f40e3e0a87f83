"""`EGNNLayer` and `EGNN`: E(n) and permutation equivariance measured by the certificate, the
paper's equations against a loop-by-loop reference, exact padding, jit/vmap/grad, bad input.

Data and parameter noise come from numpy and model calls are compiled: eager JAX compiles every
primitive for every new shape, which would dominate this file's run time.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest

import structjax.check as check
from structjax.equivariant import EGNN, E, EGNNLayer, euclidean_action

from ..helpers import tree_max_abs_diff

F, H = 3, 8  # node features, hidden width


def _perturb(model, seed, scale=0.3):
    """Add noise to every parameter: O(1) weights everywhere, since the coordinate head starts
    at gain 1e-3, which would leave the coordinate update too small to test sharply."""
    rng = np.random.default_rng(seed)
    noise = lambda w: w + jnp.asarray(scale * rng.normal(size=w.shape), w.dtype)  # noqa: E731
    return jtu.tree_map(lambda w: noise(w) if eqx.is_inexact_array(w) else w, model)


def _layer(seed, n, edge_attr_size=0, dtype=None):
    layer = EGNNLayer(F, H, spatial_dim=n, edge_attr_size=edge_attr_size, dtype=dtype,
                      key=jax.random.key(seed))  # fmt: skip
    return _perturb(layer, seed)


def _stack(seed, n, dtype=None):
    model = EGNN(F, H, 2, num_layers=2, spatial_dim=n, dtype=dtype, key=jax.random.key(seed))
    return _perturb(model, seed)


def _graph(seed, num_nodes, n, edge_attr_size=0, dtype=jnp.float64):
    rng = np.random.default_rng(seed)
    h, x = rng.normal(size=(num_nodes, F)), rng.normal(size=(num_nodes, n))
    a = rng.normal(size=(num_nodes, num_nodes, edge_attr_size)) if edge_attr_size else None
    return jax.tree.map(lambda y: jnp.asarray(y, dtype), (h, x, a))


# Compiled calls: one compilation per shape instead of one per primitive in eager mode.
_apply = eqx.filter_jit(lambda f, *args: f(*args))


def _certify(f, n, graph, rep_out=euclidean_action):
    """The equivariance error of `f` over 16 random elements of E(n) (rotations, reflections
    and translations)."""
    key = jax.random.key(n)
    return check.equivariance_error(f, E(n), graph, key, rep_in=euclidean_action, rep_out=rep_out)


def _reflect_and_shift(n):
    """A fixed improper element of E(n): x -> diag(-1, 1, ...) x + (1, -2, 3, ...)."""
    g = np.eye(n + 1)
    g[0, 0], g[:n, n] = -1.0, np.arange(1, n + 1) * (-1.0) ** np.arange(n)
    return jnp.asarray(g)


@pytest.mark.parametrize("n, masked", [(2, False), (3, True)])
def test_layer_is_e_n_equivariant(n, masked):
    layer = _layer(0, n, edge_attr_size=2)
    h, x, a = _graph(1, 6, n, edge_attr_size=2)
    mask = jnp.array([True, False, True, True, False, True]) if masked else None
    f = lambda g: _apply(layer, g[0], g[1], mask, a)  # noqa: E731
    assert _certify(f, n, (h, x)) <= 1e-12
    g = _reflect_and_shift(n)  # reflections and translations for certain, not just likely
    assert (
        tree_max_abs_diff(f(euclidean_action(g, (h, x))), euclidean_action(g, f((h, x)))) <= 1e-12
    )
    # the coordinates really move (so equivariance of the update is what was measured)
    assert float(jnp.max(jnp.abs(f((h, x))[1] - x))) > 1e-2


def _outputs_and_readout(model, h, x):
    return model(h, x), model.readout(h, x)


def _with_readout(g, y):
    """E(n) on `((h_out, x_out), readout)`: the readout is invariant."""
    return euclidean_action(g, y[0]), y[1]


@pytest.mark.parametrize("n, dtype, tol", [(2, jnp.float64, 1e-12), (3, jnp.float64, 1e-12),
                                           (3, jnp.float32, 1e-5)])  # fmt: skip
def test_stack_is_e_n_equivariant_and_readout_invariant(n, dtype, tol):
    model = _stack(2, n, dtype)
    h, x, _ = _graph(3, 5, n, dtype=dtype)
    f = lambda g: _apply(_outputs_and_readout, model, *g)  # noqa: E731
    assert _certify(f, n, (h, x), _with_readout) <= tol
    g = _reflect_and_shift(n).astype(dtype)
    lhs, rhs = f(euclidean_action(g, (h, x))), _with_readout(g, f((h, x)))
    assert tree_max_abs_diff(lhs, rhs) <= 100 * tol  # (absolute; outputs are O(1)-O(10))


def _reference(layer, h, x):
    """Eqs. (3)-(6) of Satorras et al., one pair at a time, with C = 1/(M - 1)."""
    num = h.shape[0]
    hs, xs = [], []
    for i in range(num):
        agg, move = jnp.zeros(H), jnp.zeros_like(x[i])
        for j in range(num):
            if j != i:
                d2 = jnp.sum((x[i] - x[j]) ** 2)[None]
                m_ij = layer.edge_mlp(jnp.concatenate([h[i], h[j], d2]))
                agg, move = agg + m_ij, move + (x[i] - x[j]) * layer.coord_mlp(m_ij)
        hs.append(h[i] + layer.node_mlp(jnp.concatenate([h[i], agg])))
        xs.append(x[i] + move / (num - 1))
    return jnp.stack(hs), jnp.stack(xs)


def test_layer_matches_the_paper_equations():
    layer = _layer(4, 3)
    h, x, _ = _graph(5, 4, 3)
    reference = eqx.filter_jit(_reference)
    assert tree_max_abs_diff(_apply(layer, h, x), reference(layer, h, x)) <= 1e-12


def test_permutation_equivariance():
    layer, model = _layer(6, 3, edge_attr_size=2), _stack(7, 3)
    h, x, a = _graph(8, 6, 3, edge_attr_size=2)
    mask = jnp.array([True, True, False, True, True, False])
    p = np.array([3, 0, 5, 1, 4, 2])
    permuted = _apply(layer, h[p], x[p], mask[p], a[p][:, p])
    assert tree_max_abs_diff(permuted, [y[p] for y in _apply(layer, h, x, mask, a)]) <= 1e-12
    unpermuted = _apply(model, h, x)
    assert tree_max_abs_diff(_apply(model, h[p], x[p]), [y[p] for y in unpermuted]) <= 1e-12
    readout = model.readout
    assert tree_max_abs_diff(_apply(readout, h[p], x[p]), _apply(readout, h, x)) <= 1e-12


@pytest.mark.parametrize("fill", ["large", "nonfinite"])
def test_padding_is_exact(fill):
    layer, model = _layer(9, 3, edge_attr_size=2), _stack(10, 3)
    h, x, a = _graph(11, 4, 3, edge_attr_size=2)
    real = np.array([1, 4, 5, 7])  # real nodes scattered among 9
    mask = jnp.zeros(9, bool).at[real].set(True)
    hp, xp, ap = _graph(12, 9, 3, edge_attr_size=2)
    if fill == "large":
        hp, xp, ap = 1e6 * hp, 1e6 * xp, 1e6 * ap
    else:
        hp, xp, ap = hp.at[0].set(jnp.nan), xp.at[2].set(jnp.inf), ap.at[0, 1].set(jnp.nan)
    hp, xp = hp.at[real].set(h), xp.at[real].set(x)
    ap = ap.at[real[:, None], real[None, :]].set(a)

    h_out, x_out = _apply(layer, hp, xp, mask, ap)
    assert tree_max_abs_diff((h_out[real], x_out[real]), _apply(layer, h, x, None, a)) <= 1e-12
    padded = ~np.asarray(mask)
    assert np.all(h_out[padded] == 0)
    np.testing.assert_array_equal(x_out[padded], xp[padded])  # unchanged (NaN == NaN here)
    readout = model.readout
    assert tree_max_abs_diff(_apply(readout, hp, xp, mask), _apply(readout, h, x)) <= 1e-12

    # gradients with respect to the parameters ignore the padding too, and stay finite
    def loss(layer, h, x, mask, a, rows):
        h_out, x_out = layer(h, x, mask, a)
        return jnp.sum(jnp.sin(h_out[rows])) + jnp.sum(jnp.cos(x_out[rows]))

    grad = eqx.filter_jit(eqx.filter_grad(loss))
    g_pad = grad(layer, hp, xp, mask, ap, real)
    g_ref = grad(layer, h, x, None, a, np.arange(4))
    assert tree_max_abs_diff(g_pad, g_ref) <= 1e-12
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(g_pad))


@pytest.mark.parametrize("kind", ["layer", "stack"])
def test_jit_vmap_grad_without_retracing(kind):
    model = _layer(13, 3) if kind == "layer" else _stack(14, 3)
    masks = jnp.array([[True] * 5, [True, True, False, True, False], [False, True] * 2 + [True]])

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def value_and_grad(model, h, x, mask):
        def loss(model):
            h_out, x_out = jax.vmap(model)(h, x, mask)
            return jnp.sum(jnp.tanh(h_out)) + jnp.sum(jnp.sin(x_out))

        return eqx.filter_value_and_grad(loss)(model)

    for seed in (15, 16):
        h, x, _ = _graph(seed, 15, 3)
        h, x = h.reshape(3, 5, F), x.reshape(3, 5, 3)
        value, grads = value_and_grad(model, h, x, masks)
        leaves = jax.tree.leaves(eqx.filter(grads, eqx.is_inexact_array))
        assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in leaves)
        assert all(np.max(np.abs(g)) > 0 for g in leaves)
    batched = _apply(jax.vmap(model), h, x, masks)
    one = [_apply(model, h[b], x[b], masks[b]) for b in range(3)]
    assert tree_max_abs_diff(batched, jax.tree.map(lambda *ys: jnp.stack(ys), *one)) <= 1e-12


def test_bad_input(getkey):
    k = getkey()
    layer = EGNNLayer(3, 8, spatial_dim=2, key=k)
    h, x = jnp.ones((5, 3)), jnp.ones((5, 2))
    with pytest.raises(ValueError, match="h of shape \\(N, 3\\), got shape \\(5, 4\\)"):
        layer(jnp.ones((5, 4)), x)
    with pytest.raises(ValueError, match="x of shape \\(N, 2\\), got shape \\(5, 3\\)"):
        layer(h, jnp.ones((5, 3)))
    with pytest.raises(ValueError, match="h has 5 nodes .* but x has 4"):
        layer(h, jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="mask of shape \\(5,\\)"):
        layer(h, x, jnp.ones(4, bool))
    with pytest.raises(ValueError, match="edge_attr_size=0"):
        layer(h, x, None, jnp.ones((5, 5, 2)))
    with pytest.raises(ValueError, match="needs edge_attr of shape \\(5, 5, 2\\)"):
        EGNNLayer(3, 8, spatial_dim=2, edge_attr_size=2, key=k)(h, x)
    with pytest.raises(ValueError, match="EGNN\\(feature_size=3, spatial_dim=3.*x of shape"):
        EGNN(3, 8, 2, num_layers=1, spatial_dim=3, key=k)(h, x)
    with pytest.raises(ValueError, match="needs out_feature_size == feature_size"):
        EGNNLayer(3, 8, out_feature_size=4, residual=True, key=k)
    with pytest.raises(ValueError, match="hidden_size=0"):
        EGNNLayer(3, 0, key=k)
    with pytest.raises(ValueError, match="E\\(2\\) of shape \\(3, 3\\)"):
        euclidean_action(jnp.eye(4), (h, x))
    # a non-residual layer may change the feature size
    h_out, x_out = _apply(EGNNLayer(3, 8, out_feature_size=4, spatial_dim=2, key=k), h, x)
    assert h_out.shape == (5, 4) and x_out.shape == (5, 2)
