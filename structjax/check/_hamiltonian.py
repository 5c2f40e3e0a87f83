"""Certificates for integrators: symplecticity, reversibility, energy, order."""

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike
from jaxtyping import Array, Float, PyTree, Real


def _flat_map(step_fn, q, p):
    """The one-step map as a function of the flat vector (q, p)."""
    flat_q, unravel_q = ravel_pytree(q)
    flat_p, unravel_p = ravel_pytree(p)
    n = flat_q.size
    if flat_p.size != n:
        raise ValueError(
            f"`q` and `p` must have the same number of entries, got {n} and {flat_p.size}."
        )

    def f(z):
        q1, p1 = step_fn(unravel_q(z[:n]), unravel_p(z[n:]))
        return jnp.concatenate([ravel_pytree(q1)[0], ravel_pytree(p1)[0]])

    return f, jnp.concatenate([flat_q, flat_p]), n


def symplecticity_error(
    step_fn: Callable[[PyTree, PyTree], tuple[PyTree, PyTree]], q: PyTree, p: PyTree
) -> Float[Array, ""]:
    """$\\max |J^\\top \\Omega J - \\Omega|$ for the Jacobian $J$ of a one-step map at $(q, p)$.

    Zero (to rounding) exactly when the map is symplectic at that point
    (Hairer, Lubich & Wanner, GNI, Definition VI.2.2). $J$ comes from `jax.jacrev`, which
    also passes through diffrax's `custom_vjp`.

    **Arguments:**

    - `step_fn`: `(q, p) -> (q1, p1)`, for pytrees `q`, `p` of equal size.
    - `q`, `p`: the point at which to measure.

    **Returns:** a scalar.
    """
    return conformal_symplecticity_error(step_fn, q, p, 1.0)


def conformal_symplecticity_error(
    step_fn: Callable[[PyTree, PyTree], tuple[PyTree, PyTree]],
    q: PyTree,
    p: PyTree,
    factor: Real[ArrayLike, ""],
) -> Float[Array, ""]:
    """$\\max |J^\\top \\Omega J - c\\,\\Omega|$ for the Jacobian $J$ of a one-step map at
    $(q, p)$ and a contraction factor $c$.

    Zero (to rounding) exactly when the map is conformal symplectic with factor $c$ at that
    point, as a conformal-symplectic splitting of a damped Hamiltonian system is with
    $c = e^{-\\gamma h}$ (McLachlan & Perlmutter 2001, "Conformal Hamiltonian systems",
    Sec. 2), and as the optimisers of `structjax.optim` built on it are in (params,
    momentum). `factor=1` is `symplecticity_error`.

    **Arguments:**

    - `step_fn`: `(q, p) -> (q1, p1)`, for pytrees `q`, `p` of equal size (an optimiser's
        params and momentum, for instance).
    - `q`, `p`: the point at which to measure.
    - `factor`: the claimed contraction $c$.

    **Returns:** a scalar.
    """
    f, z, n = _flat_map(step_fn, q, p)
    jac = jax.jacrev(f)(z)
    eye = jnp.eye(n, dtype=jac.dtype)
    zero = jnp.zeros_like(eye)
    omega = jnp.block([[zero, eye], [-eye, zero]])
    return jnp.max(jnp.abs(jac.T @ omega @ jac - jnp.asarray(factor, jac.dtype) * omega))


def reversibility_error(
    step_fn: Callable[[PyTree, PyTree, Real[Array, ""] | float], tuple[PyTree, PyTree]],
    q: PyTree,
    p: PyTree,
    h: Real[Array, ""] | float,
) -> Float[Array, ""]:
    """$\\max|\\Phi_{-h}(\\Phi_h(y)) - y|$: zero for a symmetric (time-reversible) method.

    **Arguments:**

    - `step_fn`: `(q, p, h) -> (q1, p1)`, one step of length `h` (which may be negative).
    - `q`, `p`: the start point. `h`: the step.

    **Returns:** a scalar.
    """
    q1, p1 = step_fn(q, p, h)
    q2, p2 = step_fn(q1, p1, -h)
    diff = jtu.tree_leaves(jtu.tree_map(lambda a, b: jnp.max(jnp.abs(a - b)), (q2, p2), (q, p)))
    return jnp.max(jnp.stack(diff))


class EnergyError(NamedTuple):
    """`max_error`: $\\max_n |H_n - H_0| / |H_0|$; `drift`: the slope of a least-squares
    line through $(H_n - H_0)/|H_0|$ against $n/N$, so the secular change over the run."""

    max_error: Float[Array, ""]
    drift: Float[Array, ""]


def energy_error(hamiltonian: Callable[[PyTree, PyTree], Array], ys: tuple[PyTree, PyTree]):
    """Relative energy error along a trajectory, and its trend.

    A symplectic method keeps $H$ within $O(h^p)$ of $H_0$ over exponentially long times
    (HLW GNI, Theorem IX.8.1): bounded error and no drift; a non-symplectic one drifts.

    **Arguments:**

    - `hamiltonian`: `H(q, p) -> scalar`.
    - `ys`: `(qs, ps)`, the trajectory, time along the first axis of every leaf.

    **Returns:** an `EnergyError(max_error, drift)` of scalars.
    """
    energies = jax.vmap(hamiltonian)(*ys)
    if energies.ndim != 1:
        raise ValueError(f"`hamiltonian` must return a scalar, got shape {energies.shape[1:]}.")
    scale = jnp.maximum(jnp.abs(energies[0]), jnp.finfo(energies.dtype).tiny)
    rel = (energies - energies[0]) / scale
    x = jnp.linspace(0.0, 1.0, rel.shape[0], dtype=rel.dtype)
    xc = x - jnp.mean(x)
    drift = jnp.sum(xc * (rel - jnp.mean(rel))) / jnp.maximum(jnp.sum(xc**2), 1e-30)
    return EnergyError(jnp.max(jnp.abs(rel)), drift)


def convergence_order(
    solve_fn: Callable[[float], PyTree], dts: Sequence[float], reference: PyTree
) -> float:
    """The empirical order: the slope of $\\log e(h)$ against $\\log h$ (least squares), with
    $e(h) = \\max|y_h - y_{\\mathrm{ref}}|$.

    **Arguments:**

    - `solve_fn`: `dt -> y`, the solution at a fixed final time with step `dt`.
    - `dts`: at least two step sizes, small enough for the asymptotic regime and large
        enough that the error stays well above rounding.
    - `reference`: the exact (or much more accurate) solution.

    **Returns:** the fitted slope, a float.
    """
    if len(dts) < 2:
        raise ValueError(f"`convergence_order` needs at least two step sizes, got {len(dts)}.")
    errors = []
    for dt in dts:
        y = solve_fn(dt)
        err = jtu.tree_leaves(jtu.tree_map(lambda a, b: jnp.max(jnp.abs(a - b)), y, reference))
        errors.append(float(jnp.max(jnp.stack(err))))
    if min(errors) == 0.0:
        raise ValueError(f"An error is exactly zero ({errors}): choose larger step sizes.")
    slope = np.polyfit(np.log(np.asarray(dts, float)), np.log(np.asarray(errors)), 1)[0]
    return float(slope)


def constraint_violation(
    g: Callable[[PyTree], Array],
    q: PyTree,
    p: PyTree,
    velocity: Callable[[PyTree], PyTree] | None = None,
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """How far `(q, p)` is from the constraint manifold of $g(q) = 0$: the position
    constraint $\\max|g(q)|$ and the hidden velocity constraint
    $\\max|G(q)\\,\\dot q|$, $G = \\partial g/\\partial q$, $\\dot q$ = `velocity(p)`
    ($\\partial T/\\partial p$; `p` itself by default, unit mass). Both vanish along an exact
    constrained motion (HLW, GNI, Sec. VII.1.1).

    **Returns:** `(position, velocity)`, two scalars.
    """
    flat_q, unravel = ravel_pytree(q)
    v = ravel_pytree(p if velocity is None else velocity(p))[0]

    def flat_g(x):
        return jnp.ravel(g(unravel(x)))

    return jnp.max(jnp.abs(flat_g(flat_q))), jnp.max(jnp.abs(jax.jacfwd(flat_g)(flat_q) @ v))
