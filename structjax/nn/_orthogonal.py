"""Orthogonal layers: dense (four parametrisations) and 2-D convolution (Cayley in Fourier)."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from .._guards import check_param_dtype, check_real_floating, compute_dtype, in_float32, static_int
from .._linalg import cayley, expm as _expm, mm, mT, newton_schulz as _newton_schulz, skew
from ..manifolds import Constrained, Stiefel
from ._linear import AbstractLinear

_PARAMETRISATIONS = ("stiefel", "cayley", "expm", "bjorck")


def _bjorck(w, iterations: int):
    # Björck & Bowie 1971 ("An iterative algorithm for computing the best estimate of an
    # orthogonal matrix", SIAM J. Numer. Anal. 8), order 1: W <- W (3I - W^T W) / 2, as used for
    # Lipschitz networks by Anil, Lucas & Grosse 2019, Sec. 5. Scaling by the Frobenius norm
    # first puts every singular value in (0, 1], where the iteration converges to the polar
    # factor: small singular values grow by 3/2 per step, then converge quadratically.
    w = w / jnp.linalg.norm(w)
    for _ in range(iterations):
        w = _newton_schulz(w)
    return w


class OrthogonalLinear(AbstractLinear):
    """$y = W x + b$ with $W$ semi-orthogonal: orthonormal columns when
    `out_features >= in_features` (an isometry, $|Wx| = |x|$), orthonormal rows otherwise
    (a co-isometry); either way $\\|W\\|_2 = 1$, so the layer is 1-Lipschitz.

    The `parametrization` decides how $W$ is stored and trained ($n \\ge p$ the two sizes):

    - `"stiefel"` (default): $W$ is a `structjax.manifolds.Constrained` point of
      `Stiefel(n, p)`, trained with a Riemannian optimiser and `manifolds_of`:
      `structjax.optim.riemannian_adam(1e-3, manifolds=manifolds_of(params))`.
    - `"cayley"`: $W$ = the first $p$ columns of $(I + A)^{-1}(I - A)$, $A = $ skew part of a
      free $n \\times n$ matrix (Cayley 1846; as a layer, Helfrich, Willmott & Ye 2018,
      "Orthogonal recurrent neural networks with scaled Cayley transform"). Any optax
      optimiser. Covers the orthogonal matrices without eigenvalue $-1$.
    - `"expm"`: the first $p$ columns of $\\exp(A)$ (Lezcano-Casado & Martínez-Rubio 2019,
      "Cheap orthogonal constraints in neural networks"). Any optax optimiser; covers $SO(n)$.
    - `"bjorck"`: a free $n \\times p$ matrix orthonormalised by `bjorck_iterations` Björck
      iterations (Björck & Bowie 1971; Anil, Lucas & Grosse 2019). Any optax optimiser; exact
      to rounding once the iteration has converged (tens of iterations for well-conditioned
      weights: `check` it if you lower the count).

    **Arguments:**

    - `in_features`, `out_features`: the sizes (positive ints).
    - `use_bias`: add a bias $b$ (initialised to zero).
    - `dtype`: a real float; float16/bfloat16 weights are orthonormalised in float32 and
      rounded once.
    - `parametrization`: `"stiefel"`, `"cayley"`, `"expm"` or `"bjorck"`.
    - `bjorck_iterations`: an int >= 0 (used by `"bjorck"`).
    - `key`: a PRNG key for the initial weight.

    `__call__` takes ONE example of shape `(in_features,)` and returns shape
    `(out_features,)`; batch with `jax.vmap`.

    **Raises:** `ValueError` for sizes below 1, an unknown `parametrization` or
    `bjorck_iterations < 0`; `TypeError` for non-integer sizes or iteration counts, a
    non-float `dtype`, or an integer or complex input.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.nn as snn
    >>> layer = snn.OrthogonalLinear(3, 5, parametrization="cayley", key=jax.random.key(0))
    >>> w = layer.matrix
    >>> print(w.shape, bool(jnp.max(jnp.abs(w.T @ w - jnp.eye(3))) < 1e-12))
    (5, 3) True

    ```
    """

    weight: Constrained | Array
    bias: Array | None
    in_features: int = eqx.field(static=True)
    out_features: int = eqx.field(static=True)
    parametrization: str = eqx.field(static=True)
    bjorck_iterations: int = eqx.field(static=True)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        use_bias: bool = True,
        dtype: DTypeLike | None = None,
        parametrization: str = "stiefel",
        bjorck_iterations: int = 30,
        *,
        key: PRNGKeyArray,
    ):
        call = f"OrthogonalLinear({in_features!r}, {out_features!r})"
        in_features = static_int(in_features, call, "in_features", minimum=1)
        out_features = static_int(out_features, call, "out_features", minimum=1)
        bjorck_iterations = static_int(
            bjorck_iterations,
            f"OrthogonalLinear(bjorck_iterations={bjorck_iterations!r})",
            "bjorck_iterations",
            minimum=0,
        )
        check_param_dtype(dtype, call)
        if parametrization not in _PARAMETRISATIONS:
            raise ValueError(
                f"`OrthogonalLinear(parametrization={parametrization!r})` must be one of "
                f"{_PARAMETRISATIONS}."
            )
        n, p = max(in_features, out_features), min(in_features, out_features)
        stiefel = Stiefel(n, p)
        dtype = jnp.dtype(dtype or jnp.result_type(float))
        # (drawn in float32 for the 16-bit dtypes, which have no QR, then rounded)
        x = stiefel.random_point(key, dtype=compute_dtype(dtype)).astype(dtype)
        if parametrization == "stiefel":
            self.weight = Constrained(x, stiefel)
        elif parametrization == "bjorck":
            self.weight = x
        else:
            a = jax.random.normal(key, (n, n), compute_dtype(dtype)) / math.sqrt(n)
            self.weight = a.astype(dtype)
        self.bias = jnp.zeros(out_features, dtype) if use_bias else None
        self.in_features, self.out_features = in_features, out_features
        self.parametrization, self.bjorck_iterations = parametrization, bjorck_iterations

    @property
    def lipschitz_bound(self) -> float:
        """The Lipschitz constant, 1 ($\\|W\\|_2 = 1$)."""
        return 1.0

    @property
    def matrix(self) -> Float[Array, "out in"]:
        """$W$, of shape `(out_features, in_features)`, in the weight's dtype (computed in
        float32 for 16-bit weights)."""
        weight = self.weight.value if isinstance(self.weight, Constrained) else self.weight
        return _orthogonal_matrix(self, weight).astype(jnp.result_type(weight))


@in_float32
def _orthogonal_matrix(layer, weight):
    check_real_floating(weight, "OrthogonalLinear.matrix", "weight")
    p = min(layer.in_features, layer.out_features)
    if layer.parametrization == "stiefel":
        w = weight
    elif layer.parametrization == "bjorck":
        w = _bjorck(weight, layer.bjorck_iterations)
    elif layer.parametrization == "cayley":
        w = cayley(-4 * skew(weight))[:, :p]
    else:
        w = _expm(2 * skew(weight))[:, :p]
    return w if layer.out_features >= layer.in_features else w.T


class OrthogonalConv2d(eqx.Module):
    """An orthogonal 2-D convolution (Trockman & Kolter 2021, "Orthogonalizing convolutional
    layers with the Cayley transform", Sec. 3): the circular convolution whose kernel's 2-D
    Fourier transform $\\hat W(f)$ ($c \\times c$ at each frequency $f$) is replaced by the
    Cayley transform $(I + A)^{-1}(I - A)$ of $A = \\hat W - \\hat W^{*}$. The map is
    orthogonal on $\\mathbb R^{c \\times n \\times n}$ ($\\|Wx\\| = \\|x\\|$, 1-Lipschitz)
    for any kernel. Real FFTs over the last axis, as in their code: the self-conjugate
    frequencies get real (orthogonal) Cayley factors, so the output is real and exact.

    **Arguments:**

    - `channels`: the number of channels (in = out).
    - `kernel_size`: the side of the square kernel.
    - `size`: the side $n$ of the square input (positive ints, `kernel_size <= size`).
    - `use_bias`: add a per-channel bias (initialised to zero).
    - `dtype`: a real float; 16-bit kernels are transformed in float32.
    - `key`: a PRNG key for the initial kernel.

    **Raises:** `ValueError` for sizes below 1 or `kernel_size > size`, and at call time
    for an input not of shape `(channels, size, size)`; `TypeError` for non-integer sizes,
    a non-float `dtype`, or an integer or complex input.

    `__call__` takes ONE real input of shape `(channels, size, size)` and returns the same
    shape; batch with `jax.vmap`. Without bias it preserves norms:

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.nn as snn
    >>> conv = snn.OrthogonalConv2d(2, 3, 4, use_bias=False, key=jax.random.key(0))
    >>> x = jax.random.normal(jax.random.key(1), (2, 4, 4))
    >>> y = conv(x)
    >>> print(y.shape, bool(abs(jnp.linalg.norm(y) - jnp.linalg.norm(x)) < 1e-12))
    (2, 4, 4) True

    ```
    """

    kernel: Float[Array, "c c k k"]
    bias: Float[Array, " c"] | None
    channels: int = eqx.field(static=True)
    size: int = eqx.field(static=True)

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        size: int,
        use_bias: bool = True,
        dtype: DTypeLike | None = None,
        *,
        key: PRNGKeyArray,
    ):
        call = (
            f"OrthogonalConv2d(channels={channels!r}, kernel_size={kernel_size!r}, size={size!r})"
        )
        channels = static_int(channels, call, "channels", minimum=1)
        kernel_size = static_int(kernel_size, call, "kernel_size", minimum=1)
        size = static_int(size, call, "size", minimum=1)
        if not kernel_size <= size:
            raise ValueError(f"`{call}` needs channels >= 1 and 1 <= kernel_size <= size.")
        check_param_dtype(dtype, call)
        dtype = jnp.dtype(dtype or jnp.result_type(float))
        scale = 1.0 / (channels * kernel_size)
        shape = (channels, channels, kernel_size, kernel_size)
        kernel = scale * jax.random.normal(key, shape, compute_dtype(dtype))
        self.kernel = kernel.astype(dtype)
        self.bias = jnp.zeros(channels, dtype) if use_bias else None
        self.channels, self.size = channels, size

    @property
    def lipschitz_bound(self) -> float:
        """The Lipschitz constant, 1 (the map is orthogonal)."""
        return 1.0

    def _spectral(self):
        n = self.size
        w = jnp.fft.rfft2(self.kernel, s=(n, n))  # (c, c, n, n//2 + 1)
        w = jnp.moveaxis(w, (0, 1), (-2, -1))  # (n, n//2 + 1, c, c)
        return cayley(2 * (jnp.conj(mT(w)) - w))

    def __call__(
        self, x: Float[Array, "c n n"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "c n n"]:
        del key
        shape = (self.channels, self.size, self.size)
        if jnp.shape(x) != shape:
            raise ValueError(
                f"`OrthogonalConv2d` takes one input of shape {shape}, got {jnp.shape(x)}."
            )
        check_real_floating(x, "OrthogonalConv2d(...)(x)", "x")
        return self._apply(x)

    @in_float32
    def _apply(self, x):
        xf = jnp.moveaxis(jnp.fft.rfft2(x), 0, -1)[..., None]  # (n, n//2 + 1, c, 1)
        yf = jnp.moveaxis(mm(self._spectral(), xf)[..., 0], -1, 0)
        y = jnp.fft.irfft2(yf, s=(self.size, self.size))
        return y if self.bias is None else y + self.bias[:, None, None]
