"""The Lorentz (hyperboloid) model of hyperbolic space."""

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from ._base import (
    AbstractHyperbolic,
    manifold_method,
    random_point_method,
    storage_dtype,
)

# A point or tangent vector (leading batch axes), and one number per point.
_T = Float[Array, "... d"]
_S = Float[Array, "..."]


def minkowski(u, v, keepdims=False):
    """$\\langle u, v\\rangle_L = -u_0 v_0 + \\sum_{i \\ge 1} u_i v_i$ over the last axis."""
    out = jnp.sum(u[..., 1:] * v[..., 1:], axis=-1) - u[..., 0] * v[..., 0]
    return out[..., None] if keepdims else out


def _cosh_sinhc_of_square(t2):
    """$(\\cosh t, \\sinh(t)/t)$ as functions of $t^2$: smooth through $t = 0$."""
    small = jnp.abs(t2) < 1e-4
    # t2 < 0 is rounding in <v, v>_L far from the origin (float32): treat it as t = 0.
    t = jnp.sqrt(jnp.where(small, 1.0, jnp.maximum(t2, 1e-4)))
    cosh = jnp.where(small, 1 + t2 / 2 + t2**2 / 24 + t2**3 / 720, jnp.cosh(t))
    sinhc = jnp.where(small, 1 + t2 / 6 + t2**2 / 120 + t2**3 / 5040, jnp.sinh(t) / t)
    return cosh, sinhc


def _max_spatial_norm(dtype) -> float:
    r"""The largest spatial norm `project` keeps, in units of $1/\sqrt{c}$: $10^{15}$ in
    float32 and bfloat16 (squares stay below their 3.4e38 with room for sums), $10^{150}$
    in float64, $10^4$ in float16 (whose largest number is 65504)."""
    dtype = jnp.dtype(dtype)
    if dtype == jnp.float16:
        return 1e4
    return 1e15 if dtype.itemsize <= 4 else 1e150


class Lorentz(AbstractHyperbolic):
    """The hyperboloid $\\{x \\in \\mathbb{R}^{n+1} : \\langle x, x\\rangle_L = -1/c,\\ x_0 >
    0\\}$ of constant curvature $-c < 0$, with the metric induced by the Minkowski product.
    Points have shape `(..., n + 1)`, the time coordinate first.

    `exp` is $\\cosh(\\sqrt{c}|v|_L) x + \\sinh(\\sqrt{c}|v|_L) v / (\\sqrt{c}|v|_L)$, the
    retraction is `exp` followed by `project`, and `transport` is the parallel transport
    $v + \\frac{\\langle y, v\\rangle_L}{1/c - \\langle x, y\\rangle_L}(x + y)$, isometric
    (geoopt's `lorentz/math.py` with $k = 1/c$; Nickel & Kiela 2018). Distances use
    $d = \\frac{2}{\\sqrt{c}} \\operatorname{arsinh}(\\sqrt{c}|y - x|_L / 2)$, equal to
    $\\operatorname{arcosh}(-c\\langle x, y\\rangle_L)/\\sqrt{c}$ but accurate for nearby points.

    `project` recomputes the time coordinate, $x_0 = \\sqrt{1/c + |x_{1:}|^2}$ (a
    projection onto the manifold along the time axis, not the nearest point), which puts
    float32 points on the hyperboloid to rounding; `constraint_error` is the relative error
    of $x_0$, $|x_0 - \\sqrt{1/c + |x_{1:}|^2}| / \\sqrt{1/c + |x_{1:}|^2}$, about
    $|\\langle x, x\\rangle_L + 1/c| / (2 x_0^2)$: the rounding of $\\langle x, x\\rangle_L$
    grows like $\\varepsilon x_0^2$, so an absolute test would fail far from the origin.

    **Checks.** Every method refuses a base point whose `constraint_error` (the relative
    error of $x_0$, O(n): on the hot path too) exceeds `point_tolerance` (1e-8 in float64,
    1e-4 in float32), which includes the lower sheet $x_0 < 0$.

    **Arguments:**

    - `n`: the dimension of the hyperbolic space (points live in $\\mathbb{R}^{n+1}$).
    - `curvature`: the sectional curvature $-c$, negative (default `-1.0`).
    - `checks`: `False` turns off the value checks (keyword-only).

    **Raises:** `ValueError` for $n < 1$ or curvature $\\ge 0$; see **Checks**.

    **Example:**

    ```pycon
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import structjax.manifolds as sm
    >>> m = sm.Lorentz(2)
    >>> x = m.random_point(jax.random.key(0))
    >>> y = m.exp(x, m.random_tangent(jax.random.key(1), x))
    >>> print(x.shape, bool(m.constraint_error(y) < 1e-10))
    (3,) True
    >>> print(bool(jnp.allclose(m.exp(x, m.log(x, y)), y, atol=1e-10)))
    True

    ```
    """

    @property
    def point_shape(self) -> tuple[int, ...]:
        return (self.n + 1,)

    def _off(self, x, tol, full):
        err = self.constraint_error(x)
        needs = (
            f"on the upper sheet of the hyperboloid <x, x>_L = -1/c (relative error of x_0 "
            f"<= {tol:.0e})"
        )
        return ~(err <= tol), jnp.max(err), needs

    def _time(self, space):
        return jnp.sqrt(1.0 / self.c + jnp.sum(space * space, axis=-1, keepdims=True))

    @manifold_method
    def project(self, x: _T) -> _T:
        # Recompute x0 from the spatial part (exact on the hyperboloid in any dtype), after
        # capping the spatial norm at `max_spatial_norm(dtype)`: far out, x0^2 overflows
        # float32 (at geodesic distance ~44 from the origin) and every Minkowski product
        # becomes inf - inf = NaN. The cap plays the role of the Poincare ball's margin.
        s = x[..., 1:]
        cap = _max_spatial_norm(storage_dtype(s)) / jnp.sqrt(self.c)
        norm = jnp.linalg.norm(s, axis=-1, keepdims=True)
        s = jnp.where(norm > cap, s * (cap / jnp.where(norm > cap, norm, 1.0)), s)
        return jnp.concatenate([self._time(s), s], axis=-1)

    @manifold_method
    def to_tangent(self, x: _T, v: _T) -> _T:
        # Minkowski-orthogonal projection: <x, v + c<x,v>_L x>_L = 0 since <x,x>_L = -1/c.
        return v + self.c * minkowski(x, v, keepdims=True) * x

    @manifold_method
    def egrad_to_rgrad(self, x: _T, g: _T) -> _T:
        # Raise the index with diag(-1, 1, ..., 1), then project (geoopt's `egrad2rgrad`).
        return self.to_tangent(x, g.at[..., 0].multiply(-1))

    @manifold_method
    def inner(self, x: _T, u: _T, v: _T) -> _S:
        return self._tangent_inner(x, u, v)[..., 0]

    def _tangent_square(self, x, v):
        r"""$\langle v, v\rangle_L$ for a tangent `v` (see `_tangent_inner`)."""
        return self._tangent_inner(x, v, v)

    def _tangent_inner(self, x, u, v):
        r"""$\langle u, v\rangle_L$ for tangent `u`, `v`, as
        $\bar u_\perp \cdot \bar v_\perp + (\bar x \cdot \bar u)(\bar x \cdot \bar v) /
        (c |\bar x|^2 x_0^2)$ ($\bar u_\perp$: the part of $\bar u = u_{1:}$ orthogonal to
        $\bar x$), equal to $\bar u \cdot \bar v - u_0 v_0$ when $u_0 x_0 = \bar x \cdot
        \bar u$ but free of its cancellation, which in float32 leaves no correct digit once
        $x_0 \gtrsim 10^3$ (and turned Riemannian Adam's second moment negative: NaN)."""
        xs = x[..., 1:]
        xs2 = jnp.sum(xs * xs, axis=-1, keepdims=True)
        safe = jnp.where(xs2 > 0, xs2, 1.0)

        def split(w):
            ws = w[..., 1:]
            p = jnp.sum(xs * ws, axis=-1, keepdims=True)
            return ws - jnp.where(xs2 > 0, p / safe, 0.0) * xs, p

        pu, au = split(u)
        pv, av = split(v)
        radial = jnp.where(xs2 > 0, au * av / (self.c * safe * x[..., :1] ** 2), 0.0)
        return jnp.sum(pu * pv, axis=-1, keepdims=True) + radial

    @manifold_method
    def exp(self, x: _T, v: _T) -> _T:
        r"""The exponential map $\mathrm{Exp}_x(v)$: the geodesic from `x` with velocity `v`."""
        cosh, sinhc = _cosh_sinhc_of_square(self.c * self._tangent_square(x, v))
        return cosh * x + sinhc * v

    @manifold_method
    def log(self, x: _T, y: _T) -> _T:
        r"""The logarithm $\mathrm{Log}_x(y)$, the inverse of `exp`: a tangent vector at `x`."""
        # d u/|u|_L with u = y + c<x,y>_L x = (y - x) - (c/2)|y - x|_L^2 x (the tangent part
        # of y - x, formed from the difference).
        d = y - x
        u = d - (self.c / 2) * minkowski(d, d, keepdims=True) * x
        nu = jnp.sqrt(jnp.maximum(minkowski(u, u, keepdims=True), 0.0))
        dist = self.distance(x, y)[..., None]
        return jnp.where(nu > 0, dist / jnp.where(nu > 0, nu, 1.0), 0.0) * u

    @manifold_method
    def distance(self, x: _T, y: _T) -> _S:
        r"""The geodesic distance $d(x, y) = \|\mathrm{Log}_x(y)\|_x$, one number per point."""
        # arcosh(-c<x,y>_L)/sqrt(c) = (2/sqrt(c)) arsinh(sqrt(c)|y - x|_L / 2), since
        # -c<x,y>_L - 1 = c|y - x|_L^2 / 2.
        d = y - x
        half = jnp.sqrt(self.c * jnp.maximum(minkowski(d, d), 0.0)) / 2
        return 2.0 / jnp.sqrt(self.c) * jnp.arcsinh(half)

    @manifold_method
    def transport(self, x: _T, y: _T, v: _T) -> _T:
        # v + <y,v>_L / (1/c - <x,y>_L) (x + y); the denominator is 2/c + |y - x|_L^2 / 2.
        d = y - x
        den = 2.0 / self.c + minkowski(d, d, keepdims=True) / 2
        return v + minkowski(y, v, keepdims=True) / den * (x + y)

    @manifold_method
    def retract(self, x: _T, v: _T) -> _T:
        return self.project(self.exp(x, v))

    @manifold_method
    def constraint_error(self, x: _T) -> _S:
        t = self._time(x[..., 1:])[..., 0]
        return jnp.abs(x[..., 0] - t) / t

    @random_point_method
    def random_point(
        self, key: PRNGKeyArray, shape: tuple[int, ...] = (), dtype: DTypeLike | None = None
    ) -> _T:
        # exp at the origin (1/sqrt(c), 0, ..., 0) of (0, z), z standard normal: the geodesic
        # distance from the origin is |z|.
        z = jax.random.normal(key, tuple(shape) + (self.n,), dtype)
        _, sinhc = _cosh_sinhc_of_square(self.c * jnp.sum(z * z, axis=-1, keepdims=True))
        return self.project(jnp.concatenate([jnp.zeros_like(z[..., :1]), sinhc * z], axis=-1))

    @manifold_method
    def random_tangent(self, key: PRNGKeyArray, x: _T) -> _T:
        """A standard normal tangent vector in the metric: $(0, z)$ at the origin, $z$
        standard normal, parallel-transported to `x` (the wrapped normal of Nagano et al.
        2019). Ambient noise projected by `to_tangent` would have Riemannian length growing
        like $x_0^2$, and a random walk with such steps overflows within a few steps."""
        z = jax.random.normal(key, x.shape[:-1] + (self.n,), x.dtype)
        u = jnp.concatenate([jnp.zeros_like(z[..., :1]), z], axis=-1)
        r = 1.0 / jnp.sqrt(self.c)
        origin = jnp.concatenate([jnp.full_like(z[..., :1], r), jnp.zeros_like(z)], axis=-1)
        # transport(origin, x, u): <x, u>_L / (1/c - <origin, x>_L) (origin + x)
        coef = jnp.sum(x[..., 1:] * z, axis=-1, keepdims=True) / (r * r + r * x[..., :1])
        return u + coef * (origin + x)

    def to_poincare(self, x: Float[Array, "... d"]) -> Float[Array, "... n"]:
        """The isometry to `PoincareBall(n, curvature)`: $x_{1:} / (1 + \\sqrt{c} x_0)$.

        **Arguments:**

        - `x`: points of this hyperboloid, shape `(..., n + 1)`.

        **Returns:** the same points in the Poincaré ball, shape `(..., n)`.
        """
        return x[..., 1:] / (1.0 + jnp.sqrt(self.c) * x[..., :1])

    def from_poincare(self, p: Float[Array, "... n"]) -> Float[Array, "... d"]:
        """The inverse isometry: $x_0 = \\frac{1 + c|p|^2}{\\sqrt{c}(1 - c|p|^2)}$,
        $x_{1:} = \\frac{2p}{1 - c|p|^2}$.

        **Arguments:**

        - `p`: points of `PoincareBall(n, curvature)`, shape `(..., n)`.

        **Returns:** the same points on this hyperboloid, shape `(..., n + 1)`.
        """
        p2 = self.c * jnp.sum(p * p, axis=-1, keepdims=True)
        x0 = (1.0 + p2) / (jnp.sqrt(self.c) * (1.0 - p2))
        return jnp.concatenate([x0, 2.0 * p / (1.0 - p2)], axis=-1)
