"""The bijection interface shared by flows, couplings, SympNet modules and reversible stacks."""

import abc

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Float, PyTree


class AbstractBijection(eqx.Module):
    """An invertible map with its log-determinant, in the bijector convention of distrax and
    flowjax: `forward_and_log_det(x) -> (y, log|det dy/dx|)` and
    `inverse_and_log_det(y) -> (x, log|det dx/dy|)`, on ONE example (batch with `jax.vmap`).

    `forward`, `inverse` and `__call__` (= `forward`) are derived from the two.
    """

    @abc.abstractmethod
    def forward_and_log_det(self, x: PyTree[Array]) -> tuple[PyTree[Array], Float[Array, ""]]:
        raise NotImplementedError

    @abc.abstractmethod
    def inverse_and_log_det(self, y: PyTree[Array]) -> tuple[PyTree[Array], Float[Array, ""]]:
        raise NotImplementedError

    def forward(self, x: PyTree[Array]) -> PyTree[Array]:
        return self.forward_and_log_det(x)[0]

    def inverse(self, y: PyTree[Array]) -> PyTree[Array]:
        return self.inverse_and_log_det(y)[0]

    def __call__(self, x: PyTree[Array]) -> PyTree[Array]:
        return self.forward(x)


class Chain(AbstractBijection):
    """The composition of bijections, applied first to last: $f_n \\circ \\dots \\circ f_1$.
    Log-determinants add."""

    bijections: tuple[AbstractBijection, ...]

    def __init__(self, bijections):
        self.bijections = tuple(bijections)
        if not self.bijections:
            raise ValueError("`Chain(bijections)` needs at least one bijection.")

    def forward_and_log_det(self, x):
        total = jnp.zeros((), _dtype_of(x))
        for b in self.bijections:
            x, ld = b.forward_and_log_det(x)
            total = total + ld
        return x, total

    def inverse_and_log_det(self, y):
        total = jnp.zeros((), _dtype_of(y))
        for b in reversed(self.bijections):
            y, ld = b.inverse_and_log_det(y)
            total = total + ld
        return y, total


class Invert(AbstractBijection):
    """The inverse of a bijection: its `inverse` becomes the forward map. Use it to put an
    expensive inverse (`InvertibleResidual`'s fixed point) on the direction you call less."""

    bijection: AbstractBijection

    def forward_and_log_det(self, x):
        return self.bijection.inverse_and_log_det(x)

    def inverse_and_log_det(self, y):
        return self.bijection.forward_and_log_det(y)


def _dtype_of(x):
    leaves = jtu.tree_leaves(x)
    return jnp.result_type(*leaves) if leaves else jnp.result_type(float)


def zero_log_det(x) -> Float[Array, ""]:
    return jnp.zeros((), _dtype_of(x))


def check_vector(x, size: int, call: str):
    """A trace-time check that `x` is one example: a vector of `size` entries."""
    if jnp.ndim(x) != 1 or jnp.shape(x)[0] != size:
        raise ValueError(
            f"`{call}` takes one example of shape ({size},), got shape {jnp.shape(x)}; "
            "batch with `jax.vmap`."
        )


def check_even(dim: int, call: str):
    if dim < 2 or dim % 2:
        raise ValueError(
            f"`{call}` splits its input into two equal halves and needs an even dimension >= 2, "
            f"got {dim}. Pad the input with a zero feature, or map it to an even width first."
        )
