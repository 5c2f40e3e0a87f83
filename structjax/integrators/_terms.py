"""Terms for partitioned Hamiltonian systems, in diffrax's `SemiImplicitEuler` convention.

The state is `y = (q, p)` and the terms are a pair `(term_q, term_p)`: `term_q` gives
$dq/dt$ from `p`, `term_p` gives $dp/dt$ from `q`.
"""

from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import PyTree


def _check_callable(call: str, **functions):
    for name, fn in functions.items():
        if not callable(fn):
            raise TypeError(
                f"`{call}` needs `{name}` a function of (x, args), got {type(fn).__name__}."
            )


def _check_scalar(value, name: str):
    if jnp.shape(value) != ():
        raise ValueError(
            f"`{name}` must return a scalar, got an array of shape {jnp.shape(value)}."
        )


class _Gradient(eqx.Module):
    """`(t, x, args) -> sign * grad(fn)(x, args)`: a diffrax vector field."""

    fn: Callable
    sign: float = eqx.field(static=True)
    name: str = eqx.field(static=True)

    def __call__(self, t, x, args):
        del t

        def scalar(x):
            value = self.fn(x, args)
            _check_scalar(value, self.name)
            return value

        grad = jax.grad(scalar)(x)
        return grad if self.sign == 1 else jtu.tree_map(lambda g: -g, grad)


class _Field(eqx.Module):
    """`(t, x, args) -> fn(x, args)`, checking the output matches the input's structure."""

    fn: Callable
    name: str = eqx.field(static=True)

    def __call__(self, t, x, args):
        del t
        out = self.fn(x, args)
        if jtu.tree_structure(out) != jtu.tree_structure(x) or any(
            jnp.shape(a) != jnp.shape(b) for a, b in zip(jtu.tree_leaves(out), jtu.tree_leaves(x))
        ):
            raise ValueError(
                f"`{self.name}` must return a pytree like its input "
                f"({jtu.tree_structure(x)} with shapes "
                f"{[jnp.shape(a) for a in jtu.tree_leaves(x)]}), got {jtu.tree_structure(out)} "
                f"with shapes {[jnp.shape(a) for a in jtu.tree_leaves(out)]}."
            )
        return out


def separable_terms(
    kinetic: Callable[[PyTree, Any], Any], potential: Callable[[PyTree, Any], Any]
) -> tuple[diffrax.ODETerm, diffrax.ODETerm]:
    """The terms of $H(q, p) = T(p) + V(q)$ from the two scalar functions.

    $\\dot q = \\partial T/\\partial p$, $\\dot p = -\\partial V/\\partial q$, the gradients taken
    with `jax.grad`.

    **Arguments:**

    - `kinetic`: `T(p, args) -> scalar`, for any pytree `p`.
    - `potential`: `V(q, args) -> scalar`, for any pytree `q`.

    **Returns:** `(term_q, term_p)`, two `diffrax.ODETerm`s, for the state `y = (q, p)`.

    **Raises:** `TypeError` if either is not callable; `ValueError`, when the terms are first
    traced, if either does not return a scalar.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> T = lambda p, args: 0.5 * jnp.sum(p**2)
    >>> V = lambda q, args: 0.5 * jnp.sum(q**2)
    >>> term_q, term_p = si.separable_terms(T, V)
    >>> q = jnp.asarray([2.0])
    >>> print(bool(jnp.allclose(term_p.vf(0.0, q, None), -q)))
    True

    ```
    """
    _check_callable("separable_terms(kinetic, potential)", kinetic=kinetic, potential=potential)
    return (
        diffrax.ODETerm(_Gradient(kinetic, 1.0, "kinetic")),
        diffrax.ODETerm(_Gradient(potential, -1.0, "potential")),
    )


def split_force_terms(
    force: Callable[[PyTree, Any], PyTree],
    velocity: Callable[[PyTree, Any], PyTree] | None = None,
) -> tuple[diffrax.ODETerm, diffrax.ODETerm]:
    """The terms of a separable system given by its force, without a potential.

    $\\dot q = v(p)$, $\\dot p = F(q)$. The system is Hamiltonian when $F = -\\nabla V$ and
    $v = \\nabla T$ for some $V$, $T$ (a force from a learned or tabulated gradient, say).

    **Arguments:**

    - `force`: `F(q, args) -> dp/dt`, a pytree like `q` (for example $-\\partial V/\\partial q$).
    - `velocity`: `v(p, args) -> dq/dt`, a pytree like `p`; default $v(p) = p$ (unit mass,
        $T = |p|^2/2$).

    **Returns:** `(term_q, term_p)` for the state `y = (q, p)`.

    **Raises:** `TypeError` if `force` (or a given `velocity`) is not callable; `ValueError`,
    when the terms are first traced, if either returns a pytree unlike its input.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> term_q, term_p = si.split_force_terms(lambda q, args: -q)
    >>> x = jnp.asarray([2.0])
    >>> print(term_q.vf(0.0, x, None), term_p.vf(0.0, x, None))
    [2.] [-2.]

    ```
    """
    if velocity is None:
        velocity = _identity
    _check_callable("split_force_terms(force, velocity)", force=force, velocity=velocity)
    return (
        diffrax.ODETerm(_Field(velocity, "velocity")),
        diffrax.ODETerm(_Field(force, "force")),
    )


def _identity(p, args):
    del args
    return p
