"""The shared form of the structured dense layers: $y = W x + b$ with a constrained $W$."""

import abc

import equinox as eqx
from jaxtyping import Array, Float, PRNGKeyArray

from ..manifolds._base import mm
from ._bijection import check_vector


class AbstractLinear(eqx.Module):
    """$y = W x + b$ on one example, with $W$ = `matrix` (structured: orthogonal, spectrally
    normalised, ...), and a declared `lipschitz_bound` on $\\|W\\|_2$."""

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
        check_vector(x, self.in_features, type(self).__name__)
        y = mm(self.matrix, x)
        return y if self.bias is None else y + self.bias
