"""Stiefel: the conformance suite for every retraction, and the properties particular to it."""

import re

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from structjax.check import check_retraction, constraint_error
from structjax.manifolds._stiefel import RETRACTIONS, Stiefel

from . import conformance as c
from .cases import STIEFEL_ORDERS


@pytest.mark.parametrize("retraction", RETRACTIONS)
def test_measured_order(retraction):
    result = check_retraction(Stiefel(5, 3, retraction), jax.random.PRNGKey(3))
    assert result.first_order > 1.9
    if STIEFEL_ORDERS[retraction] == 2:
        assert result.second_order < 1e-12, result
    else:
        assert result.second_order > 1e-2, result  # genuinely first order


def test_bad_arguments():
    with pytest.raises(ValueError, match=re.escape("`Stiefel(n=3, p=5)` needs p <= n")):
        Stiefel(3, 5)
    with pytest.raises(ValueError, match="p >= 1"):
        Stiefel(3, 0)
    with pytest.raises(ValueError, match="choose one of"):
        Stiefel(5, 3, "householder")
    with pytest.raises(ValueError, match="cayley_iterations"):
        Stiefel(5, 3, "cayley_iterative", cayley_iterations=0)


def test_shape_mismatch():
    m = Stiefel(5, 3)
    with pytest.raises(ValueError, match=re.escape("trailing shape (5, 3)")):
        constraint_error(m, jnp.zeros((3, 5)))
    assert m.random_point(jax.random.PRNGKey(0), (2, 4)).shape == (2, 4, 5, 3)


def _point_and_tangent(m, key, scale=1.0):
    kx, kv = jax.random.split(key)
    x = m.random_point(kx, (), jnp.float64)
    v = m.random_tangent(kv, x)
    return x, scale * v / m.norm(x, v)


def test_retractions_against_dense_formulas(getkey):
    x, v = _point_and_tangent(Stiefel(6, 3), getkey(), 0.8)
    eye_n, eye_p = np.eye(6), np.eye(3)
    # polar: (X + V)(I + V^T V)^{-1/2}
    w, u = np.linalg.eigh(eye_p + np.asarray(v).T @ v)
    expected = (x + v) @ (u / np.sqrt(w)) @ u.T
    assert np.allclose(Stiefel(6, 3, "polar").retract(x, v), expected, atol=1e-13)
    # cayley: (I - W/2)^{-1} (I + W/2) X, W = P V X^T - X V^T P, P = I - X X^T / 2
    p = eye_n - 0.5 * x @ x.T
    w = p @ v @ x.T - x @ v.T @ p
    expected = np.linalg.solve(eye_n - 0.5 * w, (eye_n + 0.5 * w) @ x)
    assert np.allclose(Stiefel(6, 3, "cayley").retract(x, v), expected, atol=1e-13)
    # cholesky_qr and qr: the same Q factor (positive diagonal R)
    q = Stiefel(6, 3, "qr").retract(x, v)
    assert np.allclose(Stiefel(6, 3, "cholesky_qr").retract(x, v), q, atol=1e-13)
    r = q.T @ (x + v)
    assert np.allclose(np.tril(r, -1), 0.0, atol=1e-13) and np.all(np.diag(r) > 0)


def test_iterative_cayley_converges_to_cayley(getkey):
    x, v = _point_and_tangent(Stiefel(8, 3), getkey(), 0.5)
    exact = Stiefel(8, 3, "cayley").retract(x, v)
    errors = [
        float(
            jnp.linalg.norm(
                Stiefel(8, 3, "cayley_iterative", cayley_iterations=k).retract(x, v) - exact
            )
        )
        for k in (1, 2, 4, 8, 16, 32)
    ]
    assert all(b < a for a, b in zip(errors[:4], errors[1:5])), errors
    assert errors[-1] < 1e-13, errors


def test_polar_derivatives_at_zero(getkey):
    """The polar retraction's derivative at v = 0 (repeated eigenvalues of I + V^T V) is the
    identity, in forward and reverse mode, with no NaN."""
    m = Stiefel(5, 3, "polar")
    x, v = _point_and_tangent(m, getkey())
    zero = jnp.zeros_like(x)
    jvp = jax.jvp(lambda v: m.retract(x, v), (zero,), (v,))[1]
    assert np.allclose(jvp, v, atol=1e-13)
    w = jax.random.normal(getkey(), x.shape, x.dtype)
    g = jax.grad(lambda v: jnp.sum(w * m.retract(x, v)))(zero)
    assert np.allclose(g, w - x @ (0.5 * (x.T @ w + w.T @ x)), atol=1e-13)  # projection of w


def test_exp_is_the_geodesic(getkey):
    m = Stiefel(6, 3)
    x, v = _point_and_tangent(m, getkey(), 1.3)
    assert np.allclose(m.exp(x, jnp.zeros_like(v)), x, atol=1e-14)
    curve = lambda t: m.exp(x, t * v)  # noqa: E731
    t = jnp.asarray(0.7)
    y = curve(t)
    assert float(m.constraint_error(y)) < 1e-13
    assert np.allclose(jax.jacfwd(curve)(jnp.asarray(0.0)), v, atol=1e-13)
    # A geodesic of the embedded metric has normal acceleration everywhere.
    h = 1e-4  # central second difference: error O(h^2) + O(eps / h^2), ~1e-8
    acceleration = (curve(t + h) - 2 * y + curve(t - h)) / h**2
    assert float(jnp.linalg.norm(acceleration)) > 0.5
    assert float(jnp.linalg.norm(m.to_tangent(y, acceleration))) < 1e-6
    # p = n: the group exponential X expm(X^T V).
    sq = Stiefel(4, 4)
    x, v = _point_and_tangent(sq, getkey(), 2.0)
    expected = x @ jax.scipy.linalg.expm(x.T @ v)
    assert np.allclose(sq.exp(x, v), expected, atol=1e-12)


@pytest.mark.parametrize("retraction", RETRACTIONS)
def test_float32_long_walk(retraction):
    """10^4 retractions of a float32 random walk (steps 0.1 x standard normal tangents) never
    leave the manifold by more than 1e-5."""
    m = Stiefel(5, 3, retraction)
    error = c.float32_walk_error(m)
    assert error < 1e-5, error


@pytest.mark.parametrize("eta", [1e-9, 1e-4, 0.05, 0.2, 0.6, 3.0])
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_inv_sqrt_on_every_branch(eta, dtype):
    # `inv_sqrt` takes I - E/2 (tiny E), the binomial series (|E|_F <= 1/4) or `eigh`
    # (beyond): each must give S^{-1/2} to rounding, checked by S^{1/2} S^{-1/2} S^{1/2} = S.
    from structjax._linalg import inv_sqrt

    a = np.random.default_rng(0).standard_normal((6, 6))
    e = (a + a.T) / np.linalg.norm(a + a.T) * eta
    if eta > 0.5:  # keep S positive definite: far from I on the positive side
        e = a @ a.T / np.linalg.norm(a @ a.T) * eta
    s = jnp.asarray(np.eye(6) + e, dtype)
    g = inv_sqrt(s)
    tol = 1e-13 if dtype == jnp.float64 else 2e-6
    cond = float(jnp.linalg.cond(s))
    assert g.dtype == dtype
    assert float(jnp.max(jnp.abs(g @ s @ g - jnp.eye(6, dtype=dtype)))) < tol * cond
    # and it is differentiable on each branch (Daleckii-Krein), matching finite differences
    if dtype == jnp.float64:
        d = jnp.asarray(np.eye(6)[0:1].T @ np.eye(6)[1:2], dtype)
        d = d + d.T
        jvp = jax.jvp(inv_sqrt, (s,), (d,))[1]
        fd = (inv_sqrt(s + 1e-6 * d) - inv_sqrt(s - 1e-6 * d)) / 2e-6
        assert float(jnp.max(jnp.abs(jvp - fd))) < 1e-7


def test_manifold_products_run_at_full_precision(getkey):
    # On GPUs the default float32 product is TF32 (1e-3 relative): every product in the
    # Stiefel geometry must ask for HIGHEST precision, or points drift off the manifold.
    m = Stiefel(6, 3)
    x = m.random_point(getkey())
    v = m.random_tangent(getkey(), x)
    for fn in (m.to_tangent, m.retract, lambda x, v: m.transport(x, x, v)):
        jaxpr = jax.make_jaxpr(fn)(x, v)
        dots = [e for e in _equations(jaxpr.jaxpr) if e.primitive.name == "dot_general"]
        assert dots
        for e in dots:
            assert e.params["precision"] == (
                jax.lax.Precision.HIGHEST,
                jax.lax.Precision.HIGHEST,
            ), e


def _equations(jaxpr):
    for e in jaxpr.eqns:
        yield e
        for sub in jax.extend.core.jaxprs_in_params(e.params):
            yield from _equations(sub)
