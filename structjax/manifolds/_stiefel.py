"""The Stiefel manifold $\\mathrm{St}(n, p)$ of n x p matrices with orthonormal columns."""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from .._linalg import (
    expm as _expm,
    mm,
    mT,
    newton_schulz as _newton_schulz,
    polar,
    qf,
    skew,
    sym,
)
from ._base import (
    AbstractManifold,
    batch_inner,
    frobenius_defect,
    manifold_method,
    random_point_method,
    refuse,
)

# A point or tangent vector (leading batch axes), and one number per point.
_T = Float[Array, "... n p"]
_S = Float[Array, "..."]


RETRACTIONS = ("qr", "polar", "cholesky_qr", "cayley", "cayley_iterative")


# --- Orthonormalisations of a full-rank n x p matrix (shared with Orthogonal and Grassmann) ---


def _cholesky_qr(a):
    # One round of CholeskyQR: A R^{-1} with R^T R = A^T A (R = L^T, L lower Cholesky).
    # L^{-1} (p x p) first, then one product: with A's rows sharded over devices, the only
    # collective is the all-reduce of the p x p Gram matrix (a triangular solve against A^T
    # made XLA all-gather the whole n x p A; tests/scaleout asserts the collectives).
    r = jnp.linalg.cholesky(mm(mT(a), a))
    eye = jnp.broadcast_to(jnp.eye(r.shape[-1], dtype=r.dtype), r.shape)
    return mm(a, mT(jsl.solve_triangular(r, eye, lower=True)))


def cholesky_qr2(a):
    """CholeskyQR2: $Q = A R^{-1}$ with $R^\\top R = A^\\top A$, done twice so that the result
    is orthonormal to rounding (Fukaya, Nakatsukasa, Yanagisawa & Yamamoto 2014,
    "CholeskyQR2: a simple and communication-avoiding algorithm"). Same Q as `qf`."""
    return _cholesky_qr(_cholesky_qr(a))


def _cayley_factors(x, v):
    # W = P_X V X^T - X V^T P_X with P_X = I - X X^T / 2, written W = U Wr^T with
    # U = [P_X V, X], Wr = [X, -P_X V] (Wen & Yin 2013, eq. (2.4) and Lemma 4.1).
    d = v - mm(0.5 * x, mm(mT(x), v))
    return d, jnp.concatenate([d, x], axis=-1), jnp.concatenate([x, -d], axis=-1)


def cayley(x, v):
    """The Cayley retraction $(I - W/2)^{-1}(I + W/2) X$, $WX = V$, by the
    Sherman-Morrison-Woodbury form $X + U (I_{2p} - \\tfrac12 W_r^\\top U)^{-1} W_r^\\top X$:
    one 2p x 2p solve (Wen & Yin 2013, Lemma 4(1); Li, Fuxin & Todorovic 2020, eqs. (3)-(5)).
    Then one Newton-Schulz step, a rounding-level change: $Y = QX$ with $Q$ orthogonal keeps
    the error of $X$, which in float32 otherwise random-walks (7e-6 after 10^4 steps of size
    0.1, 3e-5 at size 0.3; with the step, 3e-7)."""
    p = x.shape[-1]
    _, u, wr = _cayley_factors(x, v)
    k = jnp.eye(2 * p, dtype=x.dtype) - 0.5 * (mm(mT(wr), u))
    return _newton_schulz(x + mm(u, jnp.linalg.solve(k, mm(mT(wr), x))))


def cayley_iterative(x, v, iterations: int):
    """The fixed-point iteration $Y \\leftarrow X + \\tfrac12 W (X + Y)$ from $Y = X + V$
    (Li, Fuxin & Todorovic 2020, ICLR, Algorithm 1 / eq. (7); their code's `Cayley_loop`),
    with $W$ applied in low-rank form, then one round of CholeskyQR to remove the truncation
    error of the iteration. The iteration converges for $\\|W\\|_2 < 2$ (Li et al. bound the
    step by $1/\\|W\\|_1$); beyond it the result is still orthonormal but no longer near the
    Cayley point."""
    d, _, _ = _cayley_factors(x, v)
    y = x + v
    for _ in range(iterations):
        z = x + y
        y = x + 0.5 * (mm(d, mm(mT(x), z)) - mm(x, mm(mT(d), z)))
    # Uncorrected, the orthogonality error O(|V|^{iterations + 2}) per step accumulates: in
    # float32, 10^4 steps of size 0.1 end at 1.6 (5 iterations: 6e-3). A Newton-Schulz step
    # only squares it (3e-4 worst case at size 0.1, 0.3 at size 0.3); one CholeskyQR round
    # leaves 5e-7 at sizes 0.1 and 0.3.
    return _cholesky_qr(y)


class AbstractFrames(AbstractManifold):
    """The manifolds whose points are $n \\times k$ matrices with orthonormal columns: the
    Stiefel manifold ($k = p$), Grassmann's representatives ($k = p$) and the orthogonal
    group ($k = n$). They share the point shape, the membership test (the full
    $\\|X^\\top X - I\\|_F$ where asked for, else the O(nk) norm test
    $|\\,\\|X\\|_F^2 - k\\,|/\\sqrt k$) and `project`, the polar factor (the nearest point).
    """

    n: eqx.AbstractVar[int]

    @property
    def _columns(self) -> int:
        return self.p  # pyright: ignore[reportAttributeAccessIssue]  # Stiefel, Grassmann; Orthogonal overrides

    _what: ClassVar[str] = "orthonormal columns"  # what a point is, for messages
    _k: ClassVar[str] = "p"  # the name of the column count, for messages

    def _check_frame(self, retractions: tuple[str, ...]):
        """`1 <= p <= n` and one of `retractions`, for Stiefel and Grassmann."""
        name = type(self).__name__
        p = self._columns
        retraction = self.retraction  # pyright: ignore[reportAttributeAccessIssue]  # a field of each subclass
        if p > self.n:
            raise ValueError(f"`{name}(n={self.n}, p={p})` needs p <= n.")
        if p < 1:
            raise ValueError(f"`{name}(n={self.n}, p={p})` needs p >= 1.")
        if retraction not in retractions:
            raise ValueError(f"`{name}(retraction={retraction!r})`: choose one of {retractions}.")

    @property
    def point_shape(self) -> tuple[int, ...]:
        return (self.n, self._columns)

    def _off(self, x, tol, full):
        k = self._k
        what = "|x^T x - I|_F" if full else f"|(|x|_F^2 - {k})| / sqrt({k})"
        err = stiefel_error(x) if full else frobenius_defect(x, self._columns)
        return ~(err <= tol), jnp.max(err), f"{self._what} ({what} <= {tol:.0e})"

    @manifold_method
    def project(self, x: _T) -> _T:
        return polar(x)


class Stiefel(AbstractFrames):
    """The Stiefel manifold of n x p matrices with orthonormal columns, with the embedded
    (Euclidean) metric $\\langle U, V\\rangle_X = \\mathrm{tr}(U^\\top V)$.

    `to_tangent` and `egrad_to_rgrad` are $V \\mapsto V - X\\,\\mathrm{sym}(X^\\top V)$,
    `transport` projects onto the tangent space at `y`, `exp` is the geodesic of the embedded
    metric (Edelman, Arias & Smith 1998, eq. (2.45)), `project` is the polar factor.
    References: Absil, Mahony & Sepulchre, *Optimization Algorithms on Matrix Manifolds*
    (2008), Sec. 3.6.1 and Ex. 4.1.3; pymanopt's and geoopt's `stiefel.py`.

    Retractions (`retraction=`), measured in float64 with `structjax.check.check_retraction`,
    costs for $A = X + V$ (cost of one Gram product $X^\\top X$ is $np^2$):

    - `"polar"` (default): $A (A^\\top A)^{-1/2} = (X + V)(I + V^\\top V)^{-1/2}$
      (Absil & Malick 2012, "Projection-like retractions on matrix manifolds", Prop. 3.3),
      the inverse square root of the p x p Gram matrix by its binomial series (`eigh` when
      far from I). Second order. Two products, ~$4np^2$, for steps near the manifold: the
      fastest retraction here (the optimizers benchmark measures each), and self-correcting
      (it orthonormalises $A$ whatever the error of $X$).
    - `"qr"`: the Q factor of $A$, sign-fixed so that $\\mathrm{diag}(R) > 0$ (Absil et al.
      2008, eq. (4.8)). First order. Householder QR, ~$2np^2$ flops, but slow on CPU.
    - `"cholesky_qr"`: the same Q as `"qr"` by CholeskyQR2 (Fukaya et al. 2014): two rounds
      of $A R^{-1}$ with $R$ the Cholesky factor of $A^\\top A$, the second keeping float32
      at rounding level. First order. ~$4np^2$, all matrix products.
    - `"cayley"`: $(I - W/2)^{-1}(I + W/2) X$ with
      $W = P_X V X^\\top - X V^\\top P_X$, $P_X = I - XX^\\top/2$ (Wen & Yin 2013; Li, Fuxin &
      Todorovic 2020, eqs. (3)-(5)), solved exactly through a 2p x 2p system, then one
      Newton-Schulz step (a rounding-level change that stops float32 drift). First order
      for the embedded metric when p < n: the tangent part of the acceleration is
      $(I - XX^\\top)V\\,X^\\top V \\neq 0$ (it is second order for the canonical metric);
      second order when p = n. ~$8np^2 + O(p^3)$.
    - `"cayley_iterative"`: `cayley_iterations` rounds (default 2) of the fixed-point
      iteration $Y \\leftarrow X + \\tfrac12 W (X + Y)$ of Li, Fuxin & Todorovic 2020 (ICLR,
      Algorithm 1), then one CholeskyQR round: without it the truncation error accumulates in
      float32 (to O(1) over 10^4 steps of size 0.1), with it the error stays at 5e-7.
      Converges to `"cayley"` as the iterations grow (for $\\|W\\|_2 < 2$); same order.
      ~$(4k + 3) np^2 + O(p^3)$.

    **Checks.** `exp` and every eager call refuse a base point with
    $\\|X^\\top X - I\\|_F >$ `point_tolerance` (1e-8 in float64, 1e-4 in float32), a Gram
    product; under `jit` the hot-path methods (`to_tangent`, `egrad_to_rgrad`, `retract`,
    `inner`, `transport`) test only $|\\,\\|X\\|_F^2 - p\\,|/\\sqrt p$ (a norm, which the full
    error bounds from above), so as not to add an $np^2$ product to a step. `check_point`
    applies the full test. A retraction whose $X + V$ is rank deficient (never for a tangent
    $V$: $X^\\top(X + V) = I + X^\\top V$ with $X^\\top V$ skew is invertible) is refused where
    it would return a non-finite point.

    **Arguments:**

    - `n`, `p`: points have shape `(..., n, p)`, with `1 <= p <= n`.
    - `retraction`: one of `"polar"` (default), `"qr"`, `"cholesky_qr"`, `"cayley"`,
      `"cayley_iterative"`.
    - `cayley_iterations`: the iterations of `"cayley_iterative"`.
    - `checks`: `False` turns off the value checks (keyword-only).

    **Raises:** `ValueError` for `p > n`, `p < 1`, an unknown retraction or
    `cayley_iterations < 1`; see **Checks**.

    **Example:**

    ```pycon
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import structjax.manifolds as sm
    >>> m = sm.Stiefel(5, 2)
    >>> x = m.random_point(jax.random.key(0), (4,))
    >>> y = m.retract(x, m.random_tangent(jax.random.key(1), x))
    >>> print(y.shape, bool(jnp.allclose(jnp.swapaxes(y, -1, -2) @ y, jnp.eye(2), atol=1e-12)))
    (4, 5, 2) True

    ```
    """

    n: int = eqx.field(static=True)
    p: int = eqx.field(static=True)
    retraction: str = eqx.field(static=True, default="polar")
    cayley_iterations: int = eqx.field(static=True, default=2)
    checks: bool = eqx.field(static=True, default=True, kw_only=True)

    def __check_init__(self):
        self._check_frame(RETRACTIONS)
        if self.cayley_iterations < 1:
            raise ValueError(
                f"`Stiefel(cayley_iterations={self.cayley_iterations})` needs at least 1."
            )

    @manifold_method
    def to_tangent(self, x: _T, v: _T) -> _T:
        return v - mm(x, sym(mm(mT(x), v)))

    @manifold_method
    def egrad_to_rgrad(self, x: _T, g: _T) -> _T:
        return self.to_tangent(x, g)

    @manifold_method
    def retract(self, x: _T, v: _T) -> _T:
        if self.retraction == "qr":
            y = qf(x + v)
        elif self.retraction == "polar":
            # A (A^T A)^{-1/2} equals (X + V)(I + V^T V)^{-1/2} for tangent V, and also pulls
            # a slightly non-orthonormal X back (no drift in float32).
            y = polar(x + v)
        elif self.retraction == "cholesky_qr":
            y = cholesky_qr2(x + v)
        elif self.retraction == "cayley":
            y = cayley(x, v)
        else:
            y = cayley_iterative(x, v, self.cayley_iterations)
        return refuse_rank_deficient(self, y, x + v)

    @manifold_method
    def exp(self, x: _T, v: _T) -> _T:
        """The geodesic of the embedded metric, $[X, V]\\exp\\begin{pmatrix} A & -S \\\\ I & A
        \\end{pmatrix} \\begin{pmatrix} I \\\\ 0 \\end{pmatrix} \\exp(-A)$ with $A = X^\\top V$,
        $S = V^\\top V$ (Edelman, Arias & Smith 1998, eq. (2.45); pymanopt's `Stiefel.exp`)."""
        p = self.p
        a = skew(mm(mT(x), v))
        eye = jnp.broadcast_to(jnp.eye(p, dtype=x.dtype), a.shape)
        block = jnp.concatenate(
            [
                jnp.concatenate([a, -(mm(mT(v), v))], axis=-1),
                jnp.concatenate([eye, a], axis=-1),
            ],
            axis=-2,
        )
        e = _expm(block)[..., :, :p]
        return mm(mm(jnp.concatenate([x, v], axis=-1), e), _expm(-a))

    @manifold_method
    def inner(self, x: _T, u: _T, v: _T) -> _S:
        return batch_inner(u, v, 2)

    @manifold_method
    def transport(self, x: _T, y: _T, v: _T) -> _T:
        return self.to_tangent(y, v)

    @manifold_method
    def constraint_error(self, x: _T) -> _S:
        return stiefel_error(x)

    @random_point_method
    def random_point(
        self, key: PRNGKeyArray, shape: tuple[int, ...] = (), dtype: DTypeLike | None = None
    ) -> _T:
        """Haar-distributed points: the sign-fixed QR of a Gaussian matrix (Mezzadri 2007)."""
        g = jax.random.normal(key, tuple(shape) + (self.n, self.p), dtype)
        return qf(g)


def stiefel_error(x):
    """$\\|X^\\top X - I\\|_F$, one number per matrix."""
    eye = jnp.eye(x.shape[-1], dtype=x.dtype)
    return jnp.linalg.norm(mm(mT(x), x) - eye, axis=(-2, -1))


def refuse_rank_deficient(manifold, y, a):
    """`y`, refused where it is not finite although `a` (= X + V) is: an orthonormalisation
    of a rank-deficient matrix. NaN in `a` passes through (for `optax.apply_if_finite`)."""

    def finite(z):
        return jnp.all(jnp.isfinite(z), axis=(-2, -1))

    bad = finite(a) & ~finite(y)
    return refuse(
        manifold,
        y,
        bad,
        "`x + v` of full column rank (v = -x, or another non-tangent v, "
        "can make it rank deficient)",
    )
