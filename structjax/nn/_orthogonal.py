"""A linear layer with an orthonormal weight, trained on the Stiefel manifold."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ..manifolds import Constrained, Stiefel


class OrthogonalLinear(eqx.Module):
    """$y = W x + b$ with $W$ semi-orthogonal: orthonormal columns when
    `out_features >= in_features` (an isometry, $|Wx| = |x|$), orthonormal rows otherwise
    (a co-isometry); either way $\\|W\\|_2 = 1$, so the layer is 1-Lipschitz.

    The weight is a `structjax.manifolds.Constrained` point of `Stiefel(max, min)`; train it
    with a Riemannian optimiser and `manifolds_of`:

    ```python
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt = structjax.optim.riemannian_adam(1e-3, manifolds=manifolds_of(params))
    ```

    **Arguments:**

    - `in_features`, `out_features`: sizes.
    - `use_bias`: whether to add a bias.
    - `dtype`: the parameters' dtype (default: JAX's default float).
    - `key`: a PRNG key (the weight starts at a uniformly random Stiefel point).
    """

    weight: Constrained
    bias: Array | None
    in_features: int = eqx.field(static=True)
    out_features: int = eqx.field(static=True)

    def __init__(
        self, in_features: int, out_features: int, use_bias: bool = True, dtype=None, *, key
    ):
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"`OrthogonalLinear({in_features}, {out_features})` needs positive sizes."
            )
        n, p = max(in_features, out_features), min(in_features, out_features)
        stiefel = Stiefel(n, p)
        self.weight = Constrained(stiefel.random_point(key, dtype=dtype), stiefel)
        self.bias = jnp.zeros(out_features, self.weight.value.dtype) if use_bias else None
        self.in_features, self.out_features = in_features, out_features

    @property
    def matrix(self) -> Float[Array, "out in"]:
        """$W$, of shape `(out_features, in_features)`."""
        w = self.weight.value
        return w if self.out_features >= self.in_features else w.T

    def __call__(self, x: Float[Array, " in"], *, key: PRNGKeyArray | None = None):
        del key
        y = self.matrix @ x
        return y if self.bias is None else y + self.bias
