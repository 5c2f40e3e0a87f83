"""Any explicit one-step method made algebraically reversible (McCallum & Foster 2024)."""

from collections.abc import Callable
from typing import ClassVar

import diffrax
import jax.numpy as jnp
import jax.tree_util as jtu
from jax.typing import ArrayLike
from jaxtyping import PyTree

from .._guards import static_float
from ._base import AbstractStructuredSolver

RealScalarLike = ArrayLike
_Step = tuple[PyTree, None, dict, PyTree, diffrax.RESULTS]


def _increment(solver, terms, t, h, y, args):
    """`Psi_h(t, y)`: the base method's step minus its start (h may be negative)."""
    state = solver.init(terms, t, t + h, y, args)
    y1 = solver.step(terms, t, t + h, y, args, state, False)[0]
    return jtu.tree_map(jnp.subtract, y1, y)


def _lin(a, x, b, z, d):
    """a x + b z + d, leaf by leaf."""
    return jtu.tree_map(lambda x_, z_, d_: a * x_ + b * z_ + d_, x, z, d)


class ReversibleRK(AbstractStructuredSolver):
    r"""Any explicit diffrax solver made algebraically reversible: McCallum & Foster (2024,
    "Efficient, accurate and stable gradients for neural ODEs", arXiv:2410.11648, Sec. 3).

    With $\Psi_h(t, y)$ the base method's increment over a step $h$ and the coupling
    $\lambda \in (0, 1]$, the method carries a second state $z$ ($z_0 = y_0$) and steps

    $$y_{n+1} = \lambda y_n + (1 - \lambda) z_n + \Psi_h(t_n, z_n), \qquad
    z_{n+1} = z_n - \Psi_{-h}(t_{n+1}, y_{n+1}),$$

    whose inverse is explicit: $z_n = z_{n+1} + \Psi_{-h}(t_{n+1}, y_{n+1})$,
    $y_n = \big(y_{n+1} - (1 - \lambda) z_n - \Psi_h(t_n, z_n)\big)/\lambda$. It has the base
    method's order (their Theorem 3.1) and, for $\lambda < 1$, is linearly stable where the
    base method is (their Sec. 4; they recommend $\lambda = 0.999$; $\lambda = 1$ is the
    asynchronous leapfrog of Mutze 2013 and Zhuang et al. 2021's MALI, which is not). Each
    step costs two base steps.

    With `solve_fixed(..., adjoint="reversible")` the backward pass rebuilds the trajectory
    by the inverse, so memory is flat in the number of steps and the gradient is autodiff's
    of the same discrete solve up to the rounding of the reconstruction. `solve_fixed` and
    `diffeqsolve` take and return the state $y$ (in `diffeqsolve`, $z$ rides in the solver
    state); `pair_step` and `pair_inverse` are the maps on $(y, z)$.

    **Arguments:**

    - `solver`: an explicit diffrax solver (`Euler`, `Heun`, `Midpoint`, `Tsit5`,
        `Dopri5`, ...; its step is run with a fresh `init` each time, both ways in time).
    - `coupling`: $\lambda \in (0, 1]$ (default 0.999).

    **Raises:** `ValueError` for a coupling outside (0, 1] or an implicit or non-diffrax
    `solver` (whose increment cannot be taken backwards in time exactly).

    **Example:**

    ```pycon
    >>> import diffrax, jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> term = diffrax.ODETerm(lambda t, y, a: -y)
    >>> rk = si.ReversibleRK(diffrax.Tsit5())
    >>> y0 = jnp.ones(2)
    >>> pair = rk.pair_step(term, 0.0, 0.1, (y0, y0))
    >>> back = rk.pair_inverse(term, 0.0, 0.1, pair)
    >>> print(bool(jnp.max(jnp.abs(back[0] - y0)) < 1e-12))
    True
    >>> sol = si.solve_fixed(term, rk, y0, dt=0.1, num_steps=10)
    >>> print(bool(jnp.max(jnp.abs(sol.y1 - jnp.exp(-1.0))) < 1e-6))
    True

    ```
    """

    solver: diffrax.AbstractSolver
    coupling: float = 0.999

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., diffrax.AbstractLocalInterpolation]] = (
        diffrax.LocalLinearInterpolation
    )
    steps_can_fail: ClassVar[bool] = False

    def __check_init__(self):
        call = f"ReversibleRK({type(self.solver).__name__}(...), coupling=...)"
        if not isinstance(self.solver, diffrax.AbstractSolver) or isinstance(
            self.solver, (diffrax.AbstractImplicitSolver, AbstractStructuredSolver)
        ):
            raise ValueError(
                f"`{call}` needs an explicit diffrax solver (Euler, Heun, Tsit5, Dopri5, ...), "
                f"got {type(self.solver).__name__}."
            )
        static_float(self.coupling, call, "coupling", lambda v: (v > 0) & (v <= 1), "in (0, 1]")

    def order(self, terms: PyTree) -> int | None:
        return self.solver.order(terms)

    def init(self, terms: PyTree, t0: ArrayLike, t1: ArrayLike, y0: PyTree, args: PyTree
             ) -> PyTree:  # fmt: skip
        return y0  # z_0 = y_0

    def pair_step(self, terms: PyTree, t0: RealScalarLike, h: RealScalarLike, yz: PyTree,
                  args: PyTree = None) -> PyTree:  # fmt: skip
        """One step on the pair `(y, z)`."""
        y, z = yz
        lam = self.coupling
        y1 = _lin(lam, y, 1 - lam, z, _increment(self.solver, terms, t0, h, z, args))
        t1, h = jnp.asarray(t0) + jnp.asarray(h), jnp.asarray(h)
        back = _increment(self.solver, terms, t1, -h, y1, args)
        z1 = jtu.tree_map(jnp.subtract, z, back)
        return y1, z1

    def pair_inverse(self, terms: PyTree, t0: RealScalarLike, h: RealScalarLike, yz1: PyTree,
                     args: PyTree = None) -> PyTree:  # fmt: skip
        """The inverse of `pair_step(terms, t0, h, ., args)` at `(y1, z1)`."""
        y1, z1 = yz1
        lam = self.coupling
        t1, h = jnp.asarray(t0) + jnp.asarray(h), jnp.asarray(h)
        z = jtu.tree_map(jnp.add, z1, _increment(self.solver, terms, t1, -h, y1, args))
        inc = _increment(self.solver, terms, t0, h, z, args)
        y = jtu.tree_map(lambda a, b, c: (a - (1 - lam) * b - c) / lam, y1, z, inc)
        return y, z

    def one_step(self, terms: PyTree, t0: ArrayLike, h: ArrayLike, y0: PyTree,
                 args: PyTree = None) -> PyTree:  # fmt: skip
        return self.pair_step(terms, t0, h, (y0, y0), args)[0]

    def step(self, terms: PyTree, t0: ArrayLike, t1: ArrayLike, y0: PyTree, args: PyTree,
             solver_state: PyTree, made_jump: ArrayLike) -> _Step:  # fmt: skip
        del made_jump
        h = jnp.asarray(t1) - jnp.asarray(t0)
        y1, z1 = self.pair_step(terms, t0, h, (y0, solver_state), args)
        return y1, None, dict(y0=y0, y1=y1), z1, diffrax.RESULTS.successful

    def func(self, terms: PyTree, t0: ArrayLike, y0: PyTree, args: PyTree) -> PyTree:
        return terms.vf(t0, y0, args)


class PairedReversibleRK(AbstractStructuredSolver):
    """`ReversibleRK` on the pair `(y, z)` as its state, for the fixed-step driver: its
    steps invert exactly, so the reversible adjoint takes them."""

    rk: ReversibleRK

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., diffrax.AbstractLocalInterpolation]] = (
        diffrax.LocalLinearInterpolation
    )
    steps_can_fail: ClassVar[bool] = False

    def order(self, terms):
        return self.rk.order(terms)

    def init(self, terms, t0, t1, y0, args):
        return None

    def one_step(self, terms, t0, h, y0, args=None):
        return self.rk.pair_step(terms, t0, h, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        y1 = self.one_step(terms, t0, t1 - t0, y0, args)
        return y1, None, dict(y0=y0, y1=y1), None, diffrax.RESULTS.successful

    def fixed_step(self, terms, t, dt, y, args, state):
        return self.one_step(terms, t, dt, y, args), state, None

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0[0], args), terms.vf(t0, y0[1], args)

    def check_reversible(self, call: str) -> None:
        return None

    def inverse_step(self, terms, t, dt, y1, args=None):
        return self.rk.pair_inverse(terms, t, dt, y1, args)
