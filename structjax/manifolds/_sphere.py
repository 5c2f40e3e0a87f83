"""The unit sphere $S^{n-1} = \\{x \\in \\mathbb{R}^n : |x| = 1\\}$."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from ._base import AbstractManifold, default_dtype


def _dot(u, v):
    return jnp.sum(u * v, axis=-1)


class Sphere(AbstractManifold):
    """The unit sphere in $\\mathbb{R}^n$ with the round (embedded) metric.

    Retraction by normalisation, $R_x(v) = (x + v)/|x + v|$, second order; `exp`, `log`
    and `distance` are the great-circle formulas; `transport` is the parallel transport
    along the geodesic from `x` to `y` (isometric). Reference: Absil, Mahony & Sepulchre,
    *Optimization Algorithms on Matrix Manifolds* (2008), Examples 4.1.1 and 5.4.1.

    **Arguments:**

    - `n`: the ambient dimension (points have shape `(n,)`).
    """

    n: int = eqx.field(static=True)

    def __check_init__(self):
        if self.n < 1:
            raise ValueError(f"`Sphere(n={self.n})` needs n >= 1.")

    @property
    def point_shape(self):
        return (self.n,)

    def project(self, x):
        return x / jnp.linalg.norm(x, axis=-1, keepdims=True)

    def to_tangent(self, x, v):
        return v - _dot(x, v)[..., None] * x

    def egrad_to_rgrad(self, x, g):
        return self.to_tangent(x, g)

    def retract(self, x, v):
        return self.project(x + v)

    def exp(self, x, v):
        nv = jnp.linalg.norm(v, axis=-1, keepdims=True)
        safe = jnp.where(nv > 0, nv, 1.0)
        return self.project(jnp.cos(nv) * x + jnp.where(nv > 0, jnp.sin(safe) / safe, 1.0) * v)

    def log(self, x, y):
        u = self.to_tangent(x, y - x)
        nu = jnp.linalg.norm(u, axis=-1, keepdims=True)
        d = self.distance(x, y)[..., None]
        safe = jnp.where(nu > 0, nu, 1.0)
        return jnp.where(nu > 0, d / safe, 1.0) * u

    def distance(self, x, y):
        # arctan2 form: accurate for nearby and for antipodal points alike.
        cross = jnp.linalg.norm(y - _dot(x, y)[..., None] * x, axis=-1)
        return jnp.arctan2(cross, _dot(x, y))

    def inner(self, x, u, v):
        return _dot(u, v)

    def transport(self, x, y, v):
        # Parallel transport along the minimising geodesic (Absil et al. 2008, eq. 8.2 style):
        # v - <y, v>/(1 + <x, y>) (x + y); isometric, and exact on the great circle.
        return v - (_dot(y, v) / (1.0 + _dot(x, y)))[..., None] * (x + y)

    def constraint_error(self, x):
        return jnp.abs(jnp.linalg.norm(x, axis=-1) - 1.0)

    def random_point(self, key: PRNGKeyArray, shape=(), dtype=None):
        x = jax.random.normal(key, tuple(shape) + (self.n,), default_dtype(dtype))
        return self.project(x)
