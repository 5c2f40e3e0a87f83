"""The orthogonal group $O(n)$ and the special orthogonal group $SO(n)$."""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from .._linalg import expm as _expm, mm, mT, polar, skew
from ._base import (
    AbstractManifold,
    batch_inner,
    manifold_method,
    random_point_method,
    refuse,
)
from ._stiefel import (
    RETRACTIONS as STIEFEL_RETRACTIONS,
    AbstractFrames,
    Stiefel,
    refuse_rank_deficient,
    stiefel_error,
)

# A point or tangent vector (leading batch axes), and one number per point.
_T = Float[Array, "... n n"]
_S = Float[Array, "..."]


RETRACTIONS = ("exp",) + STIEFEL_RETRACTIONS

# Inverse scaling and squaring for the logarithm: 5 square roots bring every rotation angle
# below pi/32, where the 5-term series of artanh is accurate to 1e-16.
_LOG_SQUARE_ROOTS = 5
_LOG_SERIES_TERMS = 5


@jax.jit
def _logm_orthogonal(q):
    """The principal logarithm of an orthogonal matrix whose rotation angles are below $\\pi$.

    Square roots by $Q^{1/2} = \\mathrm{polar}(I + Q)$ (for $Q = e^A$, $I + Q = e^{A/2}\\cdot
    2\\cos(A/2)$ with the second factor symmetric positive definite), then
    $\\log Q = 2\\,\\mathrm{artanh}(C)$ with $C = (Q - I)(Q + I)^{-1} = \\tanh(A/2)$ skew
    (Higham 2008, *Functions of Matrices*, Sec. 11.5 and eq. (11.21)). Made of `polar`,
    `solve` and products only, so it is differentiable, also at $Q = I$.
    """
    eye = jnp.eye(q.shape[-1], dtype=q.dtype)
    for _ in range(_LOG_SQUARE_ROOTS):
        q = polar(eye + q)
    # C = (Q - I)(Q + I)^{-1}; Q + I commutes with Q - I, so solve from either side.
    c = mT(jnp.linalg.solve(mT(q + eye), mT(q - eye)))
    c = skew(c)
    c2 = mm(c, c)
    term, total = c, c
    for k in range(1, _LOG_SERIES_TERMS):
        term = mm(term, c2)
        total = total + term / (2 * k + 1)
    return (2.0 * 2**_LOG_SQUARE_ROOTS) * total


class Orthogonal(AbstractFrames):
    """The orthogonal group $O(n) = \\{X : X^\\top X = I\\}$ with the bi-invariant metric
    $\\langle U, V\\rangle_X = \\mathrm{tr}(U^\\top V)$ (the embedded one).

    Tangent vectors are $X\\Omega$ with $\\Omega$ skew. `exp` is $X \\exp(X^\\top V)$, the
    geodesic (one-parameter subgroups are geodesics of a bi-invariant metric); `log` and
    `distance` use the principal matrix logarithm of $X^\\top Y$, valid when no rotation angle
    of $X^\\top Y$ reaches $\\pi$ (in particular $\\det X^\\top Y = +1$). `transport` is left
    translation, $V \\mapsto Y X^\\top V$ (isometric). Reference: Absil, Mahony & Sepulchre
    (2008), Sec. 3.5.7 and 5.4.

    Retractions (`retraction=`), measured orders in float64:

    - `"exp"` (default): $X \\exp(\\mathrm{skew}(X^\\top V))$ by `expm` (Padé, scaling and
      squaring), then one Newton-Schulz step against float32 drift. Exact geodesic (second
      order). $O(n^3)$ with a larger constant than the others.
    - `"qr"`, `"polar"`, `"cholesky_qr"`, `"cayley"`, `"cayley_iterative"`: those of
      `Stiefel(n, n)` (see there), measured orders: qr 1, polar 2, cholesky_qr 1, cayley 2,
      cayley_iterative 2 (Cayley is second order when p = n).

    **Arguments:**

    - `n`: points have shape `(..., n, n)`.
    - `retraction`: one of `"exp"`, `"qr"`, `"polar"`, `"cholesky_qr"`, `"cayley"`,
      `"cayley_iterative"`.
    - `cayley_iterations`: the iterations of `"cayley_iterative"`.
    - `checks`: `False` turns off the value checks (keyword-only).

    **Checks.** `exp`, `log`, `distance` and every eager call refuse a base point with
    $\\|X^\\top X - I\\|_F >$ `point_tolerance` (1e-8 in float64, 1e-4 in float32); under
    `jit` the hot-path methods test $|\\,\\|X\\|_F^2 - n\\,|/\\sqrt n$ only (a norm, not an
    $n^3$ Gram product). `log` and `distance` refuse $X^\\top Y$ with $\\det < 0$ (the other
    component: no logarithm) or with a rotation angle $\\pi$ (where the principal logarithm
    is not defined), by the sign of the determinant and the finiteness of the result.

    **Raises:** `ValueError` for $n < 1$ or an unknown retraction; see **Checks**.

    **Example:**

    ```pycon
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import structjax.manifolds as sm
    >>> m = sm.Orthogonal(3)
    >>> x = m.random_point(jax.random.key(0))
    >>> y = m.retract(x, m.random_tangent(jax.random.key(1), x))
    >>> print(bool(jnp.allclose(y.T @ y, jnp.eye(3), atol=1e-12)))
    True
    >>> print(bool(jnp.allclose(m.exp(x, m.log(x, y)), y, atol=1e-10)))
    True

    ```
    """

    n: int = eqx.field(static=True)
    retraction: str = eqx.field(static=True, default="exp")
    cayley_iterations: int = eqx.field(static=True, default=2)
    checks: bool = eqx.field(static=True, default=True, kw_only=True)

    def __check_init__(self):
        if self.n < 1:
            raise ValueError(f"`{type(self).__name__}(n={self.n})` needs n >= 1.")
        if self.retraction not in RETRACTIONS:
            raise ValueError(
                f"`{type(self).__name__}(retraction={self.retraction!r})`: choose one of "
                f"{RETRACTIONS}."
            )

    @property
    def stiefel(self) -> Stiefel:
        """The same geometry as `Stiefel(n, n)`, to which the shared retractions delegate."""
        retraction = "polar" if self.retraction == "exp" else self.retraction
        return Stiefel(self.n, self.n, retraction, self.cayley_iterations, checks=self.checks)

    _what: ClassVar[str] = "orthogonal"
    _k: ClassVar[str] = "n"

    @property
    def _columns(self) -> int:
        return self.n

    @manifold_method
    def to_tangent(self, x: _T, v: _T) -> _T:
        return mm(x, skew(mm(mT(x), v)))

    @manifold_method
    def egrad_to_rgrad(self, x: _T, g: _T) -> _T:
        return self.to_tangent(x, g)

    @manifold_method
    def retract(self, x: _T, v: _T) -> _T:
        if self.retraction == "exp":
            # Newton-Schulz step: a rounding-level change, without which the float32 error
            # random-walks (3e-5 after 10^4 steps of size 0.1; with it, 3e-7).
            y = mm(x, _expm(skew(mm(mT(x), v))))
            return mm(y, 1.5 * jnp.eye(self.n, dtype=y.dtype) - 0.5 * (mm(mT(y), y)))
        return refuse_rank_deficient(self, self.stiefel.retract(x, v), x + v)

    @manifold_method
    def exp(self, x: _T, v: _T) -> _T:
        r"""The exponential map $\mathrm{Exp}_x(v)$: the geodesic from `x` with velocity `v`."""
        return mm(x, _expm(skew(mm(mT(x), v))))

    def _log_relative(self, x, y):
        q = mm(mT(x), y)
        out = _logm_orthogonal(q)
        bad = (jnp.linalg.det(q) <= 0) | ~jnp.all(jnp.isfinite(out), axis=(-2, -1))
        needs = "`x^T y` with det > 0 and no rotation angle pi (no principal logarithm)"
        return refuse(self, out, bad, needs)

    @manifold_method
    def log(self, x: _T, y: _T) -> _T:
        r"""The logarithm $\mathrm{Log}_x(y)$, the inverse of `exp`: a tangent vector at `x`."""
        return mm(x, self._log_relative(x, y))

    @manifold_method
    def distance(self, x: _T, y: _T) -> _S:
        r"""The geodesic distance $d(x, y) = \|\mathrm{Log}_x(y)\|_x$, one number per point."""
        return jnp.linalg.norm(self._log_relative(x, y), axis=(-2, -1))

    @manifold_method
    def inner(self, x: _T, u: _T, v: _T) -> _S:
        return batch_inner(u, v, 2)

    @manifold_method
    def transport(self, x: _T, y: _T, v: _T) -> _T:
        return mm(y, mm(mT(x), v))

    @manifold_method
    def constraint_error(self, x: _T) -> _S:
        return stiefel_error(x)

    @random_point_method
    def random_point(
        self, key: PRNGKeyArray, shape: tuple[int, ...] = (), dtype: DTypeLike | None = None
    ) -> _T:
        """Haar-distributed points (sign-fixed QR of a Gaussian matrix, Mezzadri 2007)."""
        return self.stiefel.random_point(key, shape, dtype)


class SpecialOrthogonal(AbstractManifold):
    """The rotation group $SO(n) = \\{X \\in O(n) : \\det X = 1\\}$, the identity component of
    $O(n)$, with the same (bi-invariant) geometry; see `Orthogonal`.

    Every retraction keeps $\\det = +1$ exactly in exact arithmetic: $\\det(X + X\\Omega) =
    \\det(I + \\Omega) > 0$ for skew $\\Omega$, and the Q/polar factors of a matrix with positive
    determinant have determinant $+1$. `project` is the nearest rotation: the polar factor,
    with the singular direction of the smallest singular value flipped when its determinant
    is $-1$ (Umeyama 1991; Higham 2008, Sec. 8.1). `constraint_error` adds $|\\det X - 1|$.

    **Checks.** As `Orthogonal`'s; the full test (`exp`, `log`, `distance`, eager calls,
    `check_point`) adds $|\\det X - 1|$, which the hot-path test under `jit` leaves out.

    **Arguments:** as for `Orthogonal`.

    **Example:**

    ```pycon
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import structjax.manifolds as sm
    >>> m = sm.SpecialOrthogonal(3)
    >>> x = m.random_point(jax.random.key(0))
    >>> y = m.retract(x, m.random_tangent(jax.random.key(1), x))
    >>> print(bool(m.constraint_error(y) < 1e-12), f"{float(jnp.linalg.det(y)):.3f}")
    True 1.000

    ```
    """

    n: int = eqx.field(static=True)
    retraction: str = eqx.field(static=True, default="exp")
    cayley_iterations: int = eqx.field(static=True, default=2)
    checks: bool = eqx.field(static=True, default=True, kw_only=True)

    def __check_init__(self):
        if self.n < 1:
            raise ValueError(f"`SpecialOrthogonal(n={self.n})` needs n >= 1.")
        if self.retraction not in RETRACTIONS:
            raise ValueError(
                f"`SpecialOrthogonal(retraction={self.retraction!r})`: choose one of {RETRACTIONS}."
            )

    @property
    def group(self) -> Orthogonal:
        """$O(n)$ with the same retraction, to which the geometry delegates."""
        return Orthogonal(self.n, self.retraction, self.cayley_iterations, checks=self.checks)

    @property
    def point_shape(self) -> tuple[int, ...]:
        return (self.n, self.n)

    def _off(self, x, tol, full):
        if not full:
            return self.group._off(x, tol, full)
        err = self.constraint_error(x)
        needs = f"a rotation (|x^T x - I|_F + |det x - 1| <= {tol:.0e})"
        return ~(err <= tol), jnp.max(err), needs

    @manifold_method
    def project(self, x: _T) -> _T:
        q = polar(x)
        # The right singular vector of the smallest singular value, without derivative (the
        # flip is a discrete choice; eigh's derivative is singular at repeated eigenvalues).
        _, vecs = jnp.linalg.eigh(jax.lax.stop_gradient(mm(mT(x), x)))
        v = vecs[..., :, :1]
        flipped = q - mm(2.0 * (mm(q, v)), mT(v))
        negative = (jnp.linalg.det(q) < 0)[..., None, None]
        return jnp.where(negative, flipped, q)

    @manifold_method
    def to_tangent(self, x: _T, v: _T) -> _T:
        return self.group.to_tangent(x, v)

    @manifold_method
    def egrad_to_rgrad(self, x: _T, g: _T) -> _T:
        return self.group.egrad_to_rgrad(x, g)

    @manifold_method
    def retract(self, x: _T, v: _T) -> _T:
        return self.group.retract(x, v)

    @manifold_method
    def exp(self, x: _T, v: _T) -> _T:
        r"""The exponential map $\mathrm{Exp}_x(v)$: the geodesic from `x` with velocity `v`."""
        return self.group.exp(x, v)

    @manifold_method
    def log(self, x: _T, y: _T) -> _T:
        r"""The logarithm $\mathrm{Log}_x(y)$, the inverse of `exp`: a tangent vector at `x`."""
        return self.group.log(x, y)

    @manifold_method
    def distance(self, x: _T, y: _T) -> _S:
        r"""The geodesic distance $d(x, y) = \|\mathrm{Log}_x(y)\|_x$, one number per point."""
        return self.group.distance(x, y)

    @manifold_method
    def inner(self, x: _T, u: _T, v: _T) -> _S:
        return self.group.inner(x, u, v)

    @manifold_method
    def transport(self, x: _T, y: _T, v: _T) -> _T:
        return self.group.transport(x, y, v)

    @manifold_method
    def constraint_error(self, x: _T) -> _S:
        return self.group.constraint_error(x) + jnp.abs(jnp.linalg.det(x) - 1.0)

    @random_point_method
    def random_point(
        self, key: PRNGKeyArray, shape: tuple[int, ...] = (), dtype: DTypeLike | None = None
    ) -> _T:
        """Haar-distributed rotations: Haar on $O(n)$, first column negated where
        $\\det = -1$ (a measure-preserving bijection between the two components)."""
        x = self.group.random_point(key, shape, dtype)
        sign = jnp.where(jnp.linalg.det(x) < 0, -1.0, 1.0).astype(x.dtype)
        return x.at[..., :, 0].multiply(sign[..., None])
