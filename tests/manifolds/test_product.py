"""Product: conformance through a flattening adapter, and the tuple interface itself."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import structjax.manifolds as sm
from structjax.check import constraint_error
from structjax.manifolds._base import AbstractManifold
from structjax.manifolds._lorentz import Lorentz
from structjax.manifolds._poincare import PoincareBall
from structjax.manifolds._product import Product
from structjax.manifolds._spd import SymmetricPositiveDefinite

from . import conformance as c


class _Flat(AbstractManifold):
    """A `Product` seen through points flattened and concatenated into one vector, so that
    the array-based conformance checks run on it; every method delegates to the product."""

    product: Product
    checks: bool = eqx.field(static=True, default=True, kw_only=True)

    @property
    def point_shape(self):
        return (sum(math.prod(s) for s in self.product.point_shape),)

    def _split(self, a):
        out, i = [], 0
        for s in self.product.point_shape:
            k = math.prod(s)
            out.append(a[..., i : i + k].reshape(a.shape[:-1] + tuple(s)))
            i += k
        return tuple(out)

    def _join(self, t):
        shapes = self.product.point_shape
        return jnp.concatenate(
            [p.reshape(p.shape[: p.ndim - len(s)] + (-1,)) for p, s in zip(t, shapes)], axis=-1
        )

    def _call(self, method, *args):
        for a in args:
            self.check_shape(a, "x", f"_Flat.{method}")
        product = self.product if self.checks else Product(self.product.manifolds, checks=False)
        return getattr(product, method)(*map(self._split, args))

    def project(self, x):
        return self._join(self._call("project", x))

    def to_tangent(self, x, v):
        return self._join(self._call("to_tangent", x, v))

    def egrad_to_rgrad(self, x, g):
        return self._join(self._call("egrad_to_rgrad", x, g))

    def retract(self, x, v):
        return self._join(self._call("retract", x, v))

    def exp(self, x, v):
        return self._join(self._call("exp", x, v))

    def log(self, x, y):
        return self._join(self._call("log", x, y))

    def transport(self, x, y, v):
        return self._join(self._call("transport", x, y, v))

    def inner(self, x, u, v):
        return self._call("inner", x, u, v)

    def distance(self, x, y):
        return self._call("distance", x, y)

    def constraint_error(self, x):
        return self._call("constraint_error", x)

    def random_point(self, key, shape=(), dtype=None):
        return self._join(self.product.random_point(key, shape, dtype))

    def random_tangent(self, key, x):
        return self._join(self.product.random_tangent(key, self._split(x)))


def _mixed():
    return Product((sm.Sphere(3), PoincareBall(2), SymmetricPositiveDefinite(2)))


def _embedded():
    return Product((sm.Sphere(4), Lorentz(2), sm.Euclidean((2,))))


CASES = {
    # Poincaré and SPD metrics are not induced by the embedding: order 1 claimed (see
    # test_spd.py / test_hyperbolic.py for their second-order tests).
    "Sphere x Poincare x SPD": c.Case(
        lambda: _Flat(_mixed()), isometric_transport=True, has_exp=True
    ),
    # bfloat16 walk: see `cases.py` on the hyperboloid far from the origin.
    "Sphere x Lorentz x Euclidean": c.Case(
        lambda: _Flat(_embedded()),
        retraction_order=2,
        isometric_transport=True,
        has_exp=True,
        walk_16bit=(jnp.float16,),
    ),
}


@pytest.mark.parametrize("check", c.CHECKS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_conformance(case, check):
    check(case, jax.random.PRNGKey(0))


def test_tuple_points(getkey):
    m = _mixed()
    assert m.point_shape == ((3,), (2,), (2, 2))
    x = m.random_point(getkey(), (4,))
    assert isinstance(x, tuple) and [xi.shape for xi in x] == [(4, 3), (4, 2), (4, 2, 2)]
    v = m.random_tangent(getkey(), x)
    y = m.random_point(getkey(), (4,))
    parts = [f.inner(xi, vi, vi) for f, xi, vi in zip(m.manifolds, x, v)]
    np.testing.assert_allclose(m.inner(x, v, v), sum(parts), rtol=1e-14)
    dists = [f.distance(xi, yi) for f, xi, yi in zip(m.manifolds, x, y)]
    np.testing.assert_allclose(m.distance(x, y), jnp.sqrt(sum(d**2 for d in dists)), rtol=1e-14)
    errs = jnp.stack([f.constraint_error(xi) for f, xi in zip(m.manifolds, x)])
    np.testing.assert_array_equal(m.constraint_error(x), jnp.max(errs, axis=0))
    assert float(constraint_error(m, x)) < 1e-12
    r = jax.jit(m.retract)(x, v)
    mapped = jax.vmap(m.retract)(x, v)
    for a, b, f in zip(r, mapped, m.manifolds):
        np.testing.assert_allclose(a, b, atol=1e-13)
        assert float(constraint_error(f, a)) < 1e-12
    g = jax.grad(lambda x: jnp.sum(m.inner(x, v, v)))(x)
    assert all(bool(jnp.all(jnp.isfinite(gi))) for gi in g)


def test_bad_input():
    m = _mixed()
    x = m.random_point(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="tuple of 3 arrays"):
        constraint_error(m, x[:2])
    with pytest.raises(ValueError, match="tuple of 3 arrays"):
        constraint_error(m, x[0])
    with pytest.raises(ValueError, match=r"x\[2\]"):
        constraint_error(m, (x[0], x[1], jnp.eye(3)))
    with pytest.raises(ValueError, match="non-empty tuple of manifolds"):
        Product(())
    with pytest.raises(ValueError, match="non-empty tuple of manifolds"):
        Product((sm.Sphere(3), 3))
