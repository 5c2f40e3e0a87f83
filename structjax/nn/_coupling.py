"""Coupling layers: additive (NICE), affine (RealNVP), and the RevNet block built from two."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._guards import static_int
from ._bijection import AbstractBijection, Chain, check_even, check_vector, zero_log_det

LogDet = Float[Array, ""]


def _check_config(call: str, dim, width, depth) -> tuple[int, int, int]:
    dim = check_even(dim, f"{call}(dim={dim!r})")
    width = static_int(width, f"{call}(width={width!r})", "width", minimum=1)
    depth = static_int(depth, f"{call}(depth={depth!r})", "depth", minimum=0)
    return dim, width, depth


def _halves(x, flip: bool):
    """(the half that conditions, the half that is transformed)."""
    a, b = jnp.split(x, 2)
    return (b, a) if flip else (a, b)


def _join(cond, moved, flip: bool):
    return jnp.concatenate([moved, cond] if flip else [cond, moved])


class AdditiveCoupling(AbstractBijection):
    """The additive coupling of NICE (Dinh, Krueger & Bengio 2015, eq. (3)): the input splits
    into halves $(x_1, x_2)$ and $y_1 = x_1$, $y_2 = x_2 + m(x_1)$, with $m$ an MLP.
    Volume-preserving: the log-determinant is exactly 0. With `flip=True` the roles of the
    halves swap ($y_1 = x_1 + m(x_2)$).

    **Arguments:**

    - `dim`: the input size, an even int >= 2.
    - `width`, `depth`: the hidden width and number of hidden layers of the MLP $m$.
    - `activation`: the MLP's activation.
    - `flip`: swap the roles of the two halves.
    - `key`: a PRNG key for the MLP's initialisation.

    **Raises:** `ValueError` for an odd `dim` or sizes below their minimum; `TypeError` for
    non-integer sizes; at call time `ValueError` for an input not of shape `(dim,)` and
    `TypeError` for an integer or complex input.

    `__call__` takes ONE example of shape `(dim,)` (batch with `jax.vmap`).

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.check as sc, structjax.nn as snn
    >>> flow = snn.AdditiveCoupling(4, width=8, key=jax.random.key(0))
    >>> x = jnp.linspace(-1.0, 1.0, 4)
    >>> y, log_det = flow.forward_and_log_det(x)
    >>> print(y.shape, float(log_det))
    (4,) 0.0
    >>> print(bool(sc.inversion_error(flow.forward, flow.inverse, x) < 1e-15))
    True

    ```
    """

    net: eqx.nn.MLP
    dim: int = eqx.field(static=True)
    flip: bool = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        width: int = 64,
        depth: int = 2,
        activation: Callable = jax.nn.relu,
        flip: bool = False,
        *,
        key: PRNGKeyArray,
    ):
        dim, width, depth = _check_config("AdditiveCoupling", dim, width, depth)
        self.net = eqx.nn.MLP(dim // 2, dim // 2, width, depth, activation, key=key)
        self.dim, self.flip = dim, flip

    def forward_and_log_det(self, x: Float[Array, " dim"]) -> tuple[Float[Array, " dim"], LogDet]:
        check_vector(x, self.dim, "AdditiveCoupling.forward", "x")
        cond, moved = _halves(x, self.flip)
        return _join(cond, moved + self.net(cond), self.flip), zero_log_det(x)

    def inverse_and_log_det(self, y: Float[Array, " dim"]) -> tuple[Float[Array, " dim"], LogDet]:
        check_vector(y, self.dim, "AdditiveCoupling.inverse", "y")
        cond, moved = _halves(y, self.flip)
        return _join(cond, moved - self.net(cond), self.flip), zero_log_det(y)


class AffineCoupling(AbstractBijection):
    """The affine coupling of RealNVP (Dinh, Sohl-Dickstein & Bengio 2017, eqs. (4)-(6)):
    $y_1 = x_1$, $y_2 = x_2 \\odot e^{s(x_1)} + t(x_1)$, log-determinant $\\sum_i s_i(x_1)$.
    The log-scale is bounded, $s = \\tanh(\\tilde s)$ (a common stabilisation), so one
    layer scales each coordinate by at most $e$. `flip=True` swaps the halves' roles.

    **Arguments:**

    - `dim`: the input size, an even int >= 2.
    - `width`, `depth`: the hidden width and number of hidden layers of the conditioner MLP
      (which outputs $\\tilde s$ and $t$).
    - `activation`: the MLP's activation.
    - `flip`: swap the roles of the two halves.
    - `key`: a PRNG key for the MLP's initialisation.

    **Raises:** `ValueError` for an odd `dim` or sizes below their minimum; `TypeError` for
    non-integer sizes; at call time `ValueError` for an input not of shape `(dim,)` and
    `TypeError` for an integer or complex input.

    `__call__` takes ONE example of shape `(dim,)` (batch with `jax.vmap`).

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.check as sc, structjax.nn as snn
    >>> flow = snn.AffineCoupling(4, width=8, key=jax.random.key(0))
    >>> x = jnp.linspace(-1.0, 1.0, 4)
    >>> log_det = lambda x: flow.forward_and_log_det(x)[1]
    >>> print(bool(sc.inversion_error(flow.forward, flow.inverse, x) < 1e-14))
    True
    >>> print(bool(sc.log_det_error(flow.forward, log_det, x) < 1e-12))
    True

    ```
    """

    net: eqx.nn.MLP
    dim: int = eqx.field(static=True)
    flip: bool = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        width: int = 64,
        depth: int = 2,
        activation: Callable = jax.nn.relu,
        flip: bool = False,
        *,
        key: PRNGKeyArray,
    ):
        dim, width, depth = _check_config("AffineCoupling", dim, width, depth)
        self.net = eqx.nn.MLP(dim // 2, dim, width, depth, activation, key=key)
        self.dim, self.flip = dim, flip

    def _scale_shift(self, cond):
        s, t = jnp.split(self.net(cond), 2)
        return jnp.tanh(s), t

    def forward_and_log_det(self, x: Float[Array, " dim"]) -> tuple[Float[Array, " dim"], LogDet]:
        check_vector(x, self.dim, "AffineCoupling.forward", "x")
        cond, moved = _halves(x, self.flip)
        s, t = self._scale_shift(cond)
        return _join(cond, moved * jnp.exp(s) + t, self.flip), jnp.sum(s)

    def inverse_and_log_det(self, y: Float[Array, " dim"]) -> tuple[Float[Array, " dim"], LogDet]:
        check_vector(y, self.dim, "AffineCoupling.inverse", "y")
        cond, moved = _halves(y, self.flip)
        s, t = self._scale_shift(cond)
        return _join(cond, (moved - t) * jnp.exp(-s), self.flip), -jnp.sum(s)


def revnet_block(
    dim: int,
    width: int = 64,
    depth: int = 2,
    activation: Callable = jax.nn.relu,
    *,
    key: PRNGKeyArray,
) -> Chain:
    """The reversible block of RevNet (Gomez, Ren, Urtasun & Grosse 2017, eqs. (5)-(6)):
    $y_1 = x_1 + F(x_2)$, $y_2 = x_2 + G(y_1)$, i.e. two additive couplings with swapped
    halves. Stack it with `Reversible` for constant-memory backpropagation.

    **Arguments:**

    - `dim`: the input size, an even int >= 2.
    - `width`, `depth`: the hidden width and number of hidden layers of $F$ and $G$ (MLPs).
    - `activation`: the MLPs' activation.
    - `key`: a PRNG key, split between $F$ and $G$.

    **Returns:** a `Chain` of two `AdditiveCoupling`s: a bijection of vectors of shape
    `(dim,)`, volume preserving (log-determinant 0), inverted exactly.

    **Raises:** as `AdditiveCoupling`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.check as sc, structjax.nn as snn
    >>> block = snn.revnet_block(4, width=8, key=jax.random.key(0))
    >>> x = jnp.linspace(-1.0, 1.0, 4)
    >>> print(bool(sc.inversion_error(block.forward, block.inverse, x) < 1e-14))
    True

    ```
    """
    kf, kg = jax.random.split(key)
    return Chain(
        [
            AdditiveCoupling(dim, width, depth, activation, flip=True, key=kf),
            AdditiveCoupling(dim, width, depth, activation, flip=False, key=kg),
        ]
    )
