"""The Riemannian optimisers reach known optima on the matrix manifolds."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import structjax.manifolds as sm
import structjax.nn as snn
import structjax.optim as so

from .loop import run


def _run(opt, f, x, steps):
    return run(opt, f, x, steps)[0]


def _spd_matrix(key, n, k):
    """A symmetric matrix with a clear gap after its top k eigenvalues."""
    q, _ = jnp.linalg.qr(jr.normal(key, (n, n)))
    w = jnp.concatenate([jnp.linspace(5.0, 3.0, k), jnp.linspace(1.0, 0.1, n - k)])
    return (q * w) @ q.T


@pytest.mark.parametrize(
    "manifold",
    [
        sm.Stiefel(12, 3),
        sm.Stiefel(12, 3, "polar"),
        sm.Stiefel(12, 3, "cholesky_qr"),
        sm.Stiefel(12, 3, "cayley"),
        sm.Grassmann(12, 3),
    ],  # fmt: skip
    ids=["stiefel-qr", "stiefel-polar", "stiefel-cholesky_qr", "stiefel-cayley", "grassmann"],
)
def test_leading_eigenspace(manifold, getkey):
    """max tr(X^T A X) over orthonormal X spans the top-3 eigenvectors (compare eigh)."""
    a = _spd_matrix(getkey(), 12, 3)
    x = _run(so.riemannian_adam(0.02, manifolds=manifold), lambda x: -jnp.trace(x.T @ a @ x),
             manifold.random_point(getkey()), 3000)  # fmt: skip
    top = jnp.linalg.eigh(a)[1][:, -3:]
    # Same subspace: the projectors agree.
    assert np.allclose(x @ x.T, top @ top.T, atol=1e-6)
    assert float(manifold.constraint_error(x)) < 1e-12


def test_orthogonal_procrustes(getkey):
    """min |Q A - B|_F over O(n) is U V^T from the SVD of B A^T."""
    n = 5
    a, b = jr.normal(getkey(), (n, 20)), jr.normal(getkey(), (n, 20))
    manifold = sm.Orthogonal(n)
    u, _, vt = jnp.linalg.svd(b @ a.T)
    best = u @ vt
    q0 = manifold.random_point(getkey())
    # O(n) has two components and a retraction never leaves one: start in best's.
    q0 = q0.at[:, 0].multiply(jnp.sign(jnp.linalg.det(q0) * jnp.linalg.det(best)))
    opt = so.riemannian_sgd(0.005, momentum=0.9, manifolds=manifold)
    q = _run(opt, lambda q: jnp.sum((q @ a - b) ** 2), q0, 4000)
    assert np.allclose(q, best, atol=1e-6)


def test_karcher_mean_of_spd_matrices(getkey):
    """The Riemannian gradient of sum_i d(X, A_i)^2 vanishes at the mean; for two matrices
    the mean is the geodesic midpoint A # B."""
    spd = sm.SymmetricPositiveDefinite(3)
    a, b = spd.random_point(getkey(), (2,))

    def f(x):
        return jnp.sum(spd.distance(x, jnp.stack([a, b])) ** 2)

    x = _run(so.riemannian_sgd(0.1, manifolds=spd), f, spd.random_point(getkey()), 300)
    w, v = jnp.linalg.eigh(a)
    a_half, a_mhalf = (v * jnp.sqrt(w)) @ v.T, (v / jnp.sqrt(w)) @ v.T
    w2, v2 = jnp.linalg.eigh(a_mhalf @ b @ a_mhalf)
    midpoint = a_half @ ((v2 * jnp.sqrt(w2)) @ v2.T) @ a_half
    assert np.allclose(x, midpoint, atol=1e-8)


def test_orthogonal_linear_layer(getkey):
    """An isometry when out >= in, 1-Lipschitz otherwise; trained through manifolds_of."""
    import equinox as eqx

    wide = snn.OrthogonalLinear(4, 7, key=getkey())
    x = jr.normal(getkey(), (4,))
    assert float(jnp.linalg.norm(wide.matrix @ x)) == pytest.approx(float(jnp.linalg.norm(x)))
    narrow = snn.OrthogonalLinear(7, 3, use_bias=False, key=getkey())
    assert np.allclose(jnp.linalg.svd(narrow.matrix, compute_uv=False), 1.0)
    with pytest.raises(ValueError, match="positive sizes|needs in_features >= 1"):
        snn.OrthogonalLinear(0, 3, key=getkey())

    target = sm.Stiefel(7, 3).random_point(getkey()).T  # a (3, 7) co-isometry
    xs = jr.normal(getkey(), (128, 7))
    params, static = eqx.partition(narrow, eqx.is_inexact_array)

    def loss(params):
        model = eqx.combine(params, static)
        return jnp.mean((jax.vmap(model)(xs) - xs @ target.T) ** 2)

    opt = so.riemannian_adam(0.02, manifolds=sm.manifolds_of(params))
    params = _run(opt, loss, params, 1500)
    trained = eqx.combine(params, static)
    assert np.allclose(trained.matrix, target, atol=1e-5)
    assert float(sm.Stiefel(7, 3).constraint_error(params.weight.value)) < 1e-12


@pytest.mark.parametrize("make", [so.cayley_sgd, so.cayley_adam], ids=["cayley_sgd", "cayley_adam"])
@jax.numpy_dtype_promotion("standard")  # optax schedules mix int and float
def test_cayley_optimisers_find_the_leading_eigenspace(make, getkey):
    manifold = sm.Stiefel(12, 3)
    a = _spd_matrix(getkey(), 12, 3)
    # Adam's normalised step needs a decaying rate to settle (b2 = 0.99 as in Li et al.).
    lr = 0.05 if make is so.cayley_sgd else optax.cosine_decay_schedule(0.02, 3000)
    x = _run(make(lr, manifolds=manifold), lambda x: -jnp.trace(x.T @ a @ x),
             manifold.random_point(getkey()), 3000)  # fmt: skip
    top = jnp.linalg.eigh(a)[1][:, -3:]
    assert np.allclose(x @ x.T, top @ top.T, atol=1e-6)
    assert float(manifold.constraint_error(x)) < 1e-12


def test_cayley_generator_norm_matches_the_dense_matrix(getkey):
    from structjax.optim._cayley import _cayley_generator_norm

    x = sm.Stiefel(7, 3).random_point(getkey())
    u = jr.normal(getkey(), (7, 3))
    w_hat = u @ x.T - 0.5 * x @ (x.T @ u @ x.T)
    assert float(_cayley_generator_norm(x, u)) == pytest.approx(
        float(jnp.linalg.norm(w_hat - w_hat.T)), rel=1e-12
    )


def test_cayley_optimisers_refuse_other_manifolds():
    with pytest.raises(ValueError, match="Cayley optimisers"):
        so.cayley_sgd(0.1, manifolds=sm.Sphere(3))


def test_orthogonal_linear_dtype(getkey):
    layer = snn.OrthogonalLinear(5, 3, dtype=jnp.float32, key=getkey())
    assert layer.weight.value.dtype == layer.bias.dtype == jnp.float32
    assert layer(jnp.ones(5, jnp.float32)).dtype == jnp.float32
