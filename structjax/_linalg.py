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
- `newton_schulz`: one Newton–Schulz step towards the orthonormal polar factor.
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
