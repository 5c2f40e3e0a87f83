"""The Poincaré ball model of hyperbolic space."""

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
_T = Float[Array, "... n"]
_S = Float[Array, "..."]


def _dot(u, v):
    return jnp.sum(u * v, axis=-1, keepdims=True)


def _tanhc_of_square(s2):
    """$\\tanh(s)/s$ as a function of $s^2$: smooth (to every order) through $s = 0$."""
    small = s2 < 1e-4
    s = jnp.sqrt(jnp.where(small, 1.0, s2))
    taylor = 1 - s2 / 3 + 2 * s2**2 / 15 - 17 * s2**3 / 315
    return jnp.where(small, taylor, jnp.tanh(s) / s)


def ball_margin(dtype) -> float:
    """How far inside the boundary `project` puts points, in units of the radius
    $1/\\sqrt{c}$: $10^{-5}$ for float32, $10^{-10}$ for float64 and $10^{-2}$ for the
    16-bit floats. geoopt's `project` keeps
    a dtype-dependent border for the same reason (`eps`: 4e-3 in float32, 1e-5 in float64,
    `geoopt/manifolds/stereographic/math.py`); ours is closer to the boundary and is enough
    for $1 - c|x|^2$ to keep a few correct digits."""
    return {2: 1e-2, 4: 1e-5}.get(jnp.dtype(dtype).itemsize, 1e-10)


class PoincareBall(AbstractHyperbolic):
    """The Poincaré ball $\\{x \\in \\mathbb{R}^n : c|x|^2 < 1\\}$ of constant curvature
    $-c < 0$, with the conformal metric $\\langle u, v\\rangle_x = \\lambda_x^2 \\langle u,
    v\\rangle$, $\\lambda_x = 2/(1 - c|x|^2)$. Points have shape `(..., n)`.

    Möbius addition $\\oplus_c$, `exp`, `log` and `distance` follow Ganea, Bécigneul & Hofmann,
    *Hyperbolic Neural Networks* (NeurIPS 2018), sec. 2; the retraction is the exponential map
    followed by `project`, which keeps points a dtype-dependent margin (`ball_margin`) inside
    the boundary; `transport` is the parallel transport $\\frac{\\lambda_x}{\\lambda_y}
    \\operatorname{gyr}[y, -x] v$ (Ungar 2008; geoopt's `transp`), isometric.
    Differences $y - x$ and $1 - c|x|^2$ are formed explicitly so that points within
    $10^{-6}$ of the boundary keep their accuracy in float64.

    **Checks.** Every method refuses a base point that is not strictly inside the ball,
    $\\sqrt c|x| < 1$ (a norm, on the hot path too): on the boundary and beyond,
    $\\lambda_x$ is infinite or negative and the formulas return NaN. `check_point` also
    asks for `constraint_error(x) <=` `point_tolerance` (inside the margin of `project`).
    `exp` of a long tangent vector can round to the boundary in finite precision; `retract`
    (exp, then `project`) never does.

    **Arguments:**

    - `n`: the dimension.
    - `curvature`: the sectional curvature $-c$, negative (default `-1.0`).
    - `checks`: `False` turns off the value checks (keyword-only).

    **Raises:** `ValueError` for $n < 1$ or curvature $\\ge 0$; see **Checks**.

    **Example:**

    ```pycon
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import structjax.manifolds as sm
    >>> m = sm.PoincareBall(2)
    >>> x = m.random_point(jax.random.key(0))
    >>> y = m.exp(x, m.random_tangent(jax.random.key(1), x))
    >>> print(bool(jnp.linalg.norm(y) < 1.0))
    True
    >>> print(bool(jnp.allclose(m.exp(x, m.log(x, y)), y, atol=1e-10)))
    True

    ```
    """

    @property
    def point_shape(self) -> tuple[int, ...]:
        return (self.n,)

    def _off(self, x, tol, full):
        r = jnp.sqrt(self.c) * jnp.linalg.norm(x, axis=-1)
        bad = ~(r < 1)
        needs = "strictly inside the ball (sqrt(c) |x| < 1)"
        if full:
            err = self.constraint_error(x)
            bad = bad | ~(err <= tol)
            needs = f"{needs} and within the margin of `project` (constraint error <= {tol:.0e})"
        return bad, jnp.max(r), needs

    def _one_minus(self, x):
        """$1 - c|x|^2$, keepdims."""
        return 1.0 - self.c * _dot(x, x)

    def conformal_factor(self, x: _T) -> _S:
        """$\\lambda_x = 2 / (1 - c|x|^2)$, one number per point: the metric is
        $\\lambda_x^2$ times the Euclidean one.

        **Arguments:**

        - `x`: points of the ball, shape `(..., n)`.

        **Returns:** $\\lambda_x$, shape `(...)`.
        """
        return 2.0 / self._one_minus(x)[..., 0]

    def mobius_add(self, x: _T, y: _T) -> _T:
        """$x \\oplus_c y = \\frac{(1 + 2c\\langle x, y\\rangle + c|y|^2) x + (1 - c|x|^2) y}
        {1 + 2c\\langle x, y\\rangle + c^2 |x|^2 |y|^2}$ (Ganea et al. 2018, sec. 2).

        **Arguments:**

        - `x`, `y`: points of the ball, shape `(..., n)`.

        **Returns:** $x \\oplus_c y$, a point of the ball, shape `(..., n)`.
        """
        c, xy, x2, y2 = self.c, _dot(x, y), _dot(x, x), _dot(y, y)
        num = (1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y
        den = 1 + 2 * c * xy + c**2 * x2 * y2
        return num / jnp.maximum(den, jnp.finfo(x.dtype).tiny)

    def _minus_plus(self, x, y):
        """$(-x) \\oplus_c y$ up to a positive factor, and $|y - x|^2$, from $y - x$:
        numerator $(1 - c|x|^2)(y - x) - c|y - x|^2 x$, accurate near the boundary."""
        d = y - x
        d2 = _dot(d, d)
        return self._one_minus(x) * d - self.c * d2 * x, d2

    @manifold_method
    def project(self, x: _T) -> _T:
        # Clip the norm to (1 - margin)/sqrt(c), as geoopt's `project`.
        maxnorm = (1.0 - ball_margin(storage_dtype(x))) / jnp.sqrt(self.c)
        norm = jnp.linalg.norm(x, axis=-1, keepdims=True)
        scale = maxnorm / jnp.where(norm > maxnorm, norm, 1.0)
        return jnp.where(norm > maxnorm, x * scale, x)

    @manifold_method
    def to_tangent(self, x: _T, v: _T) -> _T:
        return v

    @manifold_method
    def egrad_to_rgrad(self, x: _T, g: _T) -> _T:
        return g * (self._one_minus(x) ** 2 / 4)  # g / lambda_x^2

    @manifold_method
    def inner(self, x: _T, u: _T, v: _T) -> _S:
        return self.conformal_factor(x) ** 2 * _dot(u, v)[..., 0]

    @manifold_method
    def exp(self, x: _T, v: _T) -> _T:
        r"""The exponential map $\mathrm{Exp}_x(v)$: the geodesic from `x` with velocity `v`."""
        # exp_x(v) = x (+) tanh(sqrt(c) lambda_x |v| / 2) v / (sqrt(c)|v|)  (Ganea et al.,
        # Lemma 2), with tanh(s)/(sqrt(c)|v|) = (lambda_x/2) tanh(s)/s written through s^2.
        lam = 2.0 / self._one_minus(x)
        s2 = self.c * (lam / 2) ** 2 * _dot(v, v)
        return self.mobius_add(x, (lam / 2) * _tanhc_of_square(s2) * v)

    @manifold_method
    def log(self, x: _T, y: _T) -> _T:
        r"""The logarithm $\mathrm{Log}_x(y)$, the inverse of `exp`: a tangent vector at `x`."""
        # log_x(y) = (2/(sqrt(c) lambda_x)) artanh(sqrt(c)|w|) w/|w|, w = (-x) (+) y (Ganea et
        # al., Lemma 2); (2/sqrt(c)) artanh(sqrt(c)|w|) is the distance.
        w, _ = self._minus_plus(x, y)
        nw = jnp.linalg.norm(w, axis=-1, keepdims=True)
        d = self.distance(x, y)[..., None]
        scale = d * self._one_minus(x) / 2 / jnp.where(nw > 0, nw, 1.0)
        return jnp.where(nw > 0, scale, 0.0) * w

    @manifold_method
    def distance(self, x: _T, y: _T) -> _S:
        r"""The geodesic distance $d(x, y) = \|\mathrm{Log}_x(y)\|_x$, one number per point."""
        # d_c = (2/sqrt(c)) artanh(sqrt(c)|(-x) (+) y|) (Ganea et al., sec. 2), in the equal
        # form (2/sqrt(c)) arsinh(sqrt(c)|x - y| / sqrt((1 - c|x|^2)(1 - c|y|^2))).
        _, d2 = self._minus_plus(x, y)
        ratio = self.c * d2 / (self._one_minus(x) * self._one_minus(y))
        return 2.0 / jnp.sqrt(self.c) * jnp.arcsinh(jnp.sqrt(ratio))[..., 0]

    def gyration(self, a: _T, b: _T, w: _T) -> _T:
        """$\\operatorname{gyr}[a, b] w = \\ominus(a \\oplus b) \\oplus (a \\oplus (b \\oplus
        w))$ in closed form (Ungar 2008; geoopt's `gyration` with $\\kappa = -c$).

        **Arguments:**

        - `a`, `b`: points of the ball, shape `(..., n)`.
        - `w`: the vector to rotate, shape `(..., n)`.

        **Returns:** $\\operatorname{gyr}[a, b] w$, shape `(..., n)` (a rotation of `w`).
        """
        c = self.c
        ab, aw, bw = _dot(a, b), _dot(a, w), _dot(b, w)
        a2, b2 = _dot(a, a), _dot(b, b)
        p = -(c**2) * aw * b2 + c * bw + 2 * c**2 * ab * bw
        q = -(c**2) * bw * a2 - c * aw
        den = 1 + 2 * c * ab + c**2 * a2 * b2
        return w + 2 * (p * a + q * b) / jnp.maximum(den, jnp.finfo(w.dtype).tiny)

    @manifold_method
    def transport(self, x: _T, y: _T, v: _T) -> _T:
        # P_{x->y}(v) = (lambda_x / lambda_y) gyr[y, -x] v (Ganea et al., sec. 2). The closed
        # form of `gyration` cancels catastrophically near the boundary (numerator and
        # denominator both O((1 - c|x|^2)^2) when y ~ x): in float32 it amplified rounding by
        # ~1e3 per step and made Riemannian Adam's momentum overflow -- the NaNs peers report.
        # Here the same gyration is rewritten in d = y - x (exact algebra, no cancellation):
        # gyr = v + 2 (P x + Q d) / ((1 - c|x|^2)(1 - c|y|^2) + c|d|^2), with
        # P = c(<d,v>(1 - c|x|^2) - c<x,v>|d|^2),
        # Q = c(-<x,v>(1 - c|x|^2) + 2c<x,d><x,v> - c|x|^2<d,v>).
        c = self.c
        d = y - x
        ox, oy = self._one_minus(x), self._one_minus(y)
        xv, dv, xd, dd, xx = _dot(x, v), _dot(d, v), _dot(x, d), _dot(d, d), _dot(x, x)
        big_p = c * (dv * ox - c * xv * dd)
        big_q = c * (-xv * ox + 2 * c * xd * xv - c * xx * dv)
        gyr = v + 2 * (big_p * x + big_q * d) / (ox * oy + c * dd)
        return (oy / ox) * gyr

    @manifold_method
    def retract(self, x: _T, v: _T) -> _T:
        return self.project(self.exp(x, v))

    @manifold_method
    def constraint_error(self, x: _T) -> _S:
        # How far outside the ball of radius (1 - margin)/sqrt(c) the point is (zero inside).
        r = jnp.sqrt(self.c) * jnp.linalg.norm(x, axis=-1)
        return jnp.maximum(r - (1.0 - ball_margin(storage_dtype(x))), 0.0)

    @random_point_method
    def random_point(
        self, key: PRNGKeyArray, shape: tuple[int, ...] = (), dtype: DTypeLike | None = None
    ) -> _T:
        # exp_0(z/2) = tanh(sqrt(c)|z|/2) z/(sqrt(c)|z|), z standard normal: the geodesic
        # distance from the origin is |z|.
        z = jax.random.normal(key, tuple(shape) + (self.n,), dtype)
        return self.project(self.exp(jnp.zeros_like(z), z / 2))
