"""Euclidean space: no constraint (the identity geometry)."""

import equinox as eqx
import jax
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from ._base import AbstractManifold, batch_inner, manifold_method, random_point_method

# A point or tangent vector (leading batch axes), and one number per point.
_T = Float[Array, "..."]
_S = Float[Array, "..."]


class Euclidean(AbstractManifold):
    """$\\mathbb{R}^{\\text{shape}}$ with the Euclidean metric; every map is the identity.

    Every real array of the right trailing shape is a point: there is no value check (only
    the trace-time shape and dtype checks of every manifold).

    **Arguments:**

    - `shape`: the shape of one point (default `()`: scalars).
    - `checks`: accepted for uniformity with the other manifolds (keyword-only).

    **Example:**

    ```pycon
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import structjax.manifolds as sm
    >>> m = sm.Euclidean((2, 3))
    >>> x = m.random_point(jax.random.key(0))
    >>> v = m.random_tangent(jax.random.key(1), x)
    >>> print(bool(jnp.allclose(m.retract(x, v), x + v)))
    True
    >>> print(bool(jnp.allclose(m.distance(x, x + v), jnp.linalg.norm(v))))
    True

    ```
    """

    shape: tuple[int, ...] = eqx.field(static=True, default=())
    checks: bool = eqx.field(static=True, default=True, kw_only=True)

    @property
    def point_shape(self) -> tuple[int, ...]:
        return tuple(self.shape)

    def _off(self, x, tol, full):
        return jax.numpy.zeros(x.shape[: x.ndim - len(self.shape)], bool), 0.0, "a point"

    @manifold_method
    def project(self, x: _T) -> _T:
        return x

    @manifold_method
    def to_tangent(self, x: _T, v: _T) -> _T:
        return v

    @manifold_method
    def egrad_to_rgrad(self, x: _T, g: _T) -> _T:
        return g

    @manifold_method
    def retract(self, x: _T, v: _T) -> _T:
        return x + v

    @manifold_method
    def exp(self, x: _T, v: _T) -> _T:
        r"""The exponential map $\mathrm{Exp}_x(v)$: the geodesic from `x` with velocity `v`."""
        return x + v

    @manifold_method
    def log(self, x: _T, y: _T) -> _T:
        r"""The logarithm $\mathrm{Log}_x(y)$, the inverse of `exp`: a tangent vector at `x`."""
        return y - x

    @manifold_method
    def distance(self, x: _T, y: _T) -> _S:
        r"""The geodesic distance $d(x, y) = \|\mathrm{Log}_x(y)\|_x$, one number per point."""
        return self.norm(x, y - x)

    @manifold_method
    def inner(self, x: _T, u: _T, v: _T) -> _S:
        return batch_inner(u, v, len(self.shape))

    @manifold_method
    def transport(self, x: _T, y: _T, v: _T) -> _T:
        return v

    @manifold_method
    def constraint_error(self, x: _T) -> _S:
        return batch_inner(x, x, len(self.shape)) * 0

    @random_point_method
    def random_point(
        self, key: PRNGKeyArray, shape: tuple[int, ...] = (), dtype: DTypeLike | None = None
    ) -> _T:
        return jax.random.normal(key, tuple(shape) + self.point_shape, dtype)
