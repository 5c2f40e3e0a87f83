"""Layers with a certified Lipschitz bound, and the invertible residual block built on them."""

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from .._guards import (
    check_param_dtype,
    guard,
    in_float32,
    positive_finite,
    static_float,
    static_int,
)
from .._linalg import mm
from ._bijection import AbstractBijection, check_vector, jit_method
from ._linear import AbstractLinear

LogDet = Float[Array, ""]


def _init_linear(in_features, out_features, use_bias, dtype, key):
    lin = eqx.nn.Linear(in_features, out_features, use_bias=use_bias, dtype=dtype, key=key)
    return lin.weight, lin.bias


def _check_sizes(call: str, in_features, out_features, dtype=None) -> tuple[int, int]:
    call = f"{call}({in_features!r}, {out_features!r})"
    check_param_dtype(dtype, call)
    return (
        static_int(in_features, call, "in_features", minimum=1),
        static_int(out_features, call, "out_features", minimum=1),
    )


class SpectralNormLinear(AbstractLinear):
    """$y = c\\, W x / \\|W\\|_2 + b$: a dense layer whose weight has spectral norm exactly
    $c$ (Miyato, Kataoka, Koyama & Yoshida 2018, "Spectral normalization for generative
    adversarial networks", eq. (8)), so the layer is $c$-Lipschitz.

    $\\|W\\|_2$ is computed exactly (the largest singular value), not by the one-step power
    iteration of Miyato et al., whose underestimate would void the bound that
    `InvertibleResidual` relies on.

    **Arguments:**

    - `in_features`, `out_features`: the sizes (positive ints).
    - `coefficient`: $c > 0$ (finite, a Python float: it is the declared bound).
    - `use_bias`: add a bias $b$.
    - `dtype`: the parameters' real floating dtype (default: JAX's default float).
    - `key`: a PRNG key for the initial weight.

    **Raises:** `ValueError` for sizes below 1 or $c$ not finite and positive; `TypeError`
    for non-integer sizes, a non-float `dtype`, or an integer or complex input.

    `__call__` takes ONE example `x` of shape `(in_features,)` and returns shape
    `(out_features,)`; batch with `jax.vmap`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.nn as snn
    >>> layer = snn.SpectralNormLinear(3, 5, coefficient=0.5, key=jax.random.key(0))
    >>> print(layer(jnp.ones(3)).shape)
    (5,)
    >>> print(bool(abs(jnp.linalg.norm(layer.matrix, 2) - 0.5) < 1e-12))
    True

    ```
    """

    weight: Float[Array, "out in"]
    bias: Float[Array, " out"] | None
    coefficient: float = eqx.field(static=True)
    in_features: int = eqx.field(static=True)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        coefficient: float = 1.0,
        use_bias: bool = True,
        dtype: DTypeLike | None = None,
        *,
        key: PRNGKeyArray,
    ):
        in_features, out_features = _check_sizes(
            "SpectralNormLinear", in_features, out_features, dtype
        )
        coefficient = static_float(
            coefficient,
            f"SpectralNormLinear(coefficient={coefficient!r})",
            "coefficient",
            positive_finite,
            "c > 0 (finite)",
        )
        self.weight, self.bias = _init_linear(in_features, out_features, use_bias, dtype, key)
        self.coefficient, self.in_features = coefficient, in_features

    @property
    def lipschitz_bound(self) -> float:
        """The declared Lipschitz constant $c$ (the spectral norm of `matrix`)."""
        return self.coefficient

    @property
    def matrix(self) -> Float[Array, "out in"]:
        """$c\\, W / \\|W\\|_2$, of shape `(out_features, in_features)`."""
        return _spectral_normalised(self, self.weight).astype(self.weight.dtype)


@in_float32
def _spectral_normalised(layer, weight):
    sigma = jnp.linalg.svd(weight, compute_uv=False)[0]
    return (layer.coefficient / sigma) * weight


class AOLLinear(AbstractLinear):
    """Almost-orthogonal Lipschitz layer (Prach & Lampert 2022, "Almost-orthogonal layers for
    efficient general-purpose Lipschitz networks", Theorem 1): $y = W D x + b$ with
    $D_{ii} = \\big(\\sum_j |W^\\top W|_{ij}\\big)^{-1/2}$, which guarantees $\\|WD\\|_2 \\le 1$
    for any $W$: a certified 1-Lipschitz layer with no SVD or iteration.

    **Arguments:**

    - `in_features`, `out_features`: the sizes (positive ints).
    - `use_bias`: add a bias $b$.
    - `dtype`: the parameters' real floating dtype (default: JAX's default float).
    - `key`: a PRNG key for the initial weight.

    **Raises:** `ValueError` for sizes below 1; `TypeError` for non-integer sizes, a
    non-float `dtype`, or an integer or complex input.

    `__call__` takes ONE example `x` of shape `(in_features,)` and returns shape
    `(out_features,)`; batch with `jax.vmap`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.nn as snn
    >>> layer = snn.AOLLinear(4, 3, key=jax.random.key(0))
    >>> print(layer(jnp.ones(4)).shape)
    (3,)
    >>> print(bool(jnp.linalg.norm(layer.matrix, 2) <= 1.0 + 1e-12))
    True

    ```
    """

    weight: Float[Array, "out in"]
    bias: Float[Array, " out"] | None
    in_features: int = eqx.field(static=True)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        use_bias: bool = True,
        dtype: DTypeLike | None = None,
        *,
        key: PRNGKeyArray,
    ):
        in_features, out_features = _check_sizes("AOLLinear", in_features, out_features, dtype)
        self.weight, self.bias = _init_linear(in_features, out_features, use_bias, dtype, key)
        self.in_features = in_features

    @property
    def lipschitz_bound(self) -> float:
        """The certified Lipschitz constant, 1."""
        return 1.0

    @property
    def matrix(self) -> Float[Array, "out in"]:
        """$W D$, of shape `(out_features, in_features)`, with $\\|WD\\|_2 \\le 1$."""
        gram = jnp.abs(mm(self.weight.T, self.weight))
        tiny = jnp.finfo(gram.dtype).tiny  # a zero column gets D_ii = 0 rather than a NaN
        d = jnp.where(gram.sum(1) > 0, jax.lax.rsqrt(jnp.maximum(gram.sum(1), tiny)), 0.0)
        return self.weight * d


class GroupSort(eqx.Module):
    """Sort each consecutive group of `group_size` entries (Anil, Lucas & Grosse 2019,
    "Sorting out Lipschitz function approximation", Sec. 4): a 1-Lipschitz, gradient-norm
    preserving activation; `group_size=2` is MaxMin.

    **Arguments:**

    - `group_size`: the size of each sorted group (a positive int; default 2).

    **Raises:** `TypeError` for a non-integer `group_size`, or a complex input; `ValueError`
    for `group_size < 1`, or an input that is not a vector whose size is a multiple of
    `group_size`.

    `__call__` takes ONE vector of shape `(n,)` and returns the same shape; batch with
    `jax.vmap`. Sorting is a permutation, so it preserves norms:

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.nn as snn
    >>> x = jnp.array([3.0, -1.0, 0.5, 2.0])
    >>> y = snn.GroupSort(2)(x)
    >>> print(y.tolist(), bool(jnp.linalg.norm(y) == jnp.linalg.norm(x)))
    [-1.0, 3.0, 0.5, 2.0] True

    ```
    """

    group_size: int = eqx.field(static=True, default=2)

    def __check_init__(self):
        static_int(self.group_size, f"GroupSort(group_size={self.group_size!r})", "group_size")

    @property
    def lipschitz_bound(self) -> float:
        """The Lipschitz constant, 1."""
        return 1.0

    def __call__(
        self, x: Float[Array, " n"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, " n"]:
        del key
        g = self.group_size
        if jnp.ndim(x) != 1 or x.shape[0] % g:
            raise ValueError(
                f"`GroupSort(group_size={g})` takes a vector whose size is a multiple of {g}, "
                f"got shape {jnp.shape(x)}."
            )
        if jnp.issubdtype(jnp.result_type(x), jnp.complexfloating):
            raise TypeError(
                f"`GroupSort(group_size={g})(x)` sorts real numbers; got a complex `x` "
                f"({jnp.result_type(x)})."
            )
        return jnp.sort(x.reshape(-1, g), axis=-1).reshape(-1)


class InvertibleResidual(AbstractBijection):
    """The invertible residual block of i-ResNet (Behrmann, Grathwohl, Chen, Duvenaud &
    Jacobsen 2019, "Invertible residual networks"): $y = x + g(x)$ with
    $\\mathrm{Lip}(g) \\le c < 1$, which makes the block a bi-Lipschitz bijection.

    - $g$ = `SpectralNormLinear`(coefficient $c$) $\\to \\sigma \\to$ `SpectralNormLinear`(1),
      with $\\sigma$ 1-Lipschitz (default ELU, as in the paper), so $\\mathrm{Lip}(g) \\le c$.
    - Inverse: the fixed point $x = y - g(x)$, a contraction with factor $c$ (their
      Algorithm 1), solved by `optimistix.FixedPointIteration` to `rtol = atol = 100 eps`;
      a solve that fails raises. Gradients through it use the implicit function theorem.
    - Log-determinant: $\\log\\det(I + J_g) = \\sum_{k \\ge 1} (-1)^{k+1}\\mathrm{tr}(J_g^k)/k$
      (their eq. (7), Theorem 3), with exact traces of the $d \\times d$ Jacobian, truncated
      after `log_det_terms` terms; `log_det_truncation_bound` states the error bound
      $d\\,c^{n+1} / ((n+1)(1-c))$ (their Theorem 4). By default $n$ is the smallest with
      that bound below `log_det_tol`.

    **Arguments:**

    - `dim`: the input size; `width`: the hidden layer's size (positive ints).
    - `coefficient`: $c \\in (0, 1)$, the bound on $\\mathrm{Lip}(g)$.
    - `activation`: 1-Lipschitz (default ELU).
    - `log_det_terms`: the number $n$ of series terms (an int >= 1), or `None` for the
      smallest $n$ whose bound is below `log_det_tol` (> 0).
    - `dtype`: the parameters' real floating dtype. With float16/bfloat16 parameters or
      inputs the block runs in float32 and rounds its outputs once.
    - `checks`: default True: refuse an inverse whose fixed-point solve did not converge;
      False skips that test.
    - `key`: a PRNG key, split between the two linear layers.

    `__call__` (= `forward`) takes ONE vector of shape `(dim,)`; batch with `jax.vmap`.

    **Raises:** `ValueError` for $c \\notin (0, 1)$, `log_det_terms < 1` or
    `log_det_tol <= 0`; `TypeError` for non-integer sizes or integer/complex inputs; and, from
    `inverse`, a `ValueError` (eagerly) or a runtime error (under `jit`) when the fixed point
    does not converge (non-finite `y`).

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.check as sc, structjax.nn as snn
    >>> block = snn.InvertibleResidual(3, width=8, coefficient=0.5, key=jax.random.key(0))
    >>> x = jnp.array([0.1, -0.2, 0.3])
    >>> print(bool(sc.inversion_error(block.forward, block.inverse, x) < 1e-12))
    True
    >>> log_det = lambda x: block.forward_and_log_det(x)[1]
    >>> print(bool(sc.log_det_error(block.forward, log_det, x) < 1e-9))
    True

    ```
    """

    first: SpectralNormLinear
    second: SpectralNormLinear
    activation: Callable
    dim: int = eqx.field(static=True)
    coefficient: float = eqx.field(static=True)
    log_det_terms: int = eqx.field(static=True)
    checks: bool = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        width: int = 64,
        coefficient: float = 0.9,
        activation: Callable = jax.nn.elu,
        log_det_terms: int | None = None,
        log_det_tol: float = 1e-10,
        dtype: DTypeLike | None = None,
        checks: bool = True,
        *,
        key: PRNGKeyArray,
    ):
        coefficient = static_float(
            coefficient,
            f"InvertibleResidual(coefficient={coefficient!r})",
            "coefficient",
            lambda c: (c > 0) & (c < 1),
            "0 < c < 1: with Lip(g) >= 1, x + g(x) need not be invertible and the fixed-point "
            "inverse and log-det series diverge",
        )
        call = f"InvertibleResidual(dim={dim!r}, width={width!r})"
        dim, width = static_int(dim, call, "dim"), static_int(width, call, "width")
        check_param_dtype(dtype, call)
        k1, k2 = jax.random.split(key)
        self.first = SpectralNormLinear(dim, width, coefficient, dtype=dtype, key=k1)
        self.second = SpectralNormLinear(width, dim, 1.0, dtype=dtype, key=k2)
        self.activation, self.dim, self.coefficient = activation, dim, coefficient
        if log_det_terms is None:
            log_det_tol = static_float(
                log_det_tol,
                f"InvertibleResidual(log_det_tol={log_det_tol!r})",
                "log_det_tol",
                positive_finite,
                "> 0 (finite)",
            )
            log_det_terms = 1
            while _series_bound(dim, coefficient, log_det_terms) > log_det_tol:
                log_det_terms += 1
        self.log_det_terms = static_int(
            log_det_terms, f"InvertibleResidual(log_det_terms={log_det_terms!r})", "log_det_terms"
        )
        self.checks = bool(checks)

    @property
    def log_det_truncation_bound(self) -> float:
        """A bound on the log-determinant's truncation error (Behrmann et al., Theorem 4)."""
        return _series_bound(self.dim, self.coefficient, self.log_det_terms)

    def residual(self, x: Float[Array, " dim"]) -> Float[Array, " dim"]:
        """$g(x)$, with $\\mathrm{Lip}(g) \\le c$."""
        return self.second(self.activation(self.first(x)))

    def _log_det(self, x):
        jac = jax.jacfwd(self.residual)(x)

        def term(power, k):
            power = mm(power, jac)
            return power, jnp.trace(power) * (-1.0) ** (k + 1) / k

        ks = jnp.arange(1, self.log_det_terms + 1, dtype=x.dtype)
        _, terms = jax.lax.scan(term, jnp.eye(self.dim, dtype=x.dtype), ks)
        return jnp.sum(terms)

    def forward_and_log_det(self, x: Float[Array, " dim"]) -> tuple[Float[Array, " dim"], LogDet]:
        check_vector(x, self.dim, "InvertibleResidual.forward", "x")
        return jit_method(_iresnet_forward, self, x)

    def inverse_and_log_det(self, y: Float[Array, " dim"]) -> tuple[Float[Array, " dim"], LogDet]:
        check_vector(y, self.dim, "InvertibleResidual.inverse", "y")
        x, log_det, failed = jit_method(_iresnet_inverse, self, y)
        message = (
            f"`InvertibleResidual(dim={self.dim}, coefficient={self.coefficient}).inverse(y)`: "
            "the fixed-point solve of x = y - g(x) did not converge (needs a finite `y`)."
        )
        return guard((x, log_det), failed, message, checks=self.checks)


@in_float32
def _iresnet_forward(block, x):
    return x + block.residual(x), block._log_det(x)


@in_float32
def _iresnet_inverse(block, y):
    tol = 100 * float(jnp.finfo(y.dtype).eps)
    # Enough iterations to contract an O(|y|) error to the tolerance, with margin.
    steps = 4 + math.ceil(math.log(tol / 10) / math.log(block.coefficient))
    solution = optx.fixed_point(
        lambda x, y: y - block.residual(x),
        # (a norm in the default float dtype: optimistix keeps its error state in it)
        optx.FixedPointIteration(rtol=tol, atol=tol, norm=_max_norm),
        y,
        y,
        max_steps=steps,
        throw=False,
    )
    x = solution.value
    failed = (solution.result != optx.RESULTS.successful) | ~jnp.all(jnp.isfinite(x))
    return x, -block._log_det(x), failed


def _max_norm(x):
    return optx.max_norm(x).astype(jnp.result_type(float))


def _series_bound(dim: int, c: float, n: int) -> float:
    return dim * c ** (n + 1) / ((n + 1) * (1 - c))
