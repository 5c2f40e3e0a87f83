"""Euclidean space: no constraint (the identity geometry)."""

import equinox as eqx
import jax
from jaxtyping import PRNGKeyArray

from ._base import AbstractManifold, batch_inner, manifold_method, random_point_method


class Euclidean(AbstractManifold):
    """$\\mathbb{R}^{\\text{shape}}$ with the Euclidean metric; every map is the identity.

    Every real array of the right trailing shape is a point: there is no value check (only
    the trace-time shape and dtype checks of every manifold).

    **Arguments:**

    - `shape`: the shape of one point (default `()`: scalars).
    - `checks`: accepted for uniformity with the other manifolds (keyword-only).
    """

    shape: tuple[int, ...] = eqx.field(static=True, default=())
    checks: bool = eqx.field(static=True, default=True, kw_only=True)

    @property
    def point_shape(self):
        return tuple(self.shape)

    def _off(self, x, tol, full):
        return jax.numpy.zeros(x.shape[: x.ndim - len(self.shape)], bool), 0.0, "a point"

    @manifold_method
    def project(self, x):
        return x

    @manifold_method
    def to_tangent(self, x, v):
        return v

    @manifold_method
    def egrad_to_rgrad(self, x, g):
        return g

    @manifold_method
    def retract(self, x, v):
        return x + v

    @manifold_method
    def exp(self, x, v):
        return x + v

    @manifold_method
    def log(self, x, y):
        return y - x

    @manifold_method
    def distance(self, x, y):
        return self.norm(x, y - x)

    @manifold_method
    def inner(self, x, u, v):
        return batch_inner(u, v, len(self.shape))

    @manifold_method
    def transport(self, x, y, v):
        return v

    @manifold_method
    def constraint_error(self, x):
        return batch_inner(x, x, len(self.shape)) * 0

    @random_point_method
    def random_point(self, key: PRNGKeyArray, shape=(), dtype=None):
        return jax.random.normal(key, tuple(shape) + self.point_shape, dtype)
