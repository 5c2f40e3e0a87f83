"""A residual stack as a fixed-step ODE solve: the continuous-depth view of a ResNet."""

from collections.abc import Callable

import diffrax
import equinox as eqx
from jaxtyping import Array, PyTree

from .._guards import check_real_floating, positive_finite, static_float, static_int
from ..integrators import solve_fixed


class ODEBlock(eqx.Module):
    """$y \\mapsto y(T)$ for $\\dot y = f_\\theta(t, y)$, $y(0) = y$, by `num_steps` fixed steps
    of size `dt` of any diffrax or structjax solver, through structjax's lean fixed-step
    driver `solve_fixed` (one `lax.scan`). With `diffrax.Euler()` this is a ResNet of
    `num_steps` residual blocks $y \\leftarrow y + dt\\, f_\\theta(t, y)$ sharing weights
    (Chen, Rubanova, Bettencourt & Duvenaud 2018; Haber & Ruthotto 2017).

    **Arguments:**

    - `vector_field`: `(t, y, args) -> dy/dt`, typically an equinox module; or a pair
        `(f_q, f_p)` of partitioned fields for a state `y = (q, p)` and a structjax
        splitting method (`VelocityVerlet()`, ...), the `SemiImplicitEuler` convention.
    - `solver`: the diffrax solver.
    - `num_steps`, `dt`: the fixed steps (a Python int >= 1, a finite float > 0; static
        configuration, so not traced).
    - `adjoint`: `"autodiff"` or `"reversible"` (splittings: memory constant in
        `num_steps`), as in `solve_fixed`.

    **Raises:** `TypeError`/`ValueError` for a `num_steps` that is not an int >= 1 or a `dt`
    that is not finite and positive; at call time `TypeError` for a state `y` that is not
    real floating point.

    `__call__(y, args=None)` takes ONE state `y` (a pytree of arrays; a `(q, p)` tuple for a
    pair of fields) and returns $y(T)$ of the same structure; batch with `jax.vmap`. With a
    splitting method the block is a symplectic map:

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.check as sc, structjax.integrators as si, structjax.nn as snn
    >>> f_q = lambda t, p, args: p
    >>> f_p = lambda t, q, args: -jnp.sin(q)
    >>> block = snn.ODEBlock((f_q, f_p), si.VelocityVerlet(), num_steps=4, dt=0.1)
    >>> q, p = jnp.array([0.5]), jnp.array([0.0])
    >>> print(bool(sc.symplecticity_error(lambda q, p: block((q, p)), q, p) < 1e-12))
    True

    ```
    """

    vector_field: Callable | tuple[Callable, Callable]
    solver: diffrax.AbstractSolver
    num_steps: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    adjoint: str = eqx.field(static=True, default="autodiff")

    def __check_init__(self):
        static_int(self.num_steps, f"ODEBlock(num_steps={self.num_steps!r})", "num_steps")
        static_float(self.dt, f"ODEBlock(dt={self.dt!r})", "dt", positive_finite,
                     "a step dt > 0 (finite)")  # fmt: skip

    @property
    def terms(self) -> diffrax.ODETerm | tuple[diffrax.ODETerm, ...]:
        """The `diffrax.ODETerm` of `vector_field` (a pair of them for a pair of fields)."""
        if isinstance(self.vector_field, tuple):
            return tuple(diffrax.ODETerm(f) for f in self.vector_field)
        return diffrax.ODETerm(self.vector_field)

    def __call__(self, y: PyTree[Array], args: PyTree = None) -> PyTree[Array]:
        check_real_floating(y, "ODEBlock(...)(y)", "y")
        solution = solve_fixed(
            self.terms,
            self.solver,
            y,
            dt=self.dt,
            num_steps=self.num_steps,
            args=args,
            adjoint=self.adjoint,
        )
        return solution.y1
