"""Certificate of an adjoint: its gradient against autodiff and against the continuous one."""

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import PyTree


class AdjointConsistency(NamedTuple):
    """The result of `adjoint_consistency`.

    **Arguments:**

    - `discrete`: a float.
    - `continuous`: a float, or `None`.

    `discrete`: the relative error (max-norm over every floating leaf, relative to the
    reference's largest entry) of the gradient under the adjoint against the gradient of
    the *same* discrete solve by another method (by default autodiff through it): zero up to
    rounding for an exact adjoint (symplectic, reversible, recursive checkpointing), the
    discretisation error of the adjoint equation for an approximate one (backsolve).
    `continuous`: the same error against the gradient of a fine solve (the continuous
    adjoint's value, to the fine solve's accuracy), when one is given: how far the discrete
    gradient is from the exact gradient of the ODE.

    **Example:**

    ```pycon
    >>> import structjax.check as sc
    >>> r = sc.AdjointConsistency(discrete=1e-16, continuous=None)
    >>> print(r.discrete < 1e-12, r.continuous)
    True None

    ```
    """

    discrete: float
    continuous: float | None


def _grad(loss: Callable, params: PyTree, adjoint: Any) -> PyTree:
    return eqx.filter_grad(lambda p: loss(p, adjoint))(params)


def _relative(g: PyTree, ref: PyTree) -> float:
    num, den = 0.0, 0.0
    for a, b in zip(jtu.tree_leaves(g), jtu.tree_leaves(ref), strict=True):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        num = max(num, float(np.max(np.abs(a - b))) if a.size else 0.0)
        den = max(den, float(np.max(np.abs(b))) if b.size else 0.0)
    return num / den if den > 0 else num


def adjoint_consistency(
    loss: Callable[[PyTree, Any], Any],
    params: PyTree,
    adjoint: Any,
    *,
    reference: Any = "autodiff",
    fine: Callable[[PyTree], Any] | None = None,
) -> AdjointConsistency:
    """Measure an adjoint: the gradient of `loss(params, adjoint)` against the gradient of
    the same discrete solve under `reference`, and against a fine solve's.

    The discrete adjoint of a Runge–Kutta method is its symplectic partner (Sanz-Serna 2016,
    SIAM Review 58), so an exact adjoint (`SymplecticAdjoint`, `solve_fixed`'s
    `"symplectic"` and `"reversible"`, diffrax's `RecursiveCheckpointAdjoint`) gives
    `discrete` at rounding level, while the continuous adjoint solved backwards
    (`diffrax.BacksolveAdjoint`) differs by its own discretisation error.

    **Arguments:**

    - `loss`: `loss(params, adjoint) -> scalar`, a solve under the given adjoint (a
        `solve_fixed` adjoint name or a diffrax adjoint) and a loss on its result.
    - `params`: what to differentiate (any pytree; its floating arrays are).
    - `adjoint`: the adjoint to measure.
    - `reference`: the adjoint the same discrete solve is differentiated with for
        comparison (default `"autodiff"`; with diffrax, `RecursiveCheckpointAdjoint()`).
    - `fine`: optionally `fine(params) -> scalar`, the same loss on a fine solve (a small
        step or a tight tolerance): its gradient stands for the continuous one.

    **Returns:** an `AdjointConsistency`.

    **Raises:** `TypeError` when `loss` or `fine` is not callable; whatever the solves
    raise (an unknown adjoint is refused by the solver, naming it).

    **Example:**

    ```pycon
    >>> import diffrax, jax.numpy as jnp
    >>> import structjax.check as sc, structjax.integrators as si
    >>> term = diffrax.ODETerm(lambda t, y, a: -a * y)
    >>> loss = lambda a, adj: jnp.sum(si.solve_fixed(term, diffrax.Tsit5(), jnp.ones(2),
    ...                                 dt=0.1, num_steps=10, args=a, adjoint=adj).y1)
    >>> fine = lambda a: jnp.sum(si.solve_fixed(term, diffrax.Tsit5(), jnp.ones(2),
    ...                                 dt=0.01, num_steps=100, args=a).y1)
    >>> r = sc.adjoint_consistency(loss, jnp.asarray(0.7), "symplectic", fine=fine)
    >>> print(bool(r.discrete < 1e-6), bool(r.continuous < 1e-4))
    True True

    ```
    """
    if not callable(loss):
        raise TypeError(f"`adjoint_consistency(loss, ...)` needs a callable loss, got {loss!r}.")
    if fine is not None and not callable(fine):
        raise TypeError(f"`adjoint_consistency(..., fine=...)` needs a callable, got {fine!r}.")
    g = eqx.filter_jit(lambda p: _grad(loss, p, adjoint))(params)
    ref = eqx.filter_jit(lambda p: _grad(loss, p, reference))(params)
    continuous = None
    if fine is not None:
        g_fine = eqx.filter_jit(eqx.filter_grad(fine))(params)
        continuous = _relative(g, g_fine)
    for leaf in jtu.tree_leaves(g):
        if not bool(jnp.all(jnp.isfinite(leaf))):
            return AdjointConsistency(float("inf"), None if fine is None else float("inf"))
    return AdjointConsistency(_relative(g, ref), continuous)
