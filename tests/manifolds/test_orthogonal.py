"""O(n) and SO(n): the conformance suite for every retraction, and their own properties."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from structjax.check import check_retraction
from structjax.manifolds._orthogonal import RETRACTIONS, Orthogonal, SpecialOrthogonal

from . import conformance as c
from .cases import ORTHOGONAL_ORDERS


@pytest.mark.parametrize("retraction", RETRACTIONS)
def test_measured_order(retraction):
    result = check_retraction(Orthogonal(4, retraction), jax.random.PRNGKey(3))
    assert result.first_order > 1.9
    if ORTHOGONAL_ORDERS[retraction] == 2:
        assert result.second_order < 1e-12, result
    else:
        assert result.second_order > 1e-2, result


def test_bad_arguments():
    with pytest.raises(ValueError, match=re.escape("`Orthogonal(retraction='svd')`")):
        Orthogonal(3, "svd")
    with pytest.raises(ValueError, match=re.escape("`SpecialOrthogonal(n=0)` needs n >= 1")):
        SpecialOrthogonal(0)


@pytest.mark.parametrize("retraction", RETRACTIONS)
def test_special_orthogonal_keeps_det_one(retraction, getkey):
    m = SpecialOrthogonal(4, retraction)
    x = m.random_point(getkey(), (16,), jnp.float64)
    assert np.allclose(jnp.linalg.det(x), 1.0, atol=1e-13)

    def body(x, k):
        return m.retract(x, 0.5 * m.random_tangent(k, x)), None

    x, _ = jax.lax.scan(body, x, jax.random.split(getkey(), 200))
    assert np.allclose(jnp.linalg.det(x), 1.0, atol=1e-12)
    assert float(jnp.max(m.constraint_error(x))) < 1e-12


def test_orthogonal_random_points_cover_both_components(getkey):
    dets = jnp.linalg.det(Orthogonal(3).random_point(getkey(), (64,), jnp.float64))
    assert np.allclose(jnp.abs(dets), 1.0) and bool(jnp.any(dets < 0)) and bool(jnp.any(dets > 0))


def test_special_orthogonal_projection_is_the_nearest_rotation(getkey):
    m = SpecialOrthogonal(4)
    a = jax.random.normal(getkey(), (8, 4, 4), jnp.float64)
    a = a.at[..., 0].multiply(jnp.where(jnp.linalg.det(a) > 0, -1.0, 1.0)[..., None])  # det < 0
    u, _, vt = np.linalg.svd(np.asarray(a))
    d = np.ones((8, 4))
    d[:, -1] = np.sign(np.linalg.det(u @ vt))
    expected = (u * d[:, None, :]) @ vt  # Umeyama's nearest rotation
    assert np.allclose(m.project(a), expected, atol=1e-12)
    assert np.allclose(jnp.linalg.det(m.project(a)), 1.0, atol=1e-12)
    assert float(m.constraint_error(Orthogonal(4).project(a)).min()) > 1.9  # det = -1: off SO(n)


def test_log_at_large_angles(getkey):
    """The principal logarithm is accurate up to rotation angles near pi."""
    m = SpecialOrthogonal(5)
    x, q = m.random_point(getkey(), (2,), jnp.float64)
    omega = jnp.zeros((5, 5)).at[0, 1].set(3.0).at[2, 3].set(1.2)
    omega = q @ (omega - omega.T) @ q.T
    v = x @ omega
    y = m.exp(x, v)
    assert np.allclose(m.log(x, y), v, atol=1e-12)
    assert np.allclose(m.distance(x, y), jnp.linalg.norm(omega), atol=1e-12)
    assert np.allclose(m.distance(x, y), m.distance(y, x), atol=1e-12)
    # Differentiable at y = x (where the square roots meet repeated eigenvalues): d log = v.
    tangent = jax.jvp(lambda y: m.log(x, y), (x,), (v,))[1]
    assert np.allclose(tangent, v, atol=1e-12)


def test_exp_retraction_is_exp(getkey):
    m = Orthogonal(4, "exp")
    x = m.random_point(getkey(), (3,), jnp.float64)
    v = m.random_tangent(getkey(), x)
    assert np.allclose(m.retract(x, v), m.exp(x, v), atol=1e-13)


@pytest.mark.parametrize("cls", [Orthogonal, SpecialOrthogonal])
@pytest.mark.parametrize("retraction", RETRACTIONS)
def test_float32_long_walk(cls, retraction):
    """10^4 retractions of a float32 random walk never leave the manifold by 1e-5."""
    m = cls(4, retraction)
    error = c.float32_walk_error(m)
    assert error < 1e-5, error
