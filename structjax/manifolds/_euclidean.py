"""Euclidean space: no constraint (the identity geometry)."""

import equinox as eqx
import jax
from jaxtyping import PRNGKeyArray

from ._base import AbstractManifold, batch_inner, default_dtype


class Euclidean(AbstractManifold):
    """$\\mathbb{R}^{\\text{shape}}$ with the Euclidean metric; every map is the identity.

    **Arguments:**

    - `shape`: the shape of one point (default `()`: scalars).
    """

    shape: tuple[int, ...] = eqx.field(static=True, default=())

    @property
    def point_shape(self):
        return tuple(self.shape)

    def project(self, x):
        return x

    def to_tangent(self, x, v):
        return v

    def egrad_to_rgrad(self, x, g):
        return g

    def retract(self, x, v):
        return x + v

    def exp(self, x, v):
        return x + v

    def log(self, x, y):
        return y - x

    def distance(self, x, y):
        return self.norm(x, y - x)

    def inner(self, x, u, v):
        return batch_inner(u, v, len(self.shape))

    def transport(self, x, y, v):
        return v

    def constraint_error(self, x):
        return batch_inner(x, x, len(self.shape)) * 0

    def random_point(self, key: PRNGKeyArray, shape=(), dtype=None):
        return jax.random.normal(key, tuple(shape) + self.point_shape, default_dtype(dtype))
