"""Grassmann: the conformance suite for both retractions, and its own properties."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from structjax.check import check_retraction
from structjax.manifolds._grassmann import RETRACTIONS, Grassmann

from . import conformance as c


@pytest.mark.parametrize("retraction", RETRACTIONS)
def test_measured_order(retraction):
    result = check_retraction(Grassmann(6, 3, retraction), jax.random.PRNGKey(3))
    assert result.first_order > 1.9 and result.second_order < 1e-12, result


def test_bad_arguments():
    with pytest.raises(ValueError, match=re.escape("`Grassmann(n=3, p=5)` needs p <= n")):
        Grassmann(3, 5)
    with pytest.raises(ValueError, match="choose one of"):
        Grassmann(5, 3, "cayley")


def test_invariance_to_the_representative(getkey):
    """distance and log see subspaces: X -> XQ, Y -> YQ' for orthogonal Q, Q' change nothing
    (and retractions of the same subspace span the same subspace)."""
    m = Grassmann(7, 3)
    x, y = m.random_point(getkey(), (2,), jnp.float64)
    q1, q2 = jax.random.orthogonal(getkey(), 3, (2,), jnp.float64)
    d = m.distance(x, y)
    assert np.allclose(m.distance(x @ q1, y @ q2), d, atol=1e-12)
    assert np.allclose(m.distance(y, x), d, atol=1e-12)
    assert np.allclose(m.log(x, y @ q2), m.log(x, y), atol=1e-12)
    # The tangent at XQ representing the same direction is VQ.
    assert np.allclose(m.log(x @ q1, y), m.log(x, y) @ q1, atol=1e-12)
    assert np.allclose(m.distance(x, x @ q1), 0.0, atol=1e-7)


def test_distance_along_geodesics(getkey):
    m = Grassmann(6, 2)
    x = m.random_point(getkey(), (), jnp.float64)
    v = m.random_tangent(getkey(), x)
    v = v / m.norm(x, v)
    for t in (1e-6, 0.1, 0.8, 1.4):  # below the injectivity radius pi/2
        assert np.allclose(m.distance(x, m.exp(x, t * v)), t, rtol=1e-10, atol=1e-13)
    # Principal angles: a plane rotated by theta within a 2D span.
    e = jnp.eye(4, dtype=jnp.float64)
    a = e[:, :1]
    b = jnp.cos(1.3) * e[:, :1] + jnp.sin(1.3) * e[:, 1:2]
    assert np.allclose(Grassmann(4, 1).distance(a, b), 1.3, atol=1e-14)


@pytest.mark.parametrize("retraction", RETRACTIONS)
def test_float32_long_walk(retraction):
    """10^4 retractions of a float32 random walk never leave the manifold by 1e-5."""
    m = Grassmann(5, 2, retraction)
    error = c.float32_walk_error(m)
    assert error < 1e-5, error
