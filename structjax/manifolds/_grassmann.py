"""The Grassmann manifold $\\mathrm{Gr}(n, p)$ of p-dimensional subspaces of $\\mathbb{R}^n$."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from ._base import AbstractManifold, batch_inner, mm, mT
from ._stiefel import Stiefel, polar, qf

RETRACTIONS = ("qr", "polar")


class Grassmann(AbstractManifold):
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

    **Arguments:**

    - `n`, `p`: points have shape `(..., n, p)`, with `1 <= p <= n`.
    - `retraction`: `"polar"` or `"qr"`.
    """

    n: int = eqx.field(static=True)
    p: int = eqx.field(static=True)
    retraction: str = eqx.field(static=True, default="polar")

    def __check_init__(self):
        if self.p > self.n:
            raise ValueError(f"`Grassmann(n={self.n}, p={self.p})` needs p <= n.")
        if self.p < 1:
            raise ValueError(f"`Grassmann(n={self.n}, p={self.p})` needs p >= 1.")
        if self.retraction not in RETRACTIONS:
            raise ValueError(
                f"`Grassmann(retraction={self.retraction!r})`: choose one of {RETRACTIONS}."
            )

    @property
    def point_shape(self):
        return (self.n, self.p)

    def project(self, x):
        return polar(x)

    def to_tangent(self, x, v):
        return v - mm(x, mm(mT(x), v))

    def egrad_to_rgrad(self, x, g):
        return self.to_tangent(x, g)

    def retract(self, x, v):
        if self.retraction == "qr":
            return qf(x + v)
        return polar(x + v)

    def exp(self, x, v):
        u, s, wt = jnp.linalg.svd(v, full_matrices=False)
        return mm(mm(x, mT(wt)), jnp.cos(s)[..., :, None] * wt) + mm(
            u, jnp.sin(s)[..., :, None] * wt
        )

    def log(self, x, y):
        # (I - XX^T) Y (X^T Y)^{-1} = U tan(Sigma) W^T; the log is U Sigma W^T.
        ytx = mm(mT(y), x)
        b = mT(jnp.linalg.solve(ytx, mT(y) - mm(ytx, mT(x))))
        u, s, wt = jnp.linalg.svd(b, full_matrices=False)
        return mm(u, jnp.arctan(s)[..., :, None] * wt)

    def distance(self, x, y):
        cos = jnp.linalg.svd(mm(mT(x), y), compute_uv=False)  # descending: angles ascending
        sin = jnp.linalg.svd(y - mm(x, mm(mT(x), y)), compute_uv=False)[..., ::-1]  # ascending
        return jnp.linalg.norm(jnp.arctan2(sin, cos), axis=-1)

    def inner(self, x, u, v):
        return batch_inner(u, v, 2)

    def transport(self, x, y, v):
        return self.to_tangent(y, v)

    def constraint_error(self, x):
        # Representatives are Stiefel points: the same orthonormality error.
        return Stiefel(self.n, self.p).constraint_error(x)

    def random_point(self, key: PRNGKeyArray, shape=(), dtype=None):
        """Uniformly distributed subspaces: the span of a Haar-distributed Stiefel point."""
        return Stiefel(self.n, self.p).random_point(key, shape, dtype)
