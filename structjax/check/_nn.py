"""Certificates for layers: inversion, log-determinant, Lipschitz constant."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optax
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PRNGKeyArray, PyTree


def inversion_error(
    f: Callable[[PyTree], PyTree], f_inv: Callable[[PyTree], PyTree], x: PyTree[Array]
) -> Float[Array, ""]:
    """$\\max_i |f^{-1}(f(x))_i - x_i| / \\max(1, \\max_i |x_i|)$ over all leaves of `x`:
    zero (to rounding) for an exact inverse.

    **Arguments:**

    - `f`: the forward map, on one example.
    - `f_inv`: its claimed inverse.
    - `x`: one example, a pytree of arrays.

    **Returns:** a scalar (max norm, relative to the input's size when that exceeds 1).

    **Raises:** `ValueError` (trace time) when `f_inv(f(x))` has not as many entries as `x`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.check as sc, structjax.nn as snn
    >>> flow = snn.AffineCoupling(4, width=8, key=jax.random.key(0))
    >>> x = jnp.linspace(-1.0, 1.0, 4)
    >>> print(bool(sc.inversion_error(flow.forward, flow.inverse, x) < 1e-14))
    True

    ```
    """
    flat, _ = ravel_pytree(x)
    back, _ = ravel_pytree(f_inv(f(x)))
    if back.shape != flat.shape:
        raise ValueError(f"`f_inv(f(x))` has {back.size} entries, `x` has {flat.size}.")
    return jnp.max(jnp.abs(back - flat)) / jnp.maximum(1.0, jnp.max(jnp.abs(flat)))


def log_det_error(
    f: Callable[[PyTree], PyTree], log_det: Callable[[PyTree], Array], x: PyTree[Array]
) -> Float[Array, ""]:
    """$|\\,\\text{log\\_det}(x) - \\log|\\det \\partial f/\\partial x|\\,|$, the reference from
    `jnp.linalg.slogdet` of the Jacobian on the flattened input and output (by `jax.jacrev`,
    which also passes through `custom_vjp`s such as `Reversible`'s).

    **Arguments:**

    - `f`: the map, on one example, with as many outputs as inputs.
    - `log_det`: the claimed $\\log|\\det J_f(x)|$ as a function of `x`, returning a scalar
        (e.g. `lambda x: flow.forward_and_log_det(x)[1]`).
    - `x`: one example, a pytree of arrays.

    **Returns:** a scalar (infinite if the Jacobian is singular).

    **Raises:** `ValueError` (trace time) when `f` does not map $n$ numbers to $n$.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.check as sc, structjax.nn as snn
    >>> flow = snn.AffineCoupling(4, width=8, key=jax.random.key(0))
    >>> x = jnp.linspace(-1.0, 1.0, 4)
    >>> log_det = lambda x: flow.forward_and_log_det(x)[1]
    >>> print(bool(sc.log_det_error(flow.forward, log_det, x) < 1e-12))
    True

    ```
    """
    flat, unravel = ravel_pytree(x)
    jac = jax.jacrev(lambda z: ravel_pytree(f(unravel(z)))[0])(flat)
    if jac.shape[0] != jac.shape[1]:
        raise ValueError(f"`f` must map {flat.size} numbers to as many, got {jac.shape[0]}.")
    sign, reference = jnp.linalg.slogdet(jac)
    return jnp.where(sign == 0, jnp.inf, jnp.abs(log_det(x) - reference))


def lipschitz_lower_bound(
    f: Callable[[Array], Array],
    x: Float[Array, "..."],
    key: PRNGKeyArray,
    *,
    num_starts: int = 8,
    steps: int = 200,
    learning_rate: float = 1e-2,
    spread: float = 1.0,
) -> Float[Array, ""]:
    """A lower bound on the Lipschitz constant of `f` (in the 2-norm): the largest local
    Jacobian norm $\\|J_f(x)^\\top u\\| / \\|u\\|$ (= $\\|J_f(x)\\|_2$ at its best $u$) found by
    gradient ascent (Adam, via optax) over points $x$ and output directions $u$ (reverse mode,
    so it passes through `custom_vjp`s), from `num_starts` random starts around `x`. Every value it
    returns is attained, so a layer's declared bound must never be below it.

    **Arguments:**

    - `f`: a function of one array (flattened internally if not a vector).
    - `x`: the centre of the search; starts are `x + spread * noise`.
    - `key`: a PRNG key.
    - `num_starts`, `steps`, `learning_rate`: the search (random starts, Adam steps from
        each, Adam's step size).
    - `spread`: the standard deviation of the starts around `x`.

    **Returns:** a scalar, the largest norm seen.

    **Raises:** `ValueError` for `num_starts` or `steps` not a positive int, or a
    `learning_rate` / `spread` that is not a finite positive number (checked at trace time:
    they are the search's configuration).

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.check as sc, structjax.nn as snn
    >>> layer = snn.SpectralNormLinear(3, 5, coefficient=0.5, key=jax.random.key(0))
    >>> bound = sc.lipschitz_lower_bound(layer, jnp.ones(3), jax.random.key(1), num_starts=2,
    ...                                  steps=50)
    >>> print(bool(bound <= 0.5 + 1e-12), bool(bound > 0.4))
    True True

    ```
    """
    for name, value in (("num_starts", num_starts), ("steps", steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`lipschitz_lower_bound` needs {name} an int >= 1, got {value!r}.")
    for name, value in (("learning_rate", learning_rate), ("spread", spread)):
        if not (isinstance(value, (int, float)) and 0 < value < float("inf")):
            raise ValueError(
                f"`lipschitz_lower_bound` needs {name} a finite number > 0, got {value!r}."
            )
    flat, unravel = ravel_pytree(x)

    def f_flat(z):
        return ravel_pytree(f(unravel(z)))[0]

    kx, kv = jax.random.split(key)
    starts = flat + spread * jax.random.normal(kx, (num_starts, flat.size), flat.dtype)
    out_size = jax.eval_shape(f_flat, flat).size
    dirs = jax.random.normal(kv, (num_starts, out_size), flat.dtype)

    def gain(params):
        z, u = params
        _, vjp = jax.vjp(f_flat, z)
        return jnp.linalg.norm(vjp(u / jnp.linalg.norm(u))[0])

    optimiser = optax.adam(learning_rate)

    def ascend(z, v):
        params = (z, v)

        def step(carry, _):
            params, state, best = carry
            value, grad = jax.value_and_grad(gain)(params)
            updates, state = optimiser.update(jtu.tree_map(jnp.negative, grad), state)
            return (optax.apply_updates(params, updates), state, jnp.maximum(best, value)), None

        init = (params, optimiser.init(params), gain(params))
        (params, _, best), _ = jax.lax.scan(step, init, None, length=steps)
        return jnp.maximum(best, gain(params))

    # (optax's Adam bias correction raises a float to an int32 power, which strict dtype
    # promotion refuses; the search's own arithmetic is all in x's dtype.)
    with jax.numpy_dtype_promotion("standard"):
        return jnp.max(jax.vmap(ascend)(starts, dirs))
