"""The bijection interface shared by flows, couplings, SympNet modules and reversible stacks."""

import abc
from collections.abc import Iterable

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Float, PyTree

from .._guards import check_real_floating, static_int


class AbstractBijection(eqx.Module):
    """An invertible map with its log-determinant, in the bijector convention of distrax and
    flowjax: `forward_and_log_det(x) -> (y, log|det dy/dx|)` and
    `inverse_and_log_det(y) -> (x, log|det dx/dy|)`, on ONE example (batch with `jax.vmap`).

    `forward`, `inverse` and `__call__` (= `forward`) are derived from the two.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.check as sc, structjax.nn as snn
    >>> flow = snn.AffineCoupling(4, width=8, key=jax.random.key(0))
    >>> x = jnp.linspace(-1.0, 1.0, 4)
    >>> y, log_det = flow.forward_and_log_det(x)
    >>> print(bool(sc.inversion_error(flow.forward, flow.inverse, x) < 1e-14))
    True

    ```
    """

    @abc.abstractmethod
    def forward_and_log_det(self, x: PyTree[Array]) -> tuple[PyTree[Array], Float[Array, ""]]:
        """The map and its log-determinant on one example.

        **Arguments:**

        - `x`: one input (a vector, or a `(q, p)` tuple for phase-space maps).

        **Returns:** `(y, log|det dy/dx|)`, the log-determinant a scalar.
        """
        raise NotImplementedError

    @abc.abstractmethod
    def inverse_and_log_det(self, y: PyTree[Array]) -> tuple[PyTree[Array], Float[Array, ""]]:
        """The inverse map and its log-determinant on one example.

        **Arguments:**

        - `y`: one output of the map.

        **Returns:** `(x, log|det dx/dy|)`, the log-determinant a scalar.
        """
        raise NotImplementedError

    def forward(self, x: PyTree[Array]) -> PyTree[Array]:
        """The map on one example `x`, without its log-determinant.

        **Arguments:**

        - `x`: one input.

        **Returns:** `y`, of the structure of `x`.
        """
        return self.forward_and_log_det(x)[0]

    def inverse(self, y: PyTree[Array]) -> PyTree[Array]:
        """The inverse map on one example `y`, without its log-determinant.

        **Arguments:**

        - `y`: one output.

        **Returns:** `x`, of the structure of `y`.
        """
        return self.inverse_and_log_det(y)[0]

    def __call__(self, x: PyTree[Array]) -> PyTree[Array]:
        return self.forward(x)


class Chain(AbstractBijection):
    """The composition of bijections, applied first to last: $f_n \\circ \\dots \\circ f_1$.
    Log-determinants add.

    **Arguments:**

    - `bijections`: a non-empty sequence of `AbstractBijection`s on the same input structure.

    **Raises:** `ValueError` for an empty sequence.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.check as sc, structjax.nn as snn
    >>> k1, k2 = jax.random.split(jax.random.key(0))
    >>> flow = snn.Chain([snn.AffineCoupling(4, 8, key=k1),
    ...                   snn.AffineCoupling(4, 8, flip=True, key=k2)])
    >>> x = jnp.linspace(-1.0, 1.0, 4)
    >>> log_det = lambda x: flow.forward_and_log_det(x)[1]
    >>> print(bool(sc.log_det_error(flow.forward, log_det, x) < 1e-12))
    True

    ```
    """

    bijections: tuple[AbstractBijection, ...]

    def __init__(self, bijections: Iterable[AbstractBijection]):
        self.bijections = tuple(bijections)
        if not self.bijections:
            raise ValueError("`Chain(bijections)` needs at least one bijection.")

    def forward_and_log_det(self, x: PyTree[Array]) -> tuple[PyTree[Array], Float[Array, ""]]:
        total = jnp.zeros((), _dtype_of(x))
        for b in self.bijections:
            x, ld = b.forward_and_log_det(x)
            total = total + ld
        return x, total

    def inverse_and_log_det(self, y: PyTree[Array]) -> tuple[PyTree[Array], Float[Array, ""]]:
        total = jnp.zeros((), _dtype_of(y))
        for b in reversed(self.bijections):
            y, ld = b.inverse_and_log_det(y)
            total = total + ld
        return y, total


class Invert(AbstractBijection):
    """The inverse of a bijection: its `inverse` becomes the forward map. Use it to put an
    expensive inverse (`InvertibleResidual`'s fixed point) on the direction you call less.

    **Arguments:**

    - `bijection`: the `AbstractBijection` to invert.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.nn as snn
    >>> flow = snn.AffineCoupling(4, 8, key=jax.random.key(0))
    >>> x = jnp.linspace(-1.0, 1.0, 4)
    >>> y, ld = snn.Invert(flow).forward_and_log_det(x)
    >>> _, ld_inv = flow.inverse_and_log_det(x)
    >>> print(bool(jnp.max(jnp.abs(y - flow.inverse(x))) == 0), bool(ld == ld_inv))
    True True

    ```
    """

    bijection: AbstractBijection

    def forward_and_log_det(self, x: PyTree[Array]) -> tuple[PyTree[Array], Float[Array, ""]]:
        return self.bijection.inverse_and_log_det(x)

    def inverse_and_log_det(self, y: PyTree[Array]) -> tuple[PyTree[Array], Float[Array, ""]]:
        return self.bijection.forward_and_log_det(y)


def _dtype_of(x):
    leaves = jtu.tree_leaves(x)
    return jnp.result_type(*leaves) if leaves else jnp.result_type(float)


def zero_log_det(x) -> Float[Array, ""]:
    return jnp.zeros((), _dtype_of(x))


def check_vector(x, size: int, call: str, name: str = "x"):
    """A trace-time check that `x` is one example: a real floating-point vector of `size`
    entries (`ValueError` for the shape, `TypeError` for an integer or complex dtype)."""
    if jnp.ndim(x) != 1 or jnp.shape(x)[0] != size:
        raise ValueError(
            f"`{call}` takes one example `{name}` of shape ({size},), got shape "
            f"{jnp.shape(x)}; batch with `jax.vmap`."
        )
    check_real_floating(x, call, name)


@eqx.filter_jit
def jit_method(method, module, *args):
    """`method(module, *args)` compiled once per module structure and input shapes, so that
    eager calls of a layer whose body builds `lax.scan`s or solver closures reuse one XLA
    program instead of compiling a fresh one per call (inside a user's `jit` it is inlined)."""
    return method(module, *args)


def check_even(dim: int, call: str):
    dim = static_int(dim, call, "dim", minimum=0)
    if dim < 2 or dim % 2:
        raise ValueError(
            f"`{call}` splits its input into two equal halves and needs an even dimension >= 2, "
            f"got {dim}. Pad the input with a zero feature, or map it to an even width first."
        )
    return dim
