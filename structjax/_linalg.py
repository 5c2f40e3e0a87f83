"""The shared matrix helpers of every pillar: one home, one convention.

- `mm`: the matrix product at full precision (structure kept to rounding on GPU/TPU too);
- `mT`, `sym`, `skew`: transposes and the symmetric/skew parts of batches of matrices;
- `expm`: the matrix exponential of a batch (Padé scaling and squaring, Higham 2005,
  "The scaling and squaring method for the matrix exponential revisited", as
  `jax.scipy.linalg.expm` implements it), its products at full precision;
- `cayley`: the Cayley transform $\\mathrm{cay}(W) = (I - W/2)^{-1}(I + W/2)$, the one sign
  convention of structjax (Hairer, Lubich & Wanner, *GNI*, Sec. IV.8.3, eq. (8.10); Iserles,
  Munthe-Kaas, Nørsett & Zanna 2000, Sec. 8): orthogonal (unitary) for skew-symmetric
  (skew-Hermitian) $W$, $\\mathrm{cay}(W) = \\exp(W) + O(W^3)$;
- `newton_schulz`: one Newton–Schulz step towards the orthonormal polar factor;
- `polar`, `inv_sqrt`: the orthonormal polar factor $A(A^\\top A)^{-1/2}$ (the nearest
  matrix with orthonormal columns) through the inverse square root of the small Gram
  matrix, by a binomial series near $I$ and `eigh` otherwise (Higham 2008, *Functions of
  Matrices*, Thm 8.4, Sec. 5.3 and 6.3), with derivatives finite at repeated eigenvalues;
- `qf`: the Q factor of the thin QR decomposition with a positive diagonal of R (unique).
"""

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl


def sym(a):
    """The symmetric part of a batch of square matrices."""
    return 0.5 * (a + jnp.swapaxes(a, -1, -2))


def skew(a):
    """The skew-symmetric part of a batch of square matrices."""
    return 0.5 * (a - jnp.swapaxes(a, -1, -2))


def mm(a, b):
    """`a @ b` at full precision. Structure such as $X^\\top X = I$ is kept to rounding, which
    the default float32 matrix product of GPUs (TF32, 10-bit mantissa) and TPUs (bfloat16
    passes) would break at 1e-3; on CPU this is the ordinary product."""
    return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)


def mT(a):  # noqa: N802 (the name of the array attribute it mirrors)
    """The transpose of the last two axes."""
    return jnp.swapaxes(a, -1, -2)


@jax.jit
def expm(a):
    """$\\exp(A)$ for a batch of square matrices (leading axes batch), by Padé scaling and
    squaring, with its products at full precision (see `mm`). Compiled once per shape, so
    that eager calls do not recompile. Its derivatives of every order are finite at $A = 0$
    (an `eigh`-based exponential's are not when eigenvalues coincide)."""
    with jax.default_matmul_precision("highest"):
        return jnp.vectorize(jsl.expm, signature="(k,k)->(k,k)")(a)


def cayley(w):
    """$\\mathrm{cay}(W) = (I - W/2)^{-1}(I + W/2)$ (the convention above), one linear solve;
    orthogonal (unitary) for skew-symmetric (skew-Hermitian) $W$."""
    eye = jnp.eye(w.shape[-1], dtype=w.dtype)
    return jnp.linalg.solve(eye - 0.5 * w, eye + 0.5 * w)


def newton_schulz(y):
    """One Newton–Schulz step towards the polar factor, $Y (3I - Y^\\top Y)/2$ (Higham 2008,
    *Functions of Matrices*, eq. (8.20)): the identity on orthonormal $Y$ to first order, it
    squares a small orthogonality error."""
    return mm(y, 1.5 * jnp.eye(y.shape[-1], dtype=y.dtype) - 0.5 * (mm(mT(y), y)))


# --- Orthonormalisation: the polar factor through an inverse square root, and QR ------------


def qf(a):
    """The Q factor of the thin QR decomposition with $\\mathrm{diag}(R) > 0$ (unique)."""
    q, r = jnp.linalg.qr(a)
    d = jnp.diagonal(r, axis1=-2, axis2=-1)
    return q * jnp.where(d < 0, -1.0, 1.0).astype(a.dtype)[..., None, :]


@jax.custom_jvp
def _lyapunov(r, c):
    """The solution $Z$ of $RZ + ZR = C$ for symmetric positive definite $R$."""
    w, u = jnp.linalg.eigh(r)
    ct = mm(mm(mT(u), c), u)
    return mm(mm(u, ct / (w[..., :, None] + w[..., None, :])), mT(u))


@_lyapunov.defjvp
def _lyapunov_jvp(primals, tangents):
    # Differentiate R Z + Z R = C; only ever calls `_lyapunov` again, never differentiates
    # `eigh`, whose derivative is singular at repeated eigenvalues (such as at R = I).
    (r, c), (dr, dc) = primals, tangents
    z = _lyapunov(r, c)
    return z, _lyapunov(r, dc - mm(dr, z) - mm(z, dr))


# Above this Frobenius distance from I the binomial series takes too many terms (> 25 in
# float64) and `eigh` is cheaper.
_SERIES_RADIUS = 0.25


def _inv_sqrt_eigh(s):
    w, u = jnp.linalg.eigh(s)
    return mm(u * jax.lax.rsqrt(w)[..., None, :], mT(u))


def _inv_sqrt_series(s, eta):
    """$(I + E)^{-1/2} = \\sum_k \\binom{-1/2}{k} E^k$, $E = S - I$, summed until the next
    term's bound $|c_k| \\eta^k$ ($\\eta = \\|E\\|_F \\ge \\|E\\|_2$) is below the unit
    roundoff. Only matrix products of the small p x p matrix, and none at all next to a
    retraction step of size $\\epsilon$ in float32: there $\\eta \\approx \\epsilon^2$ and
    $I - E/2$ is exact to rounding for $\\epsilon \\lesssim 10^{-2}$."""
    eye = jnp.broadcast_to(jnp.eye(s.shape[-1], dtype=s.dtype), s.shape)
    e = s - eye
    tol = jnp.finfo(s.dtype).eps / 4

    def cond(c):
        k, coef, _, _ = c
        return (jnp.abs(coef) * eta**k > tol) & (k < 60)

    def body(c):
        k, coef, power, acc = c
        power = mm(power, e)
        return k + 1, coef * (-0.5 - k) / (k + 1), power, acc + coef * power

    # Terms 0 and 1 always; then term k (coefficient c_k) while it can still matter.
    init = (jnp.asarray(2, s.dtype), jnp.asarray(0.375, s.dtype), e, eye - 0.5 * e)
    return jax.lax.while_loop(cond, body, init)[3]


def _inv_sqrt_first(s, eta):
    del eta
    eye = jnp.eye(s.shape[-1], dtype=s.dtype)
    return 1.5 * eye - 0.5 * s


def _inv_sqrt_eigh_branch(s, eta):
    del eta
    return _inv_sqrt_eigh(s)


# Module-level branches: `lax.switch` caches its traced branches by function identity, so
# an eager call reuses the compiled program. Closures built per call (as these once were)
# made every eager `polar` compile a new XLA program (0.2-1 s a call).
_INV_SQRT_BRANCHES = (_inv_sqrt_first, _inv_sqrt_series, _inv_sqrt_eigh_branch)


@jax.custom_jvp
def inv_sqrt(s):
    """$S^{-1/2}$ for symmetric positive definite $S$: by the binomial series in $S - I$ when
    $\\|S - I\\|_F \\le 1/4$ (matrix products only; Higham 2008, *Functions of Matrices*,
    Sec. 5.3 and 6.3 for the series), by `eigh` otherwise. Its derivative stays finite at
    repeated eigenvalues (Daleckii-Krein, via the Lyapunov equation
    $S^{1/2} D + D S^{1/2} = dS$ for $D = d(S^{1/2})$)."""
    eye = jnp.eye(s.shape[-1], dtype=s.dtype)
    eta = jnp.max(jnp.linalg.norm(s - eye, axis=(-2, -1)))
    # I - E/2 alone when the next term, (3/8) E^2, is below rounding (a retraction step of
    # size ~1e-2 in float32): a branch of its own, as the loop costs more than its work.
    one_term = 0.375 * eta**2 <= jnp.finfo(s.dtype).eps / 4
    branch = jnp.where(one_term, 0, jnp.where(eta <= _SERIES_RADIUS, 1, 2))
    return jax.lax.switch(branch, _INV_SQRT_BRANCHES, s, eta)


@inv_sqrt.defjvp
def _inv_sqrt_jvp(primals, tangents):
    (s,), (ds,) = primals, tangents
    g = inv_sqrt(s)
    d_root = _lyapunov(mm(s, g), ds)
    return g, mm(mm(-g, d_root), g)


@jax.jit
def polar(a):
    """The orthonormal polar factor $A (A^\\top A)^{-1/2}$, the nearest matrix with
    orthonormal columns (Higham 2008, *Functions of Matrices*, Thm 8.4), through `inv_sqrt`
    of the small p x p Gram matrix: two n x p products when $A$ is near the manifold."""
    return mm(a, inv_sqrt(mm(mT(a), a)))
