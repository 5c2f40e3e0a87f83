"""Edge points and the refusals specific to one manifold (the shared ones are in
`conformance.check_refusals`): each fires eagerly and under `jit`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import structjax.manifolds as sm
from tests.helpers import assert_refused


def test_sphere_antipodal_log_and_transport():
    """log(x, -x) is the fixed-rule geodesic of length pi (direction e_k - x_k x, k the
    smallest |x_k|), exp brings it back to -x, and transport along it is finite, tangent at
    -x and isometric."""
    m = sm.Sphere(4)
    x = jnp.array([0.5, -0.1, 0.7, 0.5])
    x = x / jnp.linalg.norm(x)
    v = m.to_tangent(x, jnp.array([0.3, 1.0, -0.2, 0.4]))
    for f in (lambda x, v: (m.log(x, -x), m.transport(x, -x, v)), jax.jit(
            lambda x, v: (m.log(x, -x), m.transport(x, -x, v)))):  # fmt: skip
        u, w = f(x, v)
        np.testing.assert_allclose(jnp.linalg.norm(u), np.pi, rtol=1e-14)
        e = jnp.zeros(4).at[1].set(1.0)  # |x_1| is the smallest
        direction = m.to_tangent(x, e)
        np.testing.assert_allclose(u, np.pi * direction / jnp.linalg.norm(direction), atol=1e-14)
        np.testing.assert_allclose(m.exp(x, u), -x, atol=1e-14)
        assert abs(float(jnp.dot(w, -x))) < 1e-14
        np.testing.assert_allclose(jnp.linalg.norm(w), jnp.linalg.norm(v), rtol=1e-14)
    np.testing.assert_allclose(m.log(x, x), 0.0, atol=1e-15)
    # Off the antipode the transport is the classical formula.
    y = m.exp(x, 0.7 * v)
    classical = v - (jnp.dot(y, v) / (1.0 + jnp.dot(x, y))) * (x + y)
    np.testing.assert_allclose(m.transport(x, y, v), classical, atol=1e-14)


def test_sphere_no_answer_is_refused():
    m = sm.Sphere(3)
    x = jnp.array([0.0, 0.6, 0.8])
    assert_refused(lambda x: m.retract(x, -x), x, match=r"retract\(x, v\)` needs `x \+ v` != 0")
    assert_refused(m.project, jnp.zeros((2, 3)), match=r"project\(x\)` needs `x` != 0")


def test_stiefel_shapes_and_rank():
    m = sm.Stiefel(5, 2)
    x = m.random_point(jax.random.PRNGKey(0))
    assert_refused(m.retract, x, jnp.zeros((5, 3)), match=r"needs `v` with trailing shape \(5, 2\)")
    assert_refused(m.retract, jnp.zeros((5, 3)), jnp.zeros((5, 3)), match="trailing shape")
    for r in ("polar", "cholesky_qr"):
        assert_refused(lambda x: sm.Stiefel(5, 2, r).retract(x, -x), x, match="full column rank")


def test_stiefel_hot_path_test_is_the_documented_cheap_one():
    """Under jit, `retract` tests |x|_F^2 = p (a norm): a point with unit-norm, non-orthogonal
    columns passes it, `check_point` (the full test) refuses it, and so does an eager call."""
    m = sm.Stiefel(3, 2)
    c = np.sqrt(0.5)
    skewed = jnp.array([[1.0, c], [0.0, c], [0.0, 0.0]])
    assert np.isfinite(np.asarray(jax.jit(m.retract)(skewed, jnp.zeros((3, 2))))).all()
    assert_refused(m.check_point, skewed, match=r"\|x\^T x - I\|_F <= 1e-08")
    with pytest.raises(ValueError, match="orthonormal columns"):
        m.retract(skewed, jnp.zeros((3, 2)))


def test_spd_factorisation_flags():
    """A symmetric matrix with a positive diagonal but a negative eigenvalue passes the
    O(n^2) hot-path test under jit; the Cholesky/eigh factorisations the methods compute
    refuse it there (eager calls refuse it by the full eigenvalue test first)."""
    bad = jnp.array([[1.0, 2.0], [2.0, 1.0]])
    v = jnp.eye(2)
    affine = sm.SymmetricPositiveDefinite(2)
    with pytest.raises(ValueError, match="smallest eigenvalue > 0.*Found -1.0"):
        affine.retract(bad, v)
    assert_refused(affine.retract, bad, v, match="Cholesky", eager=False)
    assert_refused(affine.inner, bad, v, v, match="Cholesky", eager=False)
    transport = lambda y: affine.transport(jnp.eye(2), y, v)  # noqa: E731
    assert_refused(transport, bad, match="transport operator is not finite", eager=False)
    log_euclidean = sm.SymmetricPositiveDefinite(2, "log_euclidean")
    assert_refused(log_euclidean.inner, bad, v, v, match="eigenvalue <= 0", eager=False)
    bures = sm.SymmetricPositiveDefinite(2, "bures_wasserstein")
    assert_refused(bures.inner, bad, v, v, match="eigenvalue <= 0", eager=False)
    # Semidefinite: on the manifold's closure, not on it (no inverse).
    assert_refused(affine.check_point, jnp.diag(jnp.array([1.0, 0.0])), match="definite")
    assert_refused(affine.log, jnp.eye(2), bad, match="needs `y` symmetric positive definite")


def test_poincare_boundary_and_lorentz_lower_sheet():
    ball = sm.PoincareBall(2)
    edge = jnp.array([0.6, 0.8])  # |x| = 1: lambda_x is infinite
    y = jnp.array([0.1, 0.0])
    for call in (ball.distance, ball.log, lambda x, y: ball.inner(x, y, y)):
        assert_refused(call, edge, y, match="strictly inside the ball")
    lorentz = sm.Lorentz(2)
    x = lorentz.random_point(jax.random.PRNGKey(0))
    assert_refused(lorentz.log, -x, x, match="upper sheet")


def test_no_logarithm_is_refused():
    """O(n): det(x^T y) = -1 (the other component) and a rotation by pi have no principal
    logarithm; Grassmann: orthogonal subspaces (principal angle pi/2) have no unique log."""
    o = sm.Orthogonal(3)
    eye = jnp.eye(3)
    for y in (jnp.diag(jnp.array([-1.0, 1.0, 1.0])), jnp.diag(jnp.array([-1.0, -1.0, 1.0]))):
        assert_refused(o.log, eye, y, match="no rotation angle pi")
        assert_refused(o.distance, eye, y, match="no rotation angle pi")
    g = sm.Grassmann(3, 1)
    assert_refused(g.log, eye[:, :1], eye[:, 1:2], match="principal angle of pi/2")


def test_16bit_random_points_and_check_point_call():
    for m in (sm.Stiefel(4, 2), sm.SymmetricPositiveDefinite(3), sm.Orthogonal(3)):
        for dtype in (jnp.float16, jnp.bfloat16):
            x = m.random_point(jax.random.PRNGKey(1), (2,), dtype)
            assert x.dtype == dtype
            assert m.check_point(x) is x
    m = sm.Sphere(3)
    assert_refused(
        lambda x: m.check_point(x, "params", call="riemannian_adam(...).init(params)"),
        jnp.ones(3),
        match=r"`riemannian_adam\(...\).init\(params\)` needs `params` on the sphere",
    )


def test_product_checks_each_factor():
    m = sm.Product((sm.Sphere(3), sm.Stiefel(4, 2)))
    x = m.random_point(jax.random.PRNGKey(0))
    v = m.random_tangent(jax.random.PRNGKey(1), x)
    bad = (2.0 * x[0], x[1])
    assert_refused(m.retract, bad, v, match=r"Sphere\(n=3\).retract\(x, v\)` needs `x`")
    assert_refused(m.check_point, bad, match=r"needs `x\[0\]` on the sphere")
    assert_refused(m.retract, x[0], v, match="tuple of 2 arrays")
    assert_refused(m.retract, (x[0], x[1][:, :1]), v, match=r"`x\[1\]` with trailing shape")
    unchecked = sm.Product(m.manifolds, checks=False)
    assert unchecked.check_point(bad) == bad
