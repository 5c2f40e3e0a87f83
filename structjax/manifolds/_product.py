"""The product of manifolds, points as tuples of arrays."""

import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from ._base import AbstractManifold


class Product(AbstractManifold):
    """The Riemannian product $M_1 \\times \\dots \\times M_k$.

    A point is a **tuple** of arrays, one per factor, `(x_1, ..., x_k)`, with `x_i` of shape
    `batch + manifolds[i].point_shape` (the same batch shape for every factor); tangent
    vectors are tuples of the same shapes. `point_shape` is the tuple of the factors' point
    shapes. Every map acts factor by factor; `inner` is the sum of the factors' inner products
    (the product metric), `distance` the root of the sum of squared distances, and
    `constraint_error` the largest of the factors'. `exp`, `log` and `distance` need them on
    every factor. The retraction is as good as the worst factor's; `transport` is isometric
    when every factor's is.

    **Arguments:**

    - `manifolds`: a tuple of manifolds.
    """

    manifolds: tuple[AbstractManifold, ...]

    def __init__(self, manifolds):
        manifolds = tuple(manifolds)
        if not manifolds or not all(isinstance(m, AbstractManifold) for m in manifolds):
            raise ValueError(
                f"`Product(manifolds={manifolds!r})` needs a non-empty tuple of manifolds."
            )
        self.manifolds = manifolds

    @property
    def point_shape(self):
        return tuple(tuple(m.point_shape) for m in self.manifolds)

    def check_shape(self, x, name: str = "x"):
        """Raise a `ValueError` unless `x` is a tuple with one array per factor, each with
        that factor's trailing shape."""
        if not isinstance(x, (tuple, list)) or len(x) != len(self.manifolds):
            raise ValueError(
                f"Product of {len(self.manifolds)} manifolds takes `{name}` as a tuple of "
                f"{len(self.manifolds)} arrays, got {type(x).__name__}"
                + (f" of length {len(x)}." if isinstance(x, (tuple, list)) else ".")
            )
        for i, (m, xi) in enumerate(zip(self.manifolds, x)):
            m.check_shape(xi, f"{name}[{i}]")

    def _map(self, method, *args):
        return tuple(getattr(m, method)(*a) for m, *a in zip(self.manifolds, *args))

    def project(self, x):
        return self._map("project", x)

    def to_tangent(self, x, v):
        return self._map("to_tangent", x, v)

    def egrad_to_rgrad(self, x, g):
        return self._map("egrad_to_rgrad", x, g)

    def retract(self, x, v):
        return self._map("retract", x, v)

    def exp(self, x, v):
        return self._map("exp", x, v)

    def log(self, x, y):
        return self._map("log", x, y)

    def transport(self, x, y, v):
        return self._map("transport", x, y, v)

    def inner(self, x, u, v):
        return sum(self._map("inner", x, u, v))

    def distance(self, x, y):
        return jnp.sqrt(sum(d**2 for d in self._map("distance", x, y)))

    def constraint_error(self, x):
        return jnp.max(jnp.stack(self._map("constraint_error", x)), axis=0)

    def random_point(self, key: PRNGKeyArray, shape=(), dtype=None):
        keys = jax.random.split(key, len(self.manifolds))
        return tuple(m.random_point(k, shape, dtype) for m, k in zip(self.manifolds, keys))

    def random_tangent(self, key: PRNGKeyArray, x):
        keys = jax.random.split(key, len(self.manifolds))
        return self._map("random_tangent", keys, x)
