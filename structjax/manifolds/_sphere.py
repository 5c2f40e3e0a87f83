"""The unit sphere $S^{n-1} = \\{x \\in \\mathbb{R}^n : |x| = 1\\}$."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from ._base import (
    AbstractManifold,
    manifold_method,
    random_point_method,
    refuse,
)

# A point or tangent vector (leading batch axes), and one number per point.
_T = Float[Array, "... n"]
_S = Float[Array, "..."]


def _dot(u, v):
    return jnp.sum(u * v, axis=-1)


class Sphere(AbstractManifold):
    """The unit sphere in $\\mathbb{R}^n$ with the round (embedded) metric.

    Retraction by normalisation, $R_x(v) = (x + v)/|x + v|$, second order; `exp`, `log`
    and `distance` are the great-circle formulas; `transport` is the parallel transport
    along the geodesic `log` chooses from `x` to `y` (isometric). Reference: Absil, Mahony &
    Sepulchre, *Optimization Algorithms on Matrix Manifolds* (2008), Examples 4.1.1 and 5.4.1.

    **Antipodal points.** Every great half-circle from $x$ reaches $-x$: `log(x, -x)` returns
    the one of length $\\pi$ in the direction of $e_k - x_k x$ (normalised), $k$ the first
    index of the smallest $|x_k|$ (a fixed rule, so the answer is deterministic and
    finite), and `transport(x, -x, v)` is the parallel transport along that geodesic.
    The same rule is used whenever the direction from `x` to `y` is lost to rounding.

    **Checks.** Every method refuses a base point with $||x| - 1| >$ `point_tolerance`
    (1e-8 in float64, 1e-4 in float32): a norm, on the hot path too. `project(0)`
    and `retract(x, v)` with $x + v = 0$ (never for a tangent $v$, where
    $|x + v| \\ge 1$) have no answer and are refused.

    **Arguments:**

    - `n`: the ambient dimension (points have shape `(n,)`).
    - `checks`: `False` turns off the value checks (keyword-only).

    **Raises:** `ValueError` for $n < 1$; see **Checks**.

    **Example:**

    ```pycon
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import structjax.manifolds as sm
    >>> m = sm.Sphere(3)
    >>> x = m.random_point(jax.random.key(0))
    >>> v = m.random_tangent(jax.random.key(1), x)
    >>> y = m.retract(x, v)
    >>> print(bool(m.constraint_error(y) < 1e-12), bool(jnp.allclose(m.exp(x, m.log(x, y)), y)))
    True True

    ```
    """

    n: int = eqx.field(static=True)
    checks: bool = eqx.field(static=True, default=True, kw_only=True)

    def __check_init__(self):
        if self.n < 1:
            raise ValueError(f"`Sphere(n={self.n})` needs n >= 1.")

    @property
    def point_shape(self) -> tuple[int, ...]:
        return (self.n,)

    def _off(self, x, tol, full):
        err = jnp.abs(jnp.linalg.norm(x, axis=-1) - 1.0)
        return ~(err <= tol), jnp.max(err), f"on the sphere (||x| - 1| <= {tol:.0e})"

    def _normalise(self, a, needs):
        norm = jnp.linalg.norm(a, axis=-1, keepdims=True)
        norm = refuse(self, norm, norm == 0, needs)
        return a / norm

    @manifold_method
    def project(self, x: _T) -> _T:
        return self._normalise(x, "`x` != 0 (every point of the sphere is nearest to 0)")

    @manifold_method
    def to_tangent(self, x: _T, v: _T) -> _T:
        return v - _dot(x, v)[..., None] * x

    @manifold_method
    def egrad_to_rgrad(self, x: _T, g: _T) -> _T:
        return self.to_tangent(x, g)

    @manifold_method
    def retract(self, x: _T, v: _T) -> _T:
        return self._normalise(x + v, "`x + v` != 0 (v = -x has no retraction)")

    @manifold_method
    def exp(self, x: _T, v: _T) -> _T:
        r"""The exponential map $\mathrm{Exp}_x(v)$: the geodesic from `x` with velocity `v`."""
        nv = jnp.linalg.norm(v, axis=-1, keepdims=True)
        safe = jnp.where(nv > 0, nv, 1.0)
        y = jnp.cos(nv) * x + jnp.where(nv > 0, jnp.sin(safe) / safe, 1.0) * v
        return y / jnp.linalg.norm(y, axis=-1, keepdims=True)

    def _direction(self, x, y):
        """The unit tangent at `x` of the geodesic to `y` and its length: the tangent part
        of $y - x$, or, where rounding has lost it (antipodal or equal points), the fixed
        rule of the class docstring. Projected twice, so that it is tangent to rounding."""
        u = self.to_tangent(x, y - x)
        nu = jnp.linalg.norm(u, axis=-1, keepdims=True)
        k = jnp.argmin(jnp.abs(x), axis=-1)
        e = jax.nn.one_hot(k, self.n, dtype=x.dtype)
        lost = nu <= 4 * jnp.finfo(x.dtype).eps
        w = self.to_tangent(x, jnp.where(lost, e, u / jnp.where(lost, 1.0, nu)))
        w = self.to_tangent(x, w)
        w = w / jnp.linalg.norm(w, axis=-1, keepdims=True)
        return w, self.distance(x, y)[..., None]

    @manifold_method
    def log(self, x: _T, y: _T) -> _T:
        r"""The logarithm $\mathrm{Log}_x(y)$, the inverse of `exp`: a tangent vector at `x`."""
        w, d = self._direction(x, y)
        return d * w

    @manifold_method
    def distance(self, x: _T, y: _T) -> _S:
        r"""The geodesic distance $d(x, y) = \|\mathrm{Log}_x(y)\|_x$, one number per point."""
        # arctan2 form: accurate for nearby and for antipodal points alike.
        cross = jnp.linalg.norm(y - _dot(x, y)[..., None] * x, axis=-1)
        return jnp.arctan2(cross, _dot(x, y))

    @manifold_method
    def inner(self, x: _T, u: _T, v: _T) -> _S:
        return _dot(u, v)

    @manifold_method
    def transport(self, x: _T, y: _T, v: _T) -> _T:
        # Parallel transport along the geodesic cos(t) x + sin(t) w, t in [0, d]: the
        # component along w turns, <w, v>(cos(d) w - sin(d) x); the rest is unchanged.
        # Equal to v - <y, v>/(1 + <x, y>) (x + y) (Absil et al. 2008) off the antipode,
        # and finite at it.
        w, d = self._direction(x, y)
        wv = _dot(w, v)[..., None]
        return v + wv * ((jnp.cos(d) - 1.0) * w - jnp.sin(d) * x)

    @manifold_method
    def constraint_error(self, x: _T) -> _S:
        return jnp.abs(jnp.linalg.norm(x, axis=-1) - 1.0)

    @random_point_method
    def random_point(
        self, key: PRNGKeyArray, shape: tuple[int, ...] = (), dtype: DTypeLike | None = None
    ) -> _T:
        x = jax.random.normal(key, tuple(shape) + (self.n,), dtype)
        return self.project(x)
