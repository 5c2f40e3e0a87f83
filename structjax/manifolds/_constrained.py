"""Marking constrained weights inside a model, for the Riemannian optimisers."""

import equinox as eqx
import jax.tree_util as jtu
from jaxtyping import Array, PyTree

from ._base import AbstractManifold


class Constrained(eqx.Module):
    """A weight that lives on a manifold: `value` (an array of `manifold` points) and its
    `manifold` (static). Use `.value` in the forward pass; give the optimiser
    `manifolds_of(params)` (see `structjax.optim.riemannian_adam`).

    **Arguments:**

    - `value`: the point(s), already on the manifold (use `manifold.project` or
        `manifold.random_point` to make one).
    - `manifold`: the manifold.

    **Example:**

    ```pycon
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import structjax.manifolds as sm
    >>> m = sm.Stiefel(4, 2)
    >>> w = sm.Constrained(m.random_point(jax.random.key(0)), m)
    >>> print(w.value.shape, bool(m.constraint_error(w.value) < 1e-12))
    (4, 2) True

    ```
    """

    value: Array | AbstractManifold  # a manifold only in the tree built by `manifolds_of`
    manifold: AbstractManifold = eqx.field(static=True)

    def __check_init__(self):
        if isinstance(self.value, AbstractManifold):  # the form built by `manifolds_of`
            return
        self.manifold.check_shape(self.value, "value")


def _is_constrained(x) -> bool:
    return isinstance(x, Constrained)


def manifolds_of(tree: PyTree) -> PyTree:
    """The `manifolds` pytree for a model or parameter tree containing `Constrained` leaves:
    the same structure, with the manifold at each `Constrained.value` and `None` (Euclidean)
    at every other leaf. Call it on the parameters you pass to `optimiser.init`, e.g.
    `manifolds_of(eqx.filter(model, eqx.is_inexact_array))`.

    **Arguments:**

    - `tree`: a pytree (model or parameters) whose constrained weights are `Constrained`.

    **Returns:** a pytree of the same structure: `Constrained(manifold, manifold)` at each
    `Constrained` node (so `.value` is the manifold) and `None` at every other leaf.

    **Example:**

    ```pycon
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import structjax.manifolds as sm
    >>> m = sm.Sphere(3)
    >>> params = {"u": sm.Constrained(m.random_point(jax.random.key(0)), m), "b": jnp.zeros(2)}
    >>> tree = sm.manifolds_of(params)
    >>> print(tree["b"], tree["u"].value)
    None Sphere(n=3)

    ```
    """

    def leaf(x):
        if _is_constrained(x):
            return Constrained(x.manifold, x.manifold)
        return None

    return jtu.tree_map(leaf, tree, is_leaf=_is_constrained)
