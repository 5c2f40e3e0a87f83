"""The equivariance certificate: how far $f(g \\cdot x)$ is from $g \\cdot f(x)$."""

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PRNGKeyArray, PyTree


@runtime_checkable
class _Samples(Protocol):
    """A group as this certificate uses it: anything that draws elements (a
    `structjax.equivariant.Group`)."""

    def sample(self, key: Any, dtype: Any) -> Any: ...


@runtime_checkable
class _Acts(Protocol):
    """A representation as this certificate uses it: anything with `act(g, x)` (the
    `structjax.equivariant` reps and field types)."""

    def act(self, g: Any, x: Any) -> Any: ...


# A representation object, or any callable `(g, x) -> g . x`.
_Action = _Acts | Callable[[Any, Any], Any]


def _action(rep) -> Callable:
    # A representation object acts through its `act(g, x)`; any callable `(g, x) -> g . x`
    # (an action on images, on point clouds) is used as it is.
    return rep.act if hasattr(rep, "act") else rep


def equivariance_error(
    f: Callable[[PyTree], PyTree],
    group: _Samples,
    x: PyTree[Array],
    key: PRNGKeyArray,
    *,
    rep_in: _Action,
    rep_out: _Action,
    num_samples: int = 16,
) -> Float[Array, ""]:
    """How far `f` is from equivariant, over random group elements.

    Measures $\\max_g \\|f(\\rho_{in}(g)x) - \\rho_{out}(g) f(x)\\|_2 / \\|f(x)\\|_2$ (2-norm
    of all leaves flattened) over `num_samples` group elements drawn by `group.sample`: zero
    (to rounding) for an equivariant `f`.

    **Arguments:**

    - `f`: the map, on one example.
    - `group`: anything with `sample(key, dtype)` (a `structjax.equivariant.Group`).
    - `x`: the input (a pytree).
    - `key`: a PRNG key.
    - `rep_in`, `rep_out`: representations (objects with `act(g, x)`, such as
        `structjax.equivariant` reps) or callables `(g, x) -> g . x`. An invariant map has
        `rep_out=lambda g, y: y`.
    - `num_samples`: how many group elements.

    **Returns:** a scalar.

    **Raises:** `ValueError` for `num_samples` not a positive int (trace time).

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> from structjax.check import equivariance_error
    >>> G = se.SO(3)
    >>> layer = se.EquivariantLinear(se.V(G), se.V(G), key=jax.random.key(0))
    >>> err = equivariance_error(layer, G, jnp.array([1.0, 2.0, 3.0]), jax.random.key(1),
    ...                          rep_in=layer.rep_in, rep_out=layer.rep_out)
    >>> print(bool(err < 1e-12))
    True

    ```
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(
            f"`equivariance_error` needs num_samples an int >= 1, got {num_samples!r}."
        )
    act_in, act_out = _action(rep_in), _action(rep_out)
    flat_x = ravel_pytree(x)[0]
    y = f(x)
    norm = jnp.maximum(jnp.linalg.norm(ravel_pytree(y)[0]), jnp.finfo(flat_x.dtype).tiny)

    def error(key):
        g = group.sample(key, flat_x.dtype)
        lhs = ravel_pytree(f(act_in(g, x)))[0]
        rhs = ravel_pytree(act_out(g, y))[0]
        return jnp.linalg.norm(lhs - rhs)

    errors = jax.lax.map(error, jax.random.split(key, num_samples))
    return jnp.max(errors) / norm
