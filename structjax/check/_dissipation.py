"""Certificate of a discrete gradient method: the discrete energy balance of its steps."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike
from jaxtyping import Array, PyTree

from ..integrators._discrete_gradient import AbstractDiscreteGradient


class DissipationError(NamedTuple):
    """The result of `dissipation_error`.

    **Arguments:**

    - `max_error`: $\\max_n |H(y_{n+1}) - H(y_n) + h\\,\\bar\\nabla H^\\top D\\,\\bar\\nabla
        H| / |H(y_0)|$, the discrete energy balance's residual over the steps (rounding and
        the stage solve's tolerance for a discrete gradient method).
    - `decrease`: $\\max_n (H(y_{n+1}) - H(y_n)) / |H(y_0)|$: at most 0 (up to rounding)
        where the dissipation is positive semidefinite, for every step size.

    **Example:**

    ```pycon
    >>> import structjax.check as sc
    >>> r = sc.DissipationError(max_error=1e-16, decrease=-1e-3)
    >>> print(r.max_error < 1e-12, r.decrease <= 0)
    True True

    ```
    """

    max_error: Array
    decrease: Array


def dissipation_error(
    solver: AbstractDiscreteGradient,
    terms: PyTree,
    y0: PyTree,
    *,
    dt: ArrayLike,
    num_steps: int,
    args: PyTree = None,
) -> DissipationError:
    """Measure the discrete energy balance of a discrete gradient method over `num_steps`
    steps of size `dt`: each step's $H(y_{n+1}) - H(y_n)$ against the discrete dissipation
    $-h\\,\\bar\\nabla H(y_n, y_{n+1})^\\top D\\,\\bar\\nabla H(y_n, y_{n+1})$ the method
    promises it equals (McLachlan, Quispel & Robidoux 1999, Phil. Trans. R. Soc. A 357,
    Sec. 2: zero for a conservative system, the discrete dissipation otherwise).

    **Arguments:**

    - `solver`: a discrete gradient method (`AVF`, `Gonzalez`, `ItohAbe`).
    - `terms`: a `PoissonTerm`.
    - `y0`: the initial state; `dt`: the step (any positive size: the balance holds for
        all); `num_steps`: a Python int >= 1; `args`: passed to $H$, $S$, $D$.

    **Returns:** a `DissipationError` of float scalars relative to $|H(y_0)|$.

    **Raises:** `TypeError` for a `solver` that is not a discrete gradient method; whatever
    the steps raise (`ValueError` for a term that is not a `PoissonTerm`; an error if a
    stage solve fails, at run time under `jax.jit`).

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.check as sc, structjax.integrators as si
    >>> H = lambda y, args: 0.5 * y[1] ** 2 - jnp.cos(y[0])
    >>> term = si.PoissonTerm(H, dissipation=jnp.diag(jnp.asarray([0.0, 0.2])))
    >>> r = sc.dissipation_error(si.Gonzalez(), term, jnp.asarray([2.0, 0.0]), dt=0.5,
    ...                          num_steps=20)
    >>> print(bool(r.max_error < 1e-12), bool(r.decrease <= 1e-15))
    True True

    ```
    """
    if not isinstance(solver, AbstractDiscreteGradient):
        raise TypeError(
            "`dissipation_error(solver, ...)` needs a discrete gradient method (AVF, Gonzalez, "
            f"ItohAbe), got {type(solver).__name__}."
        )
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"`dissipation_error(..., num_steps={num_steps!r})` needs an int >= 1.")

    def one(y, n):
        t = n * dt
        y1 = solver.one_step(terms, t, dt, y, args)
        change, dissipated = solver.energy_change(terms, y, y1, args, dt)
        return y1, (change, dissipated)

    e0 = jnp.asarray(terms.energy(y0, args))
    steps = jnp.arange(num_steps, dtype=jnp.result_type(e0))
    _, (change, dissipated) = jax.lax.scan(one, y0, steps)
    scale = jnp.maximum(jnp.abs(e0), jnp.finfo(e0.dtype).tiny)
    return DissipationError(jnp.max(jnp.abs(change - dissipated)) / scale,
                            jnp.max(change) / scale)  # fmt: skip
