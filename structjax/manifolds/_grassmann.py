"""The Grassmann manifold $\\mathrm{Gr}(n, p)$ of p-dimensional subspaces of $\\mathbb{R}^n$."""

import equinox as eqx
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from .._linalg import mm, mT, polar, qf
from ._base import (
    batch_inner,
    manifold_method,
    random_point_method,
    refuse,
)
from ._stiefel import AbstractFrames, Stiefel, refuse_rank_deficient, stiefel_error

# A point or tangent vector (leading batch axes), and one number per point.
_T = Float[Array, "... n p"]
_S = Float[Array, "..."]


RETRACTIONS = ("qr", "polar")


class Grassmann(AbstractFrames):
    """The Grassmann manifold: a subspace is represented by an n x p matrix $X$ with
    orthonormal columns spanning it ($X$ and $XQ$, $Q \\in O(p)$, are the same point).

    Tangent vectors are horizontal, $X^\\top V = 0$; the metric is
    $\\mathrm{tr}(U^\\top V)$ (the quotient metric of the Stiefel embedded one). `to_tangent`
    and `egrad_to_rgrad` are $V - XX^\\top V$, `transport` projects onto the horizontal space
    at `y`. `exp` is Edelman, Arias & Smith (1998), Thm 2.3: with $V = U\\Sigma W^\\top$ (thin
    SVD), $\\exp_X(V) = XW\\cos\\Sigma\\,W^\\top + U\\sin\\Sigma\\,W^\\top$. `log` is its inverse
    (Absil, Mahony & Sepulchre 2004, "Riemannian geometry of Grassmann manifolds", Sec. 3.8;
    pymanopt's `Grassmann.log`), defined when $X^\\top Y$ is invertible (all principal angles
    below $\\pi/2$); `distance` is the 2-norm of the principal angles $\\theta_i$, computed as
    $\\arctan2(\\sin\\theta_i, \\cos\\theta_i)$ from the singular values of $(I - XX^\\top)Y$ and
    $X^\\top Y$, accurate for near and far subspaces alike (Björck & Golub 1973).

    Retractions (`retraction=`), both $A = X + V$ then orthonormalised, both measured second
    order in float64 (as curves of subspaces; the representative's acceleration is vertical):

    - `"polar"` (default): $A (A^\\top A)^{-1/2}$, as `Stiefel`'s (the binomial series of
      the p x p Gram matrix's inverse square root). ~$4np^2$, matrix products only.
    - `"qr"`: sign-fixed Q factor of $A$ (Absil et al. 2008, Ex. 4.1.5). ~$2np^2$ flops,
      Householder (slower on CPU).

    **Checks.** As `Stiefel`'s: representatives with $\\|X^\\top X - I\\|_F >$
    `point_tolerance` are refused by `exp`, `log`, `distance` and every eager call; under
    `jit` the hot-path methods test $|\\,\\|X\\|_F^2 - p\\,|/\\sqrt p$ only (a norm). `log`
    needs $X^\\top Y$ invertible (no principal angle of $\\pi/2$) and refuses it where its
    result would not be finite.

    **Arguments:**

    - `n`, `p`: points have shape `(..., n, p)`, with `1 <= p <= n`.
    - `retraction`: `"polar"` or `"qr"`.
    - `checks`: `False` turns off the value checks (keyword-only).

    **Raises:** `ValueError` for `p > n`, `p < 1` or an unknown retraction; see **Checks**.

    **Example:**

    ```pycon
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import structjax.manifolds as sm
    >>> m = sm.Grassmann(5, 2)
    >>> x = m.random_point(jax.random.key(0))
    >>> y = m.retract(x, m.random_tangent(jax.random.key(1), x))
    >>> print(bool(m.constraint_error(y) < 1e-12))
    True
    >>> print(bool(jnp.allclose(m.distance(x, m.exp(x, m.log(x, y))), m.distance(x, y))))
    True

    ```
    """

    n: int = eqx.field(static=True)
    p: int = eqx.field(static=True)
    retraction: str = eqx.field(static=True, default="polar")
    checks: bool = eqx.field(static=True, default=True, kw_only=True)

    def __check_init__(self):
        self._check_frame(RETRACTIONS)

    @manifold_method
    def to_tangent(self, x: _T, v: _T) -> _T:
        return v - mm(x, mm(mT(x), v))

    @manifold_method
    def egrad_to_rgrad(self, x: _T, g: _T) -> _T:
        return self.to_tangent(x, g)

    @manifold_method
    def retract(self, x: _T, v: _T) -> _T:
        y = qf(x + v) if self.retraction == "qr" else polar(x + v)
        return refuse_rank_deficient(self, y, x + v)

    @manifold_method
    def exp(self, x: _T, v: _T) -> _T:
        r"""The exponential map $\mathrm{Exp}_x(v)$: the geodesic from `x` with velocity `v`."""
        u, s, wt = jnp.linalg.svd(v, full_matrices=False)
        return mm(mm(x, mT(wt)), jnp.cos(s)[..., :, None] * wt) + mm(
            u, jnp.sin(s)[..., :, None] * wt
        )

    @manifold_method
    def log(self, x: _T, y: _T) -> _T:
        r"""The logarithm $\mathrm{Log}_x(y)$, the inverse of `exp`: a tangent vector at `x`."""
        # (I - XX^T) Y (X^T Y)^{-1} = U tan(Sigma) W^T; the log is U Sigma W^T.
        ytx = mm(mT(y), x)
        b = mT(jnp.linalg.solve(ytx, mT(y) - mm(ytx, mT(x))))
        u, s, wt = jnp.linalg.svd(b, full_matrices=False)
        out = mm(u, jnp.arctan(s)[..., :, None] * wt)
        bad = ~jnp.all(jnp.isfinite(out), axis=(-2, -1))
        return refuse(self, out, bad, "`x^T y` invertible (no principal angle of pi/2)")

    @manifold_method
    def distance(self, x: _T, y: _T) -> _S:
        r"""The geodesic distance $d(x, y) = \|\mathrm{Log}_x(y)\|_x$, one number per point."""
        cos = jnp.linalg.svd(mm(mT(x), y), compute_uv=False)  # descending: angles ascending
        sin = jnp.linalg.svd(y - mm(x, mm(mT(x), y)), compute_uv=False)[..., ::-1]  # ascending
        return jnp.linalg.norm(jnp.arctan2(sin, cos), axis=-1)

    @manifold_method
    def inner(self, x: _T, u: _T, v: _T) -> _S:
        return batch_inner(u, v, 2)

    @manifold_method
    def transport(self, x: _T, y: _T, v: _T) -> _T:
        return self.to_tangent(y, v)

    @manifold_method
    def constraint_error(self, x: _T) -> _S:
        # Representatives are Stiefel points: the same orthonormality error.
        return stiefel_error(x)

    @random_point_method
    def random_point(
        self, key: PRNGKeyArray, shape: tuple[int, ...] = (), dtype: DTypeLike | None = None
    ) -> _T:
        """Uniformly distributed subspaces: the span of a Haar-distributed Stiefel point."""
        return Stiefel(self.n, self.p).random_point(key, shape, dtype)
