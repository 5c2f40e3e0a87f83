"""The shared form of the structured dense layers: $y = W x + b$ with a constrained $W$."""

import abc

import equinox as eqx
from jaxtyping import Array, Float, PRNGKeyArray

from .._guards import in_float32
from .._linalg import mm
from ._bijection import check_vector


class AbstractLinear(eqx.Module):
    """$y = W x + b$ on one example, with $W$ = `matrix` (structured: orthogonal, spectrally
    normalised, ...), and a declared `lipschitz_bound` on $\\|W\\|_2$.

    Inputs must be real floating-point vectors (`TypeError` otherwise). With float16/bfloat16
    parameters or inputs, $W$ and the product are computed in float32 and the output is cast
    to the input's dtype, so the structure of $W$ holds to that dtype's precision."""

    bias: eqx.AbstractVar[Float[Array, " out"] | None]
    in_features: eqx.AbstractVar[int]

    @property
    @abc.abstractmethod
    def matrix(self) -> Float[Array, "out in"]:
        raise NotImplementedError

    @property
    @abc.abstractmethod
    def lipschitz_bound(self) -> float:
        raise NotImplementedError

    def __call__(self, x: Float[Array, " in"], *, key: PRNGKeyArray | None = None):
        del key
        check_vector(x, self.in_features, f"{type(self).__name__}(...)(x)")
        return _apply(self, x)


@in_float32
def _apply(layer, x):
    y = mm(layer.matrix, x)
    return y if layer.bias is None else y + layer.bias
