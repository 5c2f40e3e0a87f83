"""SympNets (Jin, Zhang, Zhu, Tang & Karniadakis 2020, "SympNets: intrinsic
structure-preserving symplectic networks for identifying Hamiltonian systems", Neural Networks
132): maps of phase space $(q, p)$ built from shears, each exactly symplectic for any weights.

Every module is a shear of one half of phase space by the gradient of a function of the other
half, $p \\mapsto p + \\nabla V(q)$ ("up") or $q \\mapsto q + \\nabla T(p)$ ("low"), whose
Jacobian $\\begin{pmatrix} I & 0 \\\\ S & I \\end{pmatrix}$ has $S$ symmetric: symplectic, volume
preserving (log-determinant 0) and inverted exactly by subtracting the same shear. The
definitions follow the paper's Section 3 (linear, activation and gradient modules) and the
authors' code (`learner/nn/sympnet.py`), with the state ordered $(q, p)$ as everywhere in
structjax.
"""

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._guards import check_param_dtype, compute_dtype, static_int
from ._bijection import AbstractBijection, check_even, check_vector, zero_log_det

_KINDS = ("up", "low")
Phase = PyTree[Array]  # the state `(q, p)`, each of shape `(dim,)`
LogDet = Float[Array, ""]


def _check_kind(kind: str, call: str):
    if kind not in _KINDS:
        raise ValueError(f"`{call}(kind={kind!r})`: kind must be 'up' (kick p) or 'low' (drift q).")


def _check_state(y, dim: int, call: str):
    if not (isinstance(y, tuple) and len(y) == 2):
        raise ValueError(f"`{call}` takes the phase-space state as a tuple `(q, p)`, got {y!r}.")
    check_vector(y[0], dim, f"{call}((q, p))", "q")
    check_vector(y[1], dim, f"{call}((q, p))", "p")


def _dtype(dtype, call: str):
    check_param_dtype(dtype, call)
    return jnp.dtype(dtype or jnp.result_type(float))


def _normal(key, shape, dtype, scale: float):
    """N(0, scale^2) draws in `dtype` (drawn in float32 for the 16-bit dtypes)."""
    return (scale * jax.random.normal(key, shape, compute_dtype(dtype))).astype(dtype)


def _shear(y, kind: str, sign: float, field: Callable):
    """`up`: p += sign * field(q); `low`: q += sign * field(p)."""
    q, p = y
    return (q, p + sign * field(q)) if kind == "up" else (q + sign * field(p), p)


def gradient_shear(k, a, b, activation, x):
    """$K^\\top \\mathrm{diag}(a)\\, \\sigma(K x + b)$: the gradient of
    $\\sum_i a_i \\Sigma(K x + b)_i$ with $\\Sigma' = \\sigma$, so its Jacobian
    $K^\\top \\mathrm{diag}(a \\sigma') K$ is symmetric."""
    return k.T @ (a * activation(k @ x + b))


class GradientModule(AbstractBijection):
    """The gradient module $\\mathcal G$: $p \\mapsto p + K^\\top \\mathrm{diag}(a)\\,
    \\sigma(Kq + b)$ (`kind="up"`) or the same in $q$ from $p$ (`kind="low"`), with
    $K \\in \\mathbb R^{w \\times d}$ (Jin et al. 2020, Sec. 3.2, eq. (8)).
    Acts on `(q, p)`; symplectic, log-determinant 0.

    **Arguments:**

    - `dim`: $d$, the size of $q$ and of $p$; `width`: $w$ (positive ints).
    - `kind`: `"up"` (shear $p$ by a function of $q$) or `"low"` (shear $q$).
    - `activation`: $\\sigma$, elementwise (default `tanh`).
    - `dtype`: the parameters' real floating dtype (default: JAX's default float).
    - `key`: a PRNG key for $K$ and $a$ ($b$ starts at zero).

    **Raises:** `ValueError` for an unknown `kind` or sizes below 1; `TypeError` for
    non-integer sizes or a non-float `dtype`; at call time `ValueError` for a state that is
    not a tuple `(q, p)` of shape-`(dim,)` vectors, `TypeError` for integer or complex ones.

    `__call__` (= `forward`) takes ONE state `(q, p)`, a tuple of two arrays of shape
    `(dim,)`, and returns one; batch with `jax.vmap`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.check as sc, structjax.nn as snn
    >>> net = snn.GradientModule(2, width=8, key=jax.random.key(0))
    >>> q, p = jnp.array([0.1, -0.2]), jnp.array([0.3, 0.4])
    >>> print(bool(sc.symplecticity_error(lambda q, p: net((q, p)), q, p) < 1e-12))
    True
    >>> print(bool(sc.inversion_error(net.forward, net.inverse, (q, p)) < 1e-14))
    True

    ```
    """

    k: Float[Array, "width dim"]
    a: Float[Array, " width"]
    b: Float[Array, " width"]
    activation: Callable
    dim: int = eqx.field(static=True)
    kind: str = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        width: int,
        kind: str = "up",
        activation: Callable[[Array], Array] = jnp.tanh,
        dtype: DTypeLike | None = None,
        *,
        key: PRNGKeyArray,
    ):
        call = f"GradientModule(dim={dim!r}, width={width!r})"
        _check_kind(kind, "GradientModule")
        dim, width = static_int(dim, call, "dim"), static_int(width, call, "width")
        kk, ka = jax.random.split(key)
        dtype = _dtype(dtype, call)
        self.k = _normal(kk, (width, dim), dtype, 1 / math.sqrt(dim))
        self.a = _normal(ka, (width,), dtype, 1 / math.sqrt(width))
        self.b = jnp.zeros(width, dtype)
        self.activation, self.dim, self.kind = activation, dim, kind

    def _field(self, x):
        return gradient_shear(self.k, self.a, self.b, self.activation, x)

    def forward_and_log_det(self, y: Phase) -> tuple[Phase, LogDet]:
        _check_state(y, self.dim, "GradientModule")
        return _shear(y, self.kind, 1.0, self._field), zero_log_det(y)

    def inverse_and_log_det(self, y: Phase) -> tuple[Phase, LogDet]:
        _check_state(y, self.dim, "GradientModule")
        return _shear(y, self.kind, -1.0, self._field), zero_log_det(y)


class ActivationModule(AbstractBijection):
    """The activation module $\\mathcal N$: $p \\mapsto p + a \\odot \\sigma(q)$ (`"up"`) or
    $q \\mapsto q + a \\odot \\sigma(p)$ (`"low"`) (Jin et al. 2020, Sec. 3.1, eq. (6)).
    Acts on `(q, p)`; symplectic, log-determinant 0.

    **Arguments:**

    - `dim`: the size of $q$ and of $p$ (a positive int).
    - `kind`: `"up"` (shear $p$ by a function of $q$) or `"low"` (shear $q$).
    - `activation`: $\\sigma$, elementwise (default `tanh`).
    - `dtype`: the parameters' real floating dtype (default: JAX's default float).
    - `key`: a PRNG key for $a$.

    **Raises:** `ValueError` for an unknown `kind` or sizes below 1; `TypeError` for
    non-integer sizes or a non-float `dtype`; at call time `ValueError` for a state that is
    not a tuple `(q, p)` of shape-`(dim,)` vectors, `TypeError` for integer or complex ones.

    `__call__` (= `forward`) takes ONE state `(q, p)`, a tuple of two arrays of shape
    `(dim,)`, and returns one; batch with `jax.vmap`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.check as sc, structjax.nn as snn
    >>> net = snn.ActivationModule(2, "low", key=jax.random.key(0))
    >>> q, p = jnp.array([0.1, -0.2]), jnp.array([0.3, 0.4])
    >>> print(bool(sc.symplecticity_error(lambda q, p: net((q, p)), q, p) < 1e-12))
    True
    >>> print(bool(sc.inversion_error(net.forward, net.inverse, (q, p)) < 1e-14))
    True

    ```
    """

    a: Float[Array, " dim"]
    activation: Callable
    dim: int = eqx.field(static=True)
    kind: str = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        kind: str = "up",
        activation: Callable[[Array], Array] = jnp.tanh,
        dtype: DTypeLike | None = None,
        *,
        key: PRNGKeyArray,
    ):
        call = f"ActivationModule(dim={dim!r})"
        _check_kind(kind, "ActivationModule")
        dim = static_int(dim, call, "dim")
        dtype = _dtype(dtype, call)
        self.a = _normal(key, (dim,), dtype, 1 / math.sqrt(dim))
        self.activation, self.dim, self.kind = activation, dim, kind

    def _field(self, x):
        return self.a * self.activation(x)

    def forward_and_log_det(self, y: Phase) -> tuple[Phase, LogDet]:
        _check_state(y, self.dim, "ActivationModule")
        return _shear(y, self.kind, 1.0, self._field), zero_log_det(y)

    def inverse_and_log_det(self, y: Phase) -> tuple[Phase, LogDet]:
        _check_state(y, self.dim, "ActivationModule")
        return _shear(y, self.kind, -1.0, self._field), zero_log_det(y)


class LinearModule(AbstractBijection):
    """The linear module $\\mathcal L$: a product of `sublayers` unit triangular symplectic
    matrices, alternately $p \\mapsto p + S_i q$ and $q \\mapsto q + S_i p$ with
    $S_i = A_i + A_i^\\top$ symmetric, then a bias (Jin et al. 2020, Sec. 3.1, eq. (5)).
    Acts on `(q, p)`; symplectic, log-determinant 0.

    **Arguments:**

    - `dim`: the size of $q$ and of $p$; `sublayers`: the number of factors (positive ints).
    - `dtype`: the parameters' real floating dtype (default: JAX's default float).
    - `key`: a PRNG key for the $A_i$ (the biases start at zero).

    **Raises:** `ValueError` for sizes below 1; `TypeError` for non-integer sizes or a
    non-float `dtype`; at call time as `GradientModule`.

    `__call__` (= `forward`) takes ONE state `(q, p)`, a tuple of two arrays of shape
    `(dim,)`, and returns one; batch with `jax.vmap`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.check as sc, structjax.nn as snn
    >>> net = snn.LinearModule(2, sublayers=3, key=jax.random.key(0))
    >>> q, p = jnp.array([0.1, -0.2]), jnp.array([0.3, 0.4])
    >>> print(bool(sc.symplecticity_error(lambda q, p: net((q, p)), q, p) < 1e-12))
    True
    >>> print(bool(sc.inversion_error(net.forward, net.inverse, (q, p)) < 1e-14))
    True

    ```
    """

    a: Float[Array, "sublayers dim dim"]
    bias_q: Float[Array, " dim"]
    bias_p: Float[Array, " dim"]
    dim: int = eqx.field(static=True)

    def __init__(
        self, dim: int, sublayers: int = 4, dtype: DTypeLike | None = None, *, key: PRNGKeyArray
    ):
        call = f"LinearModule(dim={dim!r}, sublayers={sublayers!r})"
        dim, sublayers = static_int(dim, call, "dim"), static_int(sublayers, call, "sublayers")
        dtype = _dtype(dtype, call)
        # The authors' code draws S_i ~ N(0, 0.01) and zero biases.
        self.a = _normal(key, (sublayers, dim, dim), dtype, 0.01)
        self.bias_q, self.bias_p = jnp.zeros(dim, dtype), jnp.zeros(dim, dtype)
        self.dim = dim

    def _kinds(self):
        return ["up" if i % 2 == 0 else "low" for i in range(self.a.shape[0])]

    def forward_and_log_det(self, y: Phase) -> tuple[Phase, LogDet]:
        _check_state(y, self.dim, "LinearModule")
        for a, kind in zip(self.a, self._kinds()):
            y = _shear(y, kind, 1.0, lambda x, a=a: (a + a.T) @ x)
        q, p = y
        return (q + self.bias_q, p + self.bias_p), zero_log_det(y)

    def inverse_and_log_det(self, y: Phase) -> tuple[Phase, LogDet]:
        _check_state(y, self.dim, "LinearModule")
        q, p = y
        y = (q - self.bias_q, p - self.bias_p)
        for a, kind in reversed(list(zip(self.a, self._kinds()))):
            y = _shear(y, kind, -1.0, lambda x, a=a: (a + a.T) @ x)
        return y, zero_log_det(y)


class AbstractSympNet(AbstractBijection):
    """A sequence of symplectic modules (`modules`) applied in order, on one state `(q, p)`:
    symplectic and volume preserving (log-determinant 0), inverted exactly by running the
    modules' inverses in reverse. Subclasses: `GSympNet`, `LASympNet`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.nn as snn
    >>> net = snn.GSympNet(2, layers=2, width=4, key=jax.random.key(0))
    >>> print(isinstance(net, snn.AbstractSympNet), len(net.modules))
    True 2

    ```
    """

    modules: eqx.AbstractVar[tuple[AbstractBijection, ...]]

    def forward_and_log_det(self, y: Phase) -> tuple[Phase, LogDet]:
        for m in self.modules:
            y = m.forward(y)
        return y, zero_log_det(y)

    def inverse_and_log_det(self, y: Phase) -> tuple[Phase, LogDet]:
        for m in reversed(self.modules):
            y = m.inverse(y)
        return y, zero_log_det(y)


class GSympNet(AbstractSympNet):
    """G-SympNet: `layers` gradient modules, alternately up and low (Jin et al. 2020,
    Sec. 3.2). Maps `(q, p) -> (q', p')`, symplectic for any weights; a universal
    approximator of symplectic maps (their Theorem 5).

    **Arguments:**

    - `dim`: $d$, with $q, p \\in \\mathbb R^d$ (a positive int).
    - `layers`: the number of gradient modules; `width`: each module's width.
    - `activation`: elementwise (default `tanh`).
    - `dtype`: the parameters' real floating dtype (default: JAX's default float).
    - `key`: a PRNG key, split over the modules.

    **Raises:** `ValueError` for sizes below 1; `TypeError` for
    non-integer sizes or a non-float `dtype`; at call time `ValueError` for a state that is
    not a tuple `(q, p)` of shape-`(dim,)` vectors, `TypeError` for integer or complex ones.

    `__call__` (= `forward`) takes ONE state `(q, p)`, a tuple of two arrays of shape
    `(dim,)`, and returns one; batch with `jax.vmap`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.check as sc, structjax.nn as snn
    >>> net = snn.GSympNet(2, layers=3, width=8, key=jax.random.key(0))
    >>> q, p = jnp.array([0.1, -0.2]), jnp.array([0.3, 0.4])
    >>> print(bool(sc.symplecticity_error(lambda q, p: net((q, p)), q, p) < 1e-12))
    True
    >>> print(bool(sc.inversion_error(net.forward, net.inverse, (q, p)) < 1e-14))
    True

    ```
    """

    modules: tuple[GradientModule, ...]

    def __init__(
        self,
        dim: int,
        layers: int = 4,
        width: int = 32,
        activation: Callable[[Array], Array] = jnp.tanh,
        dtype: DTypeLike | None = None,
        *,
        key: PRNGKeyArray,
    ):
        layers = static_int(layers, f"GSympNet(layers={layers!r})", "layers")
        keys = jax.random.split(key, layers)
        self.modules = tuple(
            GradientModule(dim, width, _KINDS[i % 2], activation, dtype, key=k)
            for i, k in enumerate(keys)
        )


class LASympNet(AbstractSympNet):
    """LA-SympNet: linear modules interleaved with activation modules (alternately up and
    low), $\\mathcal L_{n} \\circ \\mathcal N \\circ \\dots \\circ \\mathcal N \\circ \\mathcal L_1$
    (Jin et al. 2020, Sec. 3.1). Symplectic for any weights.

    **Arguments:**

    - `dim`: the size of $q$ and of $p$ (a positive int).
    - `layers`: the number of linear modules (one more than of activation modules).
    - `sublayers`: the factors per linear module.
    - `activation`: elementwise (default `tanh`).
    - `dtype`: the parameters' real floating dtype (default: JAX's default float).
    - `key`: a PRNG key, split over the modules.

    **Raises:** `ValueError` for sizes below 1; `TypeError` for
    non-integer sizes or a non-float `dtype`; at call time `ValueError` for a state that is
    not a tuple `(q, p)` of shape-`(dim,)` vectors, `TypeError` for integer or complex ones.

    `__call__` (= `forward`) takes ONE state `(q, p)`, a tuple of two arrays of shape
    `(dim,)`, and returns one; batch with `jax.vmap`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.check as sc, structjax.nn as snn
    >>> net = snn.LASympNet(2, layers=2, key=jax.random.key(0))
    >>> q, p = jnp.array([0.1, -0.2]), jnp.array([0.3, 0.4])
    >>> print(bool(sc.symplecticity_error(lambda q, p: net((q, p)), q, p) < 1e-12))
    True
    >>> print(bool(sc.inversion_error(net.forward, net.inverse, (q, p)) < 1e-14))
    True

    ```
    """

    modules: tuple[LinearModule | ActivationModule, ...]

    def __init__(
        self,
        dim: int,
        layers: int = 3,
        sublayers: int = 4,
        activation: Callable[[Array], Array] = jnp.tanh,
        dtype: DTypeLike | None = None,
        *,
        key: PRNGKeyArray,
    ):
        layers = static_int(layers, f"LASympNet(layers={layers!r})", "layers")
        keys = jax.random.split(key, 2 * layers)
        modules = []
        for i in range(layers):
            modules.append(LinearModule(dim, sublayers, dtype, key=keys[2 * i]))
            if i < layers - 1:
                kind = _KINDS[i % 2]
                modules.append(ActivationModule(dim, kind, activation, dtype, key=keys[2 * i + 1]))
        self.modules = tuple(modules)


class SymplecticFlow(AbstractBijection):
    """A SympNet (or any bijection of `(q, p)`) as a flow on vectors $x = (q, p) \\in
    \\mathbb R^{2d}$: volume preserving, so the log-determinant is exactly 0.

    **Arguments:**

    - `net`: a bijection of `(q, p)` tuples (a SympNet, `VerletBlock`, ...).
    - `dim`: $2d$, the vector size (even).

    **Raises:** `ValueError` for an odd `dim`; at call time `ValueError` for an input not of
    shape `(dim,)`, `TypeError` for an integer or complex one.

    `__call__` (= `forward`) takes ONE vector of shape `(dim,)`; batch with `jax.vmap`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.check as sc, structjax.nn as snn
    >>> flow = snn.SymplecticFlow(snn.GSympNet(2, width=8, key=jax.random.key(0)), 4)
    >>> x = jnp.array([0.1, -0.2, 0.3, 0.4])
    >>> y, log_det = flow.forward_and_log_det(x)
    >>> print(y.shape, float(log_det))
    (4,) 0.0
    >>> print(bool(sc.inversion_error(flow.forward, flow.inverse, x) < 1e-14))
    True

    ```
    """

    net: AbstractBijection
    dim: int = eqx.field(static=True)

    def __init__(self, net: AbstractBijection, dim: int):
        dim = check_even(dim, f"SymplecticFlow(dim={dim!r})")
        self.net, self.dim = net, dim

    def forward_and_log_det(self, x: Float[Array, " dim"]) -> tuple[Float[Array, " dim"], LogDet]:
        check_vector(x, self.dim, "SymplecticFlow.forward", "x")
        q, p = self.net.forward(tuple(jnp.split(x, 2)))
        return jnp.concatenate([q, p]), zero_log_det(x)

    def inverse_and_log_det(self, y: Phase) -> tuple[Phase, LogDet]:
        check_vector(y, self.dim, "SymplecticFlow.inverse", "y")
        q, p = self.net.inverse(tuple(jnp.split(y, 2)))
        return jnp.concatenate([q, p]), zero_log_det(y)
