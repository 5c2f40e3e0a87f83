"""RATTLE for holonomic constraints g(q) = 0: positions and velocities both on the
constraint manifold, the multipliers from optimistix (Newton) and lineax."""

from collections.abc import Callable
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx
import optimistix as optx
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, PyTree

from .._guards import guard, point_tolerance
from ..check._hamiltonian import constraint_violation
from ._implicit import (
    _Y,
    AbstractImplicitSolver,
    _Step,
    _Terms,
    check_solver_fields,
    default_newton,
    hermite_step,
    increment,
)
from ._splitting import _check_terms


class Rattle(AbstractImplicitSolver):
    """RATTLE (Andersen 1983; Leimkuhler & Skeel 1994) for
    $H = T(p) + U(q)$ with $T$ quadratic, under holonomic constraints $g(q) = 0$
    (Hairer, Lubich & Wanner, *Geometric Numerical Integration*, Sec. VII.1.4, eq. (1.26)):

    $p_{1/2} = p_0 - \\tfrac h2 (\\nabla U(q_0) + G(q_0)^\\top\\lambda)$,
    $q_1 = q_0 + h\\,\\nabla T(p_{1/2})$ with $\\lambda$ such that $g(q_1) = 0$;
    $p_1 = p_{1/2} - \\tfrac h2 (\\nabla U(q_1) + G(q_1)^\\top\\mu)$ with $\\mu$ such that
    $G(q_1)\\nabla T(p_1) = 0$ (the hidden velocity constraint), $G = \\partial g/\\partial q$.

    Second order, symmetric, symplectic on the constraint manifold. $\\lambda$ comes from
    an `optimistix` root finder (Newton by default, tolerance a field), $\\mu$ from a
    `lineax` solve (it is linear). A stage that does not converge, or a singular $\\mu$ solve
    (dependent constraints), is a diffrax `RESULTS` failure, and an error in `solve_fixed`.

    Use with `terms = separable_terms(kinetic, potential)` (T quadratic: its gradient is
    linear in p), `y0 = (q0, p0)` on the constraint manifold.

    **Arguments:**

    - `constraint`: `g(q, args) -> array` of the m constraints (any pytree `q`).
    - `root_finder`: for $\\lambda$ (solved as $h^2\\lambda/2$, in units of length);
        default `optimistix.Newton` with `rtol = atol = 1e-13` in float64, `1e3 eps` in
        lower precision.
    - `max_steps`: its iteration limit.

    **Raises:** at the start of a solve, for an initial state off the constraint manifold
    ($|g(q_0)|$ or $|G(q_0)\\nabla T(p_0)|$ over 1e-8, 1e-4 in float32): a `ValueError` from
    an eager `init`, a run-time error (`jax.errors.JaxRuntimeError`, equinox's
    `EquinoxRuntimeError` eagerly) from a compiled solve (`solve_fixed`, `diffeqsolve`, any
    `jax.jit`). At construction: `TypeError` for a `constraint` that is not callable or a
    `root_finder` that is not an optimistix root finder, `ValueError` for `max_steps < 1`.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> terms = si.separable_terms(lambda p, a: 0.5 * p @ p, lambda q, a: q[2])  # gravity
    >>> solver = si.Rattle(lambda q, args: q @ q - 1.0)  # the spherical pendulum
    >>> y0 = (jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 0.0, 1.0]))
    >>> q1, p1 = solver.one_step(terms, 0.0, 0.1, y0)
    >>> bool(abs(q1 @ q1 - 1.0) < 1e-12), bool(abs(q1 @ p1) < 1e-12)  # on the manifold
    (True, True)

    ```
    """

    term_structure: ClassVar = (diffrax.AbstractTerm, diffrax.AbstractTerm)
    constraint: Callable = eqx.field(static=True)
    root_finder: optx.AbstractRootFinder | None = None
    max_steps: int = eqx.field(static=True, default=32)

    def __check_init__(self):
        if not callable(self.constraint):
            raise TypeError(
                "`Rattle(constraint)` needs a function `g(q, args) -> array` of the "
                f"constraints, got {type(self.constraint).__name__}."
            )
        check_solver_fields(self, (optx.AbstractRootFinder,), "Newton")

    def order(self, terms: PyTree) -> int:
        return 2

    def check_problem(self, terms: PyTree, y0: _Y, args: PyTree, t0: ArrayLike) -> None:
        """The pair of terms `(term_q, term_p)` and the state `(q, p)` RATTLE takes."""
        _check_terms(terms, y0)

    def init(self, terms: PyTree, t0: ArrayLike, t1: ArrayLike, y0: _Y, args: PyTree) -> Array:
        self.check_problem(terms, y0, args, t0)
        pos, vel = self.violation(terms, t0, y0, args)
        leaves = jtu.tree_leaves(y0[0])
        dtype = jnp.result_type(*leaves)
        tol = point_tolerance(dtype, max(jnp.size(x) for x in leaves))
        message = (
            f"`Rattle` needs `y0=(q0, p0)` on the constraint manifold (|g(q0)| and "
            f"|G(q0) dT/dp(p0)| <= {tol:g}): the initial state is off the constraint manifold. "
            "Start from a q0 with g(q0) = 0 and a velocity tangent to it."
        )
        # Under a trace the check runs with the program: the (empty) state carries it (`step`).
        return guard(
            jnp.zeros((), dtype), ~((pos <= tol) & (vel <= tol)), message,
            found=jnp.maximum(pos, vel),
        )  # fmt: skip

    def violation(
        self, terms: _Terms, t: ArrayLike, y: tuple[_Y, _Y], args: PyTree
    ) -> tuple[Array, Array]:
        """`(max |g(q)|, max |G(q) dT/dp(p)|)` at `y`: `check.constraint_violation`."""
        q, p = y
        return constraint_violation(
            lambda q: self.constraint(q, args), q, p, lambda p: terms[0].vf(t, p, args)
        )

    def step(
        self,
        terms: _Terms,
        t0: ArrayLike,
        t1: ArrayLike,
        y0: tuple[_Y, _Y],
        args: PyTree,
        solver_state: Array | None,
        made_jump: ArrayLike,
    ) -> _Step:
        term_q, term_p = terms
        h = t1 - t0  # pyright: ignore[reportOperatorIssue]  (times: numbers or arrays)
        q0, p0 = y0
        flat_q0, unravel_q = ravel_pytree(q0)
        flat_p0, unravel_p = ravel_pytree(p0)
        dtype = flat_q0.dtype
        # The step in real time: the term's control (negative in diffeqsolve's backward
        # solves, which run in negated time through a `diffrax.WrapTerm`).
        hh = jnp.asarray(term_q.contr(t0, t1)).astype(dtype)

        def g(x):
            return jnp.ravel(self.constraint(unravel_q(x), args))

        def velocity(fp, t):  # dT/dp, linear in p
            return ravel_pytree(term_q.vf(t, unravel_p(fp), args))[0]

        def force(fq, t):  # -grad U
            return ravel_pytree(term_p.vf(t, unravel_q(fq), args))[0]

        jac0 = jax.jacfwd(g)(flat_q0)
        p_free = flat_p0 + 0.5 * hh * force(flat_q0, t0)

        def q_of(nu):
            # nu = h^2 lambda / 2, the multiplier in units of length: its rounding does not
            # grow as h shrinks, so one tolerance fits every step size.
            p_half = p_free - (jac0.T @ nu) / hh
            return flat_q0 + hh * velocity(p_half, t0 + 0.5 * h), p_half

        root_finder = self.root_finder
        if root_finder is None:
            root_finder = default_newton(dtype, eps_factor=1e3)
        lam0 = jnp.zeros(jac0.shape[0], dtype)
        sol = optx.root_find(lambda lam, _: g(q_of(lam)[0]), root_finder, lam0, throw=False,
                             max_steps=self.max_steps)  # fmt: skip
        q1, p_half = q_of(sol.value)
        jac1 = jax.jacfwd(g)(q1)
        p_free1 = p_half + 0.5 * hh * force(q1, t1)
        # m = h mu / 2 solves G1 V (p_free1 - G1^T m) = 0, V = dT/dp (linear): K m = G1 V p_free1
        # with K = G1 V G1^T, symmetric positive definite for a positive definite mass (and
        # for either sign of h).
        k = jax.vmap(lambda row: jac1 @ velocity(row, t1))(jac1).T
        rhs = jac1 @ velocity(p_free1, t1)
        operator = lx.MatrixLinearOperator(k, lx.positive_semidefinite_tag)
        # throw=False: a singular K (dependent constraints) is this step's failure, checked
        # once per solve by `solve_fixed` (or by `diffeqsolve`), not a per-step error here.
        sol_m = lx.linear_solve(operator, rhs, lx.Cholesky(), throw=False)
        m = sol_m.value
        p1 = p_free1 - jac1.T @ m
        # Tie the initial-state check carried by `solver_state` (see `init`) to the output, so
        # that a compiled program cannot drop it (adding an exact zero).
        if solver_state is not None:
            q1 = q1 + jnp.zeros((), dtype) * solver_state
        y1 = (unravel_q(q1), unravel_p(p1))
        result = diffrax.RESULTS.where(
            sol.result == optx.RESULTS.successful,
            diffrax.RESULTS.promote(sol_m.result),
            diffrax.RESULTS.promote(sol.result),
        )
        return hermite_step(self, terms, t0, t1, y0, y1, args, solver_state, result)

    def func(self, terms: _Terms, t0: ArrayLike, y0: tuple[_Y, _Y], args: PyTree) -> _Y:
        """The unconstrained vector field (for dense output only)."""
        q, p = y0
        return terms[0].vf(t0, p, args), terms[1].vf(t0, q, args)

    def increment(
        self, terms: _Terms, t0: ArrayLike, t1: ArrayLike, t: ArrayLike, y: _Y, args: PyTree
    ) -> _Y:
        """The unconstrained field at `(t, y)` times the step's controls (dense output)."""
        q, p = y
        return (increment(terms[0], t, p, args, terms[0].contr(t0, t1)),
                increment(terms[1], t, q, args, terms[1].contr(t0, t1)))  # fmt: skip
