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
    - `q`, `p`: the point at which to measure (pytrees of arrays with the same number of
        entries $n$; $J$ is $2n \\times 2n$).

    **Returns:** a scalar, the largest entry of $|J^\\top \\Omega J - \\Omega|$ (max norm),
    $\\Omega = \\begin{pmatrix} 0 & I \\\\ -I & 0 \\end{pmatrix}$.

    **Raises:** `ValueError` (trace time) when `q` and `p` have different numbers of entries.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.check as sc, structjax.integrators as si
    >>> terms = si.separable_terms(lambda p, args: 0.5 * jnp.sum(p**2),
    ...                            lambda q, args: 0.5 * jnp.sum(q**2))
    >>> q, p = jnp.array([1.0, 0.0]), jnp.array([0.0, 0.5])
    >>> step = lambda q, p: si.VelocityVerlet().one_step(terms, 0.0, 0.1, (q, p))
    >>> print(bool(sc.symplecticity_error(step, q, p) < 1e-14))
    True

    ```
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
    - `factor`: the claimed contraction $c$, a scalar.

    **Returns:** a scalar, the largest entry of $|J^\\top \\Omega J - c\\,\\Omega|$ (max norm).

    **Raises:** `ValueError` (trace time) when `q` and `p` have different numbers of entries.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.check as sc, structjax.integrators as si
    >>> terms = si.separable_terms(lambda p, args: 0.5 * jnp.sum(p**2),
    ...                            lambda q, args: 0.5 * jnp.sum(q**2))
    >>> q, p = jnp.array([1.0, 0.0]), jnp.array([0.0, 0.5])
    >>> method = si.conformal(si.VelocityVerlet(), damping=0.5)
    >>> step = lambda q, p: method.one_step(terms, 0.0, 0.1, (q, p))
    >>> c = jnp.exp(jnp.asarray(-0.5 * 0.1))
    >>> print(bool(sc.conformal_symplecticity_error(step, q, p, c) < 1e-14))
    True

    ```
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
    """How far a step followed by the step back is from the identity.

    Measures $\\max_i |\\Phi_{-h}(\\Phi_h(y))_i - y_i|$ (max norm over every leaf of
    $y = (q, p)$): zero (to rounding) for a symmetric, time-reversible method, one with
    $\\Phi_h^{-1} = \\Phi_{-h}$.

    **Arguments:**

    - `step_fn`: `(q, p, h) -> (q1, p1)`, one step of length `h` (which may be negative).
    - `q`, `p`: the start point, pytrees of arrays.
    - `h`: the step, a scalar.

    **Returns:** a scalar.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.check as sc, structjax.integrators as si
    >>> terms = si.separable_terms(lambda p, args: 0.5 * jnp.sum(p**2),
    ...                            lambda q, args: 0.5 * jnp.sum(q**2))
    >>> q, p = jnp.array([1.0, 0.0]), jnp.array([0.0, 0.5])
    >>> step = lambda q, p, h: si.VelocityVerlet().one_step(terms, 0.0, h, (q, p))
    >>> print(bool(sc.reversibility_error(step, q, p, 0.1) < 1e-14))
    True

    ```
    """
    q1, p1 = step_fn(q, p, h)
    q2, p2 = step_fn(q1, p1, -h)
    diff = jtu.tree_leaves(jtu.tree_map(lambda a, b: jnp.max(jnp.abs(a - b)), (q2, p2), (q, p)))
    return jnp.max(jnp.stack(diff))


class EnergyError(NamedTuple):
    """The result of `energy_error`: the relative energy error along a trajectory, and its trend.

    **Arguments:**

    - `max_error`: $\\max_n |H_n - H_0| / |H_0|$, a scalar.
    - `drift`: the slope of a least-squares line through $(H_n - H_0)/|H_0|$ against $n/N$,
        so the secular change over the run, a scalar.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.check as sc
    >>> ys = (jnp.array([1.0, 0.0, -1.0]), jnp.array([0.0, 1.0, 0.0]))  # on q^2 + p^2 = 1
    >>> err = sc.energy_error(lambda q, p: 0.5 * (q**2 + p**2), ys)
    >>> print(isinstance(err, sc.EnergyError), bool(err.max_error < 1e-15))
    True True

    ```
    """

    max_error: Float[Array, ""]
    drift: Float[Array, ""]


def energy_error(
    hamiltonian: Callable[[PyTree, PyTree], Array], ys: tuple[PyTree, PyTree]
) -> EnergyError:
    """Relative energy error along a trajectory, and its trend.

    A symplectic method keeps $H$ within $O(h^p)$ of $H_0$ over exponentially long times
    (HLW GNI, Theorem IX.8.1): bounded error and no drift; a non-symplectic one drifts.

    **Arguments:**

    - `hamiltonian`: `H(q, p) -> scalar`.
    - `ys`: `(qs, ps)`, the trajectory, time along the first axis of every leaf (shape
        `(N + 1, ...)`).

    **Returns:** an `EnergyError(max_error, drift)` of scalars: $\\max_n |H_n - H_0|/|H_0|$
    and the least-squares slope of $(H_n - H_0)/|H_0|$ against $n/N$.

    **Raises:** `ValueError` (trace time) when `hamiltonian` does not return a scalar.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.check as sc, structjax.integrators as si
    >>> terms = si.separable_terms(lambda p, args: 0.5 * jnp.sum(p**2),
    ...                            lambda q, args: 0.5 * jnp.sum(q**2))
    >>> y0 = (jnp.array([1.0, 0.0]), jnp.array([0.0, 0.5]))
    >>> out = si.solve_fixed(terms, si.VelocityVerlet(), y0, dt=0.1, num_steps=1000,
    ...                      save_every=10)
    >>> err = sc.energy_error(lambda q, p: 0.5 * jnp.sum(p**2) + 0.5 * jnp.sum(q**2), out.ys)
    >>> print(bool(err.max_error < 1e-2), bool(abs(err.drift) < 1e-3))
    True True

    ```
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
    - `reference`: the exact (or much more accurate) solution, a pytree like `solve_fn`'s.

    **Returns:** the fitted slope, a float (the error is the max norm over every leaf).

    **Raises:** `ValueError` for fewer than two step sizes, or when an error is exactly zero
    (its logarithm is undefined).

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.check as sc, structjax.integrators as si
    >>> terms = si.separable_terms(lambda p, args: 0.5 * jnp.sum(p**2),
    ...                            lambda q, args: 0.5 * jnp.sum(q**2))
    >>> y0 = (jnp.array([1.0, 0.0]), jnp.array([0.0, 0.5]))
    >>> solve = lambda dt: si.solve_fixed(terms, si.VelocityVerlet(), y0, dt=dt,
    ...                                   num_steps=round(1 / dt)).y1
    >>> reference = si.solve_fixed(terms, si.KahanLi8(), y0, dt=1e-2, num_steps=100).y1
    >>> print(round(sc.convergence_order(solve, [0.1, 0.05, 0.025], reference), 1))
    2.0

    ```
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
    constrained motion (HLW, GNI, Sec. VII.1.1). Both are max norms over the constraints.

    **Arguments:**

    - `g`: `q -> g(q)`, the constraints, an array of shape `(m,)` (or any shape).
    - `q`, `p`: the point, pytrees of arrays.
    - `velocity`: `p -> dq/dt`, a pytree like `q`; `None` for `p` itself (unit mass).

    **Returns:** `(position, velocity)`, two scalars.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.check as sc
    >>> g = lambda q: jnp.array([q @ q - 1.0])  # the unit circle
    >>> q, p = jnp.array([0.6, 0.8]), jnp.array([-0.8, 0.6])  # a tangent velocity
    >>> position, velocity = sc.constraint_violation(g, q, p)
    >>> print(bool(position < 1e-15), bool(velocity < 1e-15))
    True True

    ```
    """
    flat_q, unravel = ravel_pytree(q)
    v = ravel_pytree(p if velocity is None else velocity(p))[0]

    def flat_g(x):
        return jnp.ravel(g(unravel(x)))

    return jnp.max(jnp.abs(flat_g(flat_q))), jnp.max(jnp.abs(jax.jacfwd(flat_g)(flat_q) @ v))
