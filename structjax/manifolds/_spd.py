"""Symmetric positive definite matrices $\\mathrm{SPD}(n)$ with three Riemannian metrics."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from .._linalg import expm, mm, mT, sym
from ._base import (
    AbstractManifold,
    manifold_method,
    random_point_method,
    refuse,
    storage_dtype,
)

# A point or tangent vector (leading batch axes), and one number per point.
_T = Float[Array, "... n n"]
_S = Float[Array, "..."]


_METRICS = ("affine", "log_euclidean", "bures_wasserstein")


def _from_eig(q, w):
    """$Q \\operatorname{diag}(w) Q^\\top$, exactly symmetric."""
    return sym(mm(q * w[..., None, :], mT(q)))


def _matrix_function(f, divided_difference):
    """$f$ of a symmetric matrix through `eigh`, with the Daleckii–Krein derivative
    $Df(S)[E] = Q (\\Gamma \\circ Q^\\top E Q) Q^\\top$, $\\Gamma_{ij} = f[\\lambda_i, \\lambda_j]$
    (Higham, *Functions of Matrices* (2008), Thm. 3.11): finite at repeated eigenvalues,
    where differentiating `eigh` itself is not."""

    @jax.custom_jvp
    def fun(s):
        w, q = jnp.linalg.eigh(sym(s))
        return _from_eig(q, f(w))

    @fun.defjvp
    def _jvp(primals, tangents):
        (s,), (ds,) = primals, tangents
        w, q = jnp.linalg.eigh(sym(s))
        gamma = divided_difference(w[..., :, None], w[..., None, :])
        return _from_eig(q, f(w)), sym(mm(mm(q, gamma * (mm(mm(mT(q), sym(ds)), q))), mT(q)))

    return fun


def _dd_log(a, b):
    # log[a, b] = log1p((a - b)/b)/(a - b), accurate for close a, b; 1/a when a == b.
    same = a == b
    diff = jnp.where(same, 1.0, a - b)
    return jnp.where(same, 1.0 / a, jnp.log1p(diff / b) / diff)


_sqrtm = _matrix_function(jnp.sqrt, lambda a, b: 1.0 / (jnp.sqrt(a) + jnp.sqrt(b)))
_invsqrtm = _matrix_function(
    lambda w: 1.0 / jnp.sqrt(w),
    lambda a, b: -1.0 / (jnp.sqrt(a * b) * (jnp.sqrt(a) + jnp.sqrt(b))),
)
_logm = _matrix_function(jnp.log, _dd_log)


@jax.jit
def _expm(s):
    # Padé scaling-and-squaring rather than `eigh`: its derivatives of every order are finite
    # at S = 0 (all eigenvalues equal), which `exp` retractions need at V = 0.
    return sym(expm(sym(s)))


def _frob(a, b):
    return jnp.sum(a * b, axis=(-2, -1))


class SymmetricPositiveDefinite(AbstractManifold):
    """The symmetric positive definite $n \\times n$ matrices, points of shape `(..., n, n)`.

    Tangent vectors are symmetric matrices. Three metrics:

    - `"affine"` (affine-invariant): $\\langle U, V\\rangle_X = \\operatorname{tr}(X^{-1} U
      X^{-1} V)$; $\\operatorname{Exp}_X(V) = X^{1/2} \\exp(X^{-1/2} V X^{-1/2}) X^{1/2}$,
      $d(X, Y) = \\|\\log(X^{-1/2} Y X^{-1/2})\\|_F$, gradient $X \\operatorname{sym}(G) X$
      (Bhatia, *Positive Definite Matrices* (2007), ch. 6; pymanopt's `positive_definite.py`).
      Retraction `"second_order"` (default) $X + V + \\tfrac12 V X^{-1} V$ (Jeuris, Vandebril
      & Vandereycken 2012), always positive definite; or `"exp"`. Transport: parallel
      transport $E V E^\\top$, $E = (Y X^{-1})^{1/2}$ (Sra & Hosseini 2015), isometric.
    - `"log_euclidean"`: the pull-back of the Frobenius metric by $\\log$: $\\langle U,
      V\\rangle_X = \\langle D\\log(X)[U], D\\log(X)[V]\\rangle_F$, $d(X, Y) = \\|\\log X -
      \\log Y\\|_F$, $\\operatorname{Exp}_X(V) = \\exp(\\log X + D\\log(X)[V])$ (Arsigny,
      Fillard, Pennec & Ayache 2007). Retraction `"exp"`; parallel transport
      $D\\log(Y)^{-1} D\\log(X)$ (isometric: the space is flat).
    - `"bures_wasserstein"`: $\\langle U, V\\rangle_X = \\tfrac12 \\operatorname{tr}(
      \\mathcal{L}_X[U] V)$ with $X \\mathcal{L} + \\mathcal{L} X = U$;
      $\\operatorname{Exp}_X(V) = X + V + \\mathcal{L}_X[V] X \\mathcal{L}_X[V]$,
      $\\operatorname{Log}_X(Y) = (XY)^{1/2} + (YX)^{1/2} - 2X$, $d^2 = \\operatorname{tr} X +
      \\operatorname{tr} Y - 2 \\operatorname{tr}(X^{1/2} Y X^{1/2})^{1/2}$, gradient
      $4 \\operatorname{sym}(G X)$ (Malagò, Montrucchio & Pistone 2018; Han, Mishra, Jawanpuria
      & Gao 2021, Table 1). Retraction `"exp"`; transport: the identity on $\\mathrm{Sym}(n)$
      (not isometric; the parallel transport has no closed form).

    Matrix square roots and logarithms go through `eigh` of symmetrised inputs (derivatives by
    Daleckii–Krein); matrix exponentials through `jax.scipy.linalg.expm`.

    **Arguments:**

    - `n`: the matrix size.
    - `metric`: `"affine"` (default), `"log_euclidean"` or `"bures_wasserstein"`.
    - `retraction`: `"second_order"` or `"exp"` for the affine metric (default
      `"second_order"`); only `"exp"` for the others. `None` picks the default.
    - `min_eigenvalue`: the floor to which `project` clips eigenvalues; the floor used is
      the larger of it and $8 n \\varepsilon_{\\text{dtype}} \\lambda_{\\max}$, so that a projected
      float32 matrix stays numerically positive definite.
    - `checks`: `False` turns off the value checks (keyword-only).

    **Checks.** A point must be symmetric, $\\|X - X^\\top\\|_F/\\sqrt2 \\le$
    `point_tolerance`, and positive definite. `exp`, `log`, `distance`, `check_point` and
    every eager call test its smallest eigenvalue ($> 0$, strictly: a semidefinite matrix
    has no inverse). Under `jit` the hot-path methods test the symmetry and the sign of the
    diagonal (a necessary condition, O(n^2)), plus the factorisation each already computes:
    the Cholesky factor of $X$ in the affine `inner` and `"second_order"` retraction
    (replacing an LU solve: the same cost), the eigenvalues of $X$ in every log-Euclidean
    and Bures-Wasserstein map, the finiteness of the transport operator. The affine
    `egrad_to_rgrad` ($X G X$, no factorisation) checks symmetry and diagonal only.

    **Raises:** `ValueError` for a bad `n`, metric, retraction or `min_eigenvalue`; see
    **Checks**.

    **Example:**

    ```pycon
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import structjax.manifolds as sm
    >>> m = sm.SymmetricPositiveDefinite(3)
    >>> x = m.random_point(jax.random.key(0))
    >>> y = m.exp(x, m.random_tangent(jax.random.key(1), x))
    >>> print(bool(jnp.all(jnp.linalg.eigvalsh(y) > 0)), bool(jnp.allclose(y, y.T)))
    True True
    >>> print(bool(jnp.allclose(m.exp(x, m.log(x, y)), y, atol=1e-10)))
    True

    ```
    """

    n: int = eqx.field(static=True)
    metric: str = eqx.field(static=True, default="affine")
    retraction: str | None = eqx.field(static=True, default=None)
    min_eigenvalue: float = eqx.field(static=True, default=1e-12)
    checks: bool = eqx.field(static=True, default=True, kw_only=True)

    def __check_init__(self):
        call = f"`SymmetricPositiveDefinite(n={self.n}, metric={self.metric!r}, ...)`"
        if self.n < 1:
            raise ValueError(f"{call} needs n >= 1.")
        if self.metric not in _METRICS:
            raise ValueError(f"{call}: metric must be one of {_METRICS}.")
        allowed = ("second_order", "exp", None) if self.metric == "affine" else ("exp", None)
        if self.retraction not in allowed:
            raise ValueError(
                f"{call} got retraction={self.retraction!r}; the {self.metric} metric offers "
                f"{allowed[:-1]}."
            )
        if not self.min_eigenvalue > 0:
            raise ValueError(f"{call} needs min_eigenvalue > 0, got {self.min_eigenvalue}.")

    @property
    def point_shape(self) -> tuple[int, ...]:
        return (self.n, self.n)

    # --- checks ------------------------------------------------------------------------------

    def _off(self, x, tol, full):
        asym = jnp.sqrt(_frob(x - mT(x), x - mT(x)) / 2)
        if full:
            low, what = jnp.linalg.eigvalsh(sym(x))[..., 0], "smallest eigenvalue"
        else:
            low, what = jnp.min(jnp.diagonal(x, axis1=-2, axis2=-1), axis=-1), "diagonal"
        bad = ~(asym <= tol) | ~(low > 0)
        found = jnp.where(jnp.any(~(asym <= tol)), jnp.max(asym), jnp.min(low))
        needs = (
            f"symmetric positive definite (|x - x^T|_F / sqrt(2) <= {tol:.0e} and {what} "
            "> 0; found is the asymmetry if too large, else the smallest value)"
        )
        return bad, found, needs

    def _definite(self, out, flag_bad, how):
        return refuse(self, out, flag_bad, f"`x` and `y` positive definite ({how})")

    def _eigh(self, x, name="x"):
        """`eigh(sym(x))`, with `x` refused unless its eigenvalues are positive."""
        w, q = jnp.linalg.eigh(sym(x))
        w = refuse(self, w, ~(w[..., 0] > 0), f"`{name}` positive definite (an eigenvalue <= 0)")
        return w, q

    def _cholesky(self, x):
        """The Cholesky factor of `x`, refused where it does not exist."""
        chol = jnp.linalg.cholesky(sym(x))
        bad = ~jnp.all(jnp.isfinite(chol), axis=(-2, -1))
        return refuse(self, chol, bad, "`x` positive definite (its Cholesky factorisation failed)")

    # --- embedding-level maps, common to the three metrics ----------------------------------

    @manifold_method
    def project(self, x: _T) -> _T:
        w, q = jnp.linalg.eigh(sym(x))
        # A relative floor of 8 n eps lambda_max outlasts the backward error (~ n eps |X|) of
        # a later `eigh`, so a projected float32 point is still positive definite there
        # (eps of the caller's dtype: float16 points are rounded after a float32 projection).
        rel = 8 * self.n * float(jnp.finfo(storage_dtype(x)).eps)
        floor = jnp.maximum(self.min_eigenvalue, rel * jnp.max(jnp.abs(w), axis=-1))
        return _from_eig(q, jnp.maximum(w, floor[..., None]))

    @manifold_method
    def to_tangent(self, x: _T, v: _T) -> _T:
        return sym(v)

    @manifold_method
    def constraint_error(self, x: _T) -> _S:
        # Asymmetry plus violation of positive definiteness.
        asym = jnp.sqrt(_frob(x - mT(x), x - mT(x)) / 2)
        lam_min = jnp.linalg.eigvalsh(sym(x))[..., 0]
        return asym + jnp.maximum(-lam_min, 0.0)

    @random_point_method
    def random_point(
        self, key: PRNGKeyArray, shape: tuple[int, ...] = (), dtype: DTypeLike | None = None
    ) -> _T:
        # I + A A^T / n: eigenvalues in [1, ~5], well conditioned even in float32.
        a = jax.random.normal(key, tuple(shape) + (self.n, self.n), dtype)
        return sym(jnp.eye(self.n, dtype=a.dtype) + mm(a, mT(a)) / self.n)

    @manifold_method
    def random_tangent(self, key: PRNGKeyArray, x: _T) -> _T:
        """A random tangent vector, $S$ symmetric standard normal carried to the metric:
        $X^{1/2} S X^{1/2}$ (affine), $D\\log(X)^{-1}[S]$ (log-Euclidean), so that
        $\\|V\\|_X = \\|S\\|_F$; $S$ itself (Bures–Wasserstein). Ambient noise would have
        Riemannian length $\\sim 1/\\lambda_{\\min}$ in the first two metrics, and a random
        walk with such steps makes the exponential overflow."""
        s = sym(jax.random.normal(key, x.shape, x.dtype))
        if self.metric == "affine":
            xh = _sqrtm(x)
            return sym(mm(mm(xh, s), xh))
        if self.metric == "log_euclidean":
            return self._dlog(x, s, power=-1)
        return s

    # --- metric-dependent maps ----------------------------------------------------------------

    def _lyapunov(self, x, u):
        # L with X L + L X = U, from X = Q diag(w) Q^T.
        w, q = self._eigh(x)
        return sym(mm(mm(q, (mm(mm(mT(q), u), q)) / (w[..., :, None] + w[..., None, :])), mT(q)))

    def _dlog(self, x, u, power=1, name="x"):
        # D log(X)[U] (power 1), its inverse D exp(log X)[U] (power -1), or D log* D log (2).
        w, q = self._eigh(x, name)
        gamma = _dd_log(w[..., :, None], w[..., None, :])
        return sym(mm(mm(q, gamma**power * (mm(mm(mT(q), sym(u)), q))), mT(q)))

    @manifold_method
    def inner(self, x: _T, u: _T, v: _T) -> _S:
        if self.metric == "affine":
            # tr(X^{-1} U X^{-1} V) (pymanopt `inner_product`) = <L^{-1} U L^{-T},
            # L^{-1} V L^{-T}>_F with X = L L^T: a Cholesky factor, which also checks X.
            chol = self._cholesky(x)

            def whiten(a):
                b = jsl.solve_triangular(chol, a, lower=True)
                return mT(jsl.solve_triangular(chol, mT(b), lower=True))

            return _frob(whiten(u), whiten(v))
        if self.metric == "log_euclidean":
            return _frob(self._dlog(x, u), self._dlog(x, v))
        return 0.5 * _frob(self._lyapunov(x, u), v)  # Han et al. 2021, sec. 2

    @manifold_method
    def egrad_to_rgrad(self, x: _T, g: _T) -> _T:
        g = sym(g)
        if self.metric == "affine":
            return sym(mm(mm(x, g), x))  # pymanopt `euclidean_to_riemannian_gradient`
        if self.metric == "log_euclidean":
            return self._dlog(x, g, power=-2)  # (D log* D log)^{-1} G
        return 4.0 * sym(mm(g, x))  # Han et al. 2021, Table 1

    @manifold_method
    def exp(self, x: _T, v: _T) -> _T:
        r"""The exponential map $\mathrm{Exp}_x(v)$: the geodesic from `x` with velocity `v`."""
        v = sym(v)
        if self.metric == "affine":
            xh, xih = _sqrtm(x), _invsqrtm(x)
            return sym(mm(mm(xh, _expm(mm(mm(xih, v), xih))), xh))
        if self.metric == "log_euclidean":
            return _expm(_logm(x) + self._dlog(x, v))
        lv = self._lyapunov(x, v)
        return sym(x + v + mm(mm(lv, x), lv))

    @manifold_method
    def log(self, x: _T, y: _T) -> _T:
        r"""The logarithm $\mathrm{Log}_x(y)$, the inverse of `exp`: a tangent vector at `x`."""
        if self.metric == "affine":
            xh, xih = _sqrtm(x), _invsqrtm(x)
            return sym(mm(mm(xh, _logm(mm(mm(xih, y), xih))), xh))
        if self.metric == "log_euclidean":
            return self._dlog(x, _logm(y) - _logm(x), power=-1)
        xh, xih = _sqrtm(x), _invsqrtm(x)
        return 2.0 * sym(mm(mm(xh, _sqrtm(mm(mm(xh, y), xh))), xih)) - 2.0 * sym(x)

    @manifold_method
    def distance(self, x: _T, y: _T) -> _S:
        r"""The geodesic distance $d(x, y) = \|\mathrm{Log}_x(y)\|_x$, one number per point."""
        if self.metric == "affine":
            xih = _invsqrtm(x)
            lam = jnp.linalg.eigvalsh(sym(mm(mm(xih, y), xih)))
            return jnp.sqrt(jnp.sum(jnp.log(lam) ** 2, axis=-1))
        if self.metric == "log_euclidean":
            d = _logm(x) - _logm(y)
            return jnp.sqrt(_frob(d, d))
        # min over orthogonal U of |X^{1/2} - Y^{1/2} U|_F (Bhatia, Jain & Lim 2019, Thm. 1):
        # a norm of a difference, accurate for nearby points unlike the trace formula.
        xh, yh = _sqrtm(x), _sqrtm(y)
        a, _, bt = jnp.linalg.svd(mm(yh, xh))
        d = xh - mm(mm(yh, a), bt)
        return jnp.sqrt(_frob(d, d))

    @manifold_method
    def retract(self, x: _T, v: _T) -> _T:
        if self.metric == "affine" and self.retraction != "exp":
            v = sym(v)
            # Jeuris et al. 2012; pymanopt `retraction`: = ½X + ½(X+V)X⁻¹(X+V) ≻ 0. X⁻¹V by
            # the Cholesky factor, which refuses an indefinite X (whose result `project`
            # would otherwise clip to a positive definite matrix, silently).
            chol = self._cholesky(x)
            y = x + v + mm(0.5 * v, jsl.cho_solve((chol, True), v))
        else:
            y = self.exp(x, v)
        # `project` is the identity in exact arithmetic; in float32 an ill-conditioned
        # result can round an eigenvalue to zero or below.
        return self.project(y)

    @manifold_method
    def transport(self, x: _T, y: _T, v: _T) -> _T:
        v = sym(v)
        if self.metric == "affine":
            # E = (Y X^{-1})^{1/2} = X^{1/2} (X^{-1/2} Y X^{-1/2})^{1/2} X^{-1/2}
            # (Sra & Hosseini 2015; Manopt `sympositivedefinitefactory` `paralleltransp`).
            xh, xih = _sqrtm(x), _invsqrtm(x)
            e = mm(mm(xh, _sqrtm(mm(mm(xih, y), xih))), xih)
            bad = ~jnp.all(jnp.isfinite(e), axis=(-2, -1))
            e = self._definite(e, bad, "the transport operator is not finite")
            return sym(mm(mm(e, v), mT(e)))
        if self.metric == "log_euclidean":
            return self._dlog(y, self._dlog(x, v), power=-1, name="y")
        return v
