"""SymmetricPositiveDefinite: conformance for every metric, and the geometry it promises."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from structjax.check import constraint_error
from structjax.manifolds._spd import SymmetricPositiveDefinite, _logm, _sqrtm


def _point_and_unit_tangent(m, key, shape=()):
    k1, k2 = jax.random.split(key)
    x = m.random_point(k1, shape, jnp.float64)
    v = m.random_tangent(k2, x)
    return x, v / m.norm(x, v)[..., None, None]


@pytest.mark.parametrize("metric", ["affine", "log_euclidean", "bures_wasserstein"])
def test_second_order_retraction(metric, getkey):
    """|R_x(tv) - Exp_x(tv)| = O(t^3): the log-log slope is 3 (exp retractions: ~0)."""
    m = SymmetricPositiveDefinite(4, metric)
    x, v = _point_and_unit_tangent(m, getkey())
    ts = np.array([1e-3, 3e-3, 1e-2, 3e-2])
    errs = np.array([float(jnp.linalg.norm(m.retract(x, t * v) - m.exp(x, t * v))) for t in ts])
    if metric == "affine":
        slope = np.polyfit(np.log(ts), np.log(errs), 1)[0]
        assert 2.9 < slope < 3.1, (slope, errs)
    else:
        assert errs.max() < 1e-13


def test_exp_is_geodesic(getkey):
    """d(X, Exp_X(tV)) = t |V|_X along the affine geodesic, for long steps too."""
    m = SymmetricPositiveDefinite(4)
    x, v = _point_and_unit_tangent(m, getkey(), (2,))
    for t in (0.1, 1.0, 3.0):
        np.testing.assert_allclose(m.distance(x, m.exp(x, t * v)), t, rtol=1e-10)


def test_affine_invariance(getkey):
    """d(A X A^T, A Y A^T) = d(X, Y) and the metric is invariant under congruence."""
    m = SymmetricPositiveDefinite(4)
    x, y = m.random_point(getkey(), (3,)), m.random_point(getkey(), (3,))
    a = jax.random.normal(getkey(), (3, 4, 4), jnp.float64)

    def cong(z):
        return a @ z @ jnp.swapaxes(a, -1, -2)

    np.testing.assert_allclose(m.distance(cong(x), cong(y)), m.distance(x, y), rtol=1e-9)
    v = m.random_tangent(getkey(), x)
    np.testing.assert_allclose(m.inner(cong(x), cong(v), cong(v)), m.inner(x, v, v), rtol=1e-9)


def test_karcher_mean_of_two(getkey):
    """The geodesic midpoint Exp_X(Log_X(Y)/2) is X^{1/2}(X^{-1/2} Y X^{-1/2})^{1/2} X^{1/2},
    halves the distance, and zeroes the gradient of d^2(., X) + d^2(., Y)."""
    m = SymmetricPositiveDefinite(4)
    x, y = m.random_point(getkey(), (2,)), m.random_point(getkey(), (2,))
    mid = m.exp(x, 0.5 * m.log(x, y))
    xh = _sqrtm(x)
    xih = jnp.linalg.inv(xh)
    closed = xh @ _sqrtm(xih @ y @ xih) @ xh
    np.testing.assert_allclose(mid, closed, atol=1e-10)
    np.testing.assert_allclose(m.distance(x, mid), 0.5 * m.distance(x, y), rtol=1e-10)
    np.testing.assert_allclose(m.distance(mid, y), 0.5 * m.distance(x, y), rtol=1e-10)
    grad = -2 * (m.log(mid, x) + m.log(mid, y))  # Riemannian gradient of the Karcher cost
    assert float(jnp.max(m.norm(mid, grad))) < 1e-9


def test_log_euclidean_distance(getkey):
    m = SymmetricPositiveDefinite(3, "log_euclidean")
    x, y = m.random_point(getkey(), (2,)), m.random_point(getkey(), (2,))
    expected = jnp.linalg.norm(_logm(x) - _logm(y), axis=(-2, -1))
    np.testing.assert_allclose(m.distance(x, y), expected, rtol=1e-12)
    np.testing.assert_allclose(m.norm(x, m.log(x, y)), expected, rtol=1e-10)


def test_bures_wasserstein_distance(getkey):
    """The difference form equals tr X + tr Y - 2 tr (X^{1/2} Y X^{1/2})^{1/2}, and
    |Log_X Y|_X = d(X, Y) within the injectivity domain."""
    m = SymmetricPositiveDefinite(3, "bures_wasserstein")
    x, y = m.random_point(getkey(), (3,)), m.random_point(getkey(), (3,))
    xh = _sqrtm(x)
    d2 = jnp.trace(x, axis1=-2, axis2=-1) + jnp.trace(y, axis1=-2, axis2=-1)
    d2 = d2 - 2 * jnp.trace(_sqrtm(xh @ y @ xh), axis1=-2, axis2=-1)
    np.testing.assert_allclose(m.distance(x, y), jnp.sqrt(d2), rtol=1e-10)
    np.testing.assert_allclose(m.norm(x, m.log(x, y)), m.distance(x, y), rtol=1e-10)
    np.testing.assert_allclose(m.exp(x, m.log(x, y)), y, atol=1e-10)


def test_matrix_function_derivative_at_repeated_eigenvalues():
    """Daleckii–Krein: D log(I)[E] = E and D sqrt(I)[E] = E/2, finite where eigh's is not."""
    e = jnp.array([[1.0, 2.0, 0.0], [2.0, -1.0, 0.5], [0.0, 0.5, 3.0]])
    eye = jnp.eye(3)
    _, dlog = jax.jvp(_logm, (eye,), (e,))
    _, dsqrt = jax.jvp(_sqrtm, (eye,), (e,))
    np.testing.assert_allclose(dlog, e, atol=1e-14)
    np.testing.assert_allclose(dsqrt, e / 2, atol=1e-14)
    g = jax.grad(lambda x: jnp.sum(_logm(x) * e))(eye)
    np.testing.assert_allclose(g, e, atol=1e-14)


def test_project_restores_positive_definiteness(getkey):
    m = SymmetricPositiveDefinite(3)
    a = jax.random.normal(getkey(), (5, 3, 3), jnp.float64)
    assert float(jnp.max(m.constraint_error(a))) > 0.1  # asymmetric, indefinite
    p = m.project(a)
    assert float(constraint_error(m, p)) == 0.0
    assert bool(jnp.all(jnp.linalg.eigvalsh(p) > 0))
    p32 = m.project(a.astype(jnp.float32))
    assert p32.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(jnp.linalg.cholesky(p32))))


def test_bad_input():
    with pytest.raises(ValueError, match="metric must be one of"):
        SymmetricPositiveDefinite(3, "euclidean")
    with pytest.raises(ValueError, match="offers"):
        SymmetricPositiveDefinite(3, "log_euclidean", retraction="second_order")
    with pytest.raises(ValueError, match="n >= 1"):
        SymmetricPositiveDefinite(0)
    with pytest.raises(ValueError, match="trailing shape"):
        constraint_error(SymmetricPositiveDefinite(3), jnp.eye(4))
