"""Implicit symplectic Runge–Kutta methods (Gauss–Legendre collocation) for any H(y).

ONE implementation driven by a `ImplicitTableau`; the stage equations are solved with an
optimistix root finder (Newton by default, fixed-point iteration selectable).
"""

from collections.abc import Callable
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optimistix as optx
from diffrax._term import WrapTerm  # what diffeqsolve wraps every term in (no public name)
from jaxtyping import ArrayLike, PyTree

from .._guards import guard
from ._base import AbstractStructuredSolver, StageTableau

# diffrax's solver signatures (`diffrax.AbstractSolver.step`), written with public names.
_Terms = PyTree[diffrax.AbstractTerm]
_Y = PyTree[ArrayLike]
_Step = tuple[_Y, None, dict[str, PyTree], PyTree, diffrax.RESULTS]


def increment(term, t, y, args, control):
    """`term.prod(term.vf(t, y, args), control)` in `y`'s dtypes: the increment over a step
    whose control is `control`, as diffrax's own solvers build it (the control carries the
    sign of a backward solve and may be a pytree; the field need only be `prod`-compatible
    with the state)."""
    return jtu.tree_map(lambda k, v: jnp.asarray(k).astype(jnp.result_type(v)),
                        term.vf_prod(t, y, args, control), y)  # fmt: skip


def default_root_finder(dtype, *, eps_factor: float = 100.0, fixed_point: bool = False):
    """The implicit solvers' default root finder in `dtype`, to `max(1e-13, eps_factor eps)`.

    `fixed_point=True` (Gauss–Legendre) takes fixed-point iteration in float64: the method of
    choice for non-stiff problems (HLW GNI Sec. VIII.6.1), here 3x cheaper per step than
    Newton at equal accuracy (double pendulum, GL4, dt = 0.2: 3.1 against 9.2 us). In lower
    precision, and otherwise, Newton: optimistix's fixed-point loop keeps a float64 error
    estimate when x64 is on and rejects its own float32 update of it.
    """
    tol = max(1e-13, eps_factor * float(jnp.finfo(dtype).eps))
    if fixed_point and dtype == jnp.float64:
        return optx.FixedPointIteration(rtol=tol, atol=tol)
    return default_newton(dtype, eps_factor=eps_factor)


def default_newton(dtype, *, eps_factor: float = 100.0) -> optx.Newton:
    """`optimistix.Newton` in `dtype` to `max(1e-13, eps_factor eps)`: the default of the
    solvers whose equations are a root find (`GeneralizedLeapfrog`, `Rattle`)."""
    tol = max(1e-13, eps_factor * float(jnp.finfo(dtype).eps))
    return optx.Newton(rtol=tol, atol=tol)


def hermite_step(solver, terms, t0, t1, y0, y1, args, state, result):
    """The return of `diffrax.AbstractSolver.step` for the implicit and constrained solvers:
    `y1` with the cubic Hermite dense output whose slopes are `solver.increment` (the vector
    field times the step's control) at both ends."""
    k0 = solver.increment(terms, t0, t1, t0, y0, args)
    k1 = solver.increment(terms, t0, t1, t1, y1, args)
    return y1, None, dict(y0=y0, y1=y1, k0=k0, k1=k1), state, result


@eqx.filter_jit
def _compiled_step(solver, terms, t0, h, y0, args, state):
    y1, _, _, _, result = solver.step(terms, t0, t0 + h, y0, args, state, False)
    return y1, result == diffrax.RESULTS.successful


def checked_one_step(solver, terms, t0, h, y0, args, state=None):
    """One step as a pure function (for certificates); an error if a solve failed, at once
    when called eagerly and at run time under `jax.jit`. Compiled once per solver, terms and
    shapes: eager calls with new values of `t0`, `h`, `y0` reuse it (optimistix's loops,
    traced op by op, would otherwise compile again on every call)."""
    # Python numbers as weakly typed arrays: traced, not static, and still taking the
    # state's precision.
    t0, h = (x if isinstance(x, jax.Array) else jnp.asarray(x) for x in (t0, h))
    y1, ok = _compiled_step(solver, terms, t0, h, y0, args, state)
    return guard(
        y1,
        ~ok,
        f"`{type(solver).__name__}.one_step`: a step failed (an implicit solve did not converge "
        "within `max_steps`); take a smaller step or raise `max_steps`.",
    )


def check_solver_fields(solver, root_finder_types: tuple, default: str):
    """Trace-time refusals of an implicit solver's configuration (at construction)."""
    name = type(solver).__name__
    steps = solver.max_steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`{name}(max_steps={steps!r})` needs a Python int >= 1.")
    finder = solver.root_finder
    if finder is not None and not isinstance(finder, root_finder_types):
        raise TypeError(
            f"`{name}(root_finder=...)` needs None (the default, {default}) or "
            f"{' or '.join('optimistix.' + t.__name__ for t in root_finder_types)}, got "
            f"{type(finder).__name__}."
        )


class AbstractImplicitSolver(AbstractStructuredSolver):
    """The implicit and constrained solvers: a step solves equations and can fail (reported
    as diffrax's `RESULTS`, so `diffeqsolve(throw=True)` and `solve_fixed` raise); `one_step`
    raises at once eagerly and at run time under `jax.jit` (`checked_one_step`); the dense
    output's slopes are `increment`, the vector field times the step's control."""

    def func(self, terms: _Terms, t0: ArrayLike, y0: _Y, args: PyTree) -> _Y:
        return terms.vf(t0, y0, args)

    def increment(
        self, terms: _Terms, t0: ArrayLike, t1: ArrayLike, t: ArrayLike, y: _Y, args: PyTree
    ) -> _Y:
        """The field at `(t, y)` times the control of the step `[t0, t1]`."""
        return increment(terms, t, y, args, terms.contr(t0, t1))

    def one_step(
        self, terms: _Terms, t0: ArrayLike, h: ArrayLike, y0: _Y, args: PyTree = None
    ) -> _Y:
        """One step as a pure function (for certificates); raises if a solve failed."""
        return checked_one_step(self, terms, t0, h, y0, args)


class ImplicitTableau(StageTableau):
    """The coefficients $(A, b, c)$ of an $s$-stage implicit Runge–Kutta method, its order,
    its source: the data of `ImplicitRungeKutta` (Hairer, Nørsett & Wanner, *Solving ODEs I*,
    Sec. II.1, eq. (1.8); Gauss–Legendre tables: HLW, *GNI*, Sec. II.1.3). Named apart from
    `diffrax.ButcherTableau`, diffrax's table of explicit methods.

    **Arguments:**

    - `a`: the $s \\times s$ stage matrix (any nested sequence of numbers).
    - `b`: the $s$ weights; `c`: the $s$ nodes.
    - `order`: the classical order the table attains (an int >= 1).
    - `source`: where the coefficients come from (cited in error messages and docs).

    **Returns:** a static, hashable table (its fields are tuples of floats).

    **Raises:** `ValueError` at construction unless $A$ is $s \\times s$ with $s$ the length
    of $b$ and $c$, every coefficient is finite, $\\sum_i b_i = 1$ (consistency: order at
    least 1) and `order` is an int >= 1.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> midpoint = si.ImplicitTableau(a=[[0.5]], b=[1.0], c=[0.5], order=2,
    ...                               source="the implicit midpoint rule")
    >>> si.ImplicitRungeKutta(midpoint).order(None)
    2
    >>> si.gauss_legendre_tableau(1).a == midpoint.a  # the 1-stage Gauss method
    True

    ```
    """

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`(A, b, c)` as numpy arrays."""
        return np.asarray(self.a), np.asarray(self.b), np.asarray(self.c)

    def symplecticity_defect(self) -> float:
        """$\\max_{ij} |b_i a_{ij} + b_j a_{ji} - b_i b_j|$: zero exactly for a symplectic RK
        method (Sanz-Serna 1988; Hairer, Lubich & Wanner, GNI, Theorem VI.4.3)."""
        a, b, _ = self.arrays()
        bb = b[:, None] * a
        return float(np.max(np.abs(bb + bb.T - np.outer(b, b))))


def gauss_legendre_tableau(stages: int) -> ImplicitTableau:
    """The $s$-stage Gauss–Legendre collocation method, order $2s$, computed from its
    definition rather than transcribed: the nodes $c_i$ are the zeros of the shifted Legendre
    polynomial $P_s(2\\tau - 1)$, $b_i = \\int_0^1 \\ell_i$, $a_{ij} = \\int_0^{c_i} \\ell_j$ with
    $\\ell_j$ the Lagrange polynomials on the nodes (Hairer, Lubich & Wanner, *Geometric
    Numerical Integration*, Sec. II.1.3 and Table II.1.1 (s = 1, 2); Hairer & Wanner,
    *Solving ODEs II*, Sec. IV.5, Table 5.2 (s = 3)). Exact to rounding in float64; the
    tests compare s = 2 and 3 with the published tables.

    **Arguments:**

    - `stages`: the number of stages $s \\ge 1$ (a Python int).

    **Returns:** the `ImplicitTableau` of order $2s$, symplectic (its
    `symplecticity_defect()` is zero to rounding).

    **Raises:** `ValueError` unless `stages` is a positive int.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> tab = si.gauss_legendre_tableau(2)
    >>> tab.order, tab.stages
    (4, 2)
    >>> bool(tab.symplecticity_defect() < 1e-15)
    True

    ```
    """
    if isinstance(stages, bool) or not (isinstance(stages, int) and stages >= 1):
        raise ValueError(f"`gauss_legendre_tableau(stages={stages!r})` needs a positive int.")
    x, w = np.polynomial.legendre.leggauss(stages)
    c, b = (x + 1) / 2, w / 2
    a = np.empty((stages, stages))
    for j in range(stages):
        others = np.delete(c, j)
        ell = np.poly1d(np.poly(others)) / np.prod(c[j] - others)  # Lagrange basis l_j
        integral = np.polyint(ell)
        a[:, j] = integral(c) - integral(0.0)
    source = (
        f"Gauss–Legendre collocation, {stages} stage{'s' if stages > 1 else ''} "
        "(HLW GNI II.1.3; computed from the definition)"
    )
    return ImplicitTableau(a=a, b=b, c=c, order=2 * stages, source=source)


class ImplicitRungeKutta(AbstractImplicitSolver):
    """An implicit Runge–Kutta method for $\\dot y = f(t, y)$ on any pytree $y$, its stage
    equations $Z_i = h\\sum_j a_{ij} f(t_0 + c_j h, y_0 + Z_j)$ solved by `root_finder`.

    With a Gauss–Legendre tableau (`GaussLegendre`, `ImplicitMidpoint`) the method is
    symplectic for $f = J\\nabla H$ and conserves every quadratic invariant of any ODE
    exactly (HLW, GNI, Theorems IV.2.1 and VI.4.3), to the tolerance of the root finder.

    A non-converged stage solve is never silent: the step returns optimistix's failure as
    diffrax's `RESULTS` (so `diffeqsolve(throw=True)` raises, and `solve_fixed` too).

    **Arguments:**

    - `tableau`: a `ImplicitTableau`.
    - `root_finder`: an optimistix fixed-point solver (it solves $Z = \\Phi(Z)$) or root
        finder (it solves $\\Phi(Z) - Z = 0$). Default (None): `optimistix.FixedPointIteration`
        with `rtol = atol = 1e-13` in float64 (Newton at `100 eps` in lower precision), the
        choice for non-stiff problems (HLW GNI VIII.6.1); it converges when $h$ times the Lipschitz
        constant of $f$ is small, and reports a failure otherwise. For stiff problems or
        large steps pass `optimistix.Newton(rtol, atol)` (or `optimistix.Chord`).
    - `max_steps`: the solver's iteration limit.

    **Raises:** `TypeError` at construction for a `tableau` that is not an `ImplicitTableau`
    or a `root_finder` that is not an optimistix solver, `ValueError` for `max_steps < 1`;
    `ValueError` at the start of a solve unless `terms` is ONE term.

    **Example:**

    ```pycon
    >>> import diffrax, jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> solver = si.ImplicitRungeKutta(si.gauss_legendre_tableau(3))
    >>> term = diffrax.ODETerm(lambda t, y, args: (y[1], -y[0]))  # the harmonic oscillator
    >>> y1 = solver.one_step(term, 0.0, 0.2, (jnp.array(1.0), jnp.array(0.0)))
    >>> bool(abs(y1[0] - jnp.cos(0.2)) < 1e-10), solver.order(None)  # local error O(h^7)
    (True, 6)

    ```
    """

    term_structure: ClassVar = diffrax.AbstractTerm
    tableau: ImplicitTableau = eqx.field(static=True)
    root_finder: optx.AbstractRootFinder | optx.AbstractFixedPointSolver | None = None
    max_steps: int = eqx.field(static=True, default=100)

    def __check_init__(self):
        if not isinstance(self.tableau, ImplicitTableau):
            raise TypeError(
                "`ImplicitRungeKutta(tableau)` needs a `ImplicitTableau` (e.g. "
                f"`gauss_legendre_tableau(2)`), got {type(self.tableau).__name__}."
            )
        check_solver_fields(
            self,
            (optx.AbstractRootFinder, optx.AbstractFixedPointSolver),
            "fixed-point iteration",
        )

    def order(self, terms: PyTree) -> int:
        return self.tableau.order

    def init(self, terms: PyTree, t0: ArrayLike, t1: ArrayLike, y0: _Y, args: PyTree) -> None:
        self.check_problem(terms, y0, args, t0)
        return None

    def check_problem(self, terms: PyTree, y0: _Y, args: PyTree, t0: ArrayLike) -> None:
        """ONE term for the whole vector field."""
        if not isinstance(terms, diffrax.AbstractTerm) or isinstance(terms, diffrax.MultiTerm):
            raise ValueError(
                f"{type(self).__name__} takes ONE term for the whole vector field "
                "(`diffrax.ODETerm(lambda t, y, args: ...)`, e.g. J grad H for a Hamiltonian "
                f"system), got {type(terms).__name__}."
            )

    def _stages(self, terms, t0, t1, y0, args):
        h = t1 - t0
        tab = self.tableau
        s = tab.stages
        dtype = jnp.result_type(*jtu.tree_leaves(y0))
        a = jnp.asarray(tab.a, dtype)
        c_t = jnp.asarray(tab.c, jnp.result_type(t0, h))
        c = c_t.astype(dtype)

        control = terms.contr(t0, t1)

        def field(z):
            # The increment K_i = prod(f(t0 + c_i h, y0 + Z_i), control) at every stage:
            # leaves of shape (s, ...). The control (not h) carries a backward solve's sign.
            return jax.vmap(
                lambda ci, zi: increment(
                    terms, t0 + ci * h, jtu.tree_map(jnp.add, y0, zi), args, control
                )  # fmt: skip
            )(c_t, z)

        def phi(z, _):
            kz = field(z)
            return jtu.tree_map(lambda k: jnp.tensordot(a, k, axes=1).astype(k.dtype), kz)

        # the predictor: every stage at the explicit-Euler guess c_i K(t0, y0)
        k0 = increment(terms, t0, y0, args, control)
        z0 = jtu.tree_map(lambda k: c.reshape((s,) + (1,) * k.ndim) * k, k0)
        root_finder = self.root_finder
        if root_finder is None:
            root_finder = default_root_finder(dtype, fixed_point=True)
        if isinstance(root_finder, optx.AbstractFixedPointSolver):
            sol = optx.fixed_point(phi, root_finder, z0, throw=False,
                                   max_steps=self.max_steps)  # fmt: skip
        else:
            sol = optx.root_find(
                lambda z, _: jtu.tree_map(jnp.subtract, phi(z, None), z),
                root_finder,
                z0,
                throw=False,
                max_steps=self.max_steps,
            )
        return sol.value, field(sol.value), diffrax.RESULTS.promote(sol.result)

    def step(
        self,
        terms: _Terms,
        t0: ArrayLike,
        t1: ArrayLike,
        y0: _Y,
        args: PyTree,
        solver_state: None,
        made_jump: ArrayLike,
    ) -> _Step:
        _, kz, result = self._stages(terms, t0, t1, y0, args)
        dtype = jnp.result_type(*jtu.tree_leaves(y0))
        b = jnp.asarray(self.tableau.b, dtype)
        y1 = jtu.tree_map(lambda y, k: y + jnp.tensordot(b, k, axes=1).astype(y.dtype), y0, kz)
        return hermite_step(self, terms, t0, t1, y0, y1, args, None, result)


class GaussLegendre(ImplicitRungeKutta):
    """The `stages`-stage Gauss–Legendre collocation method, order 2 x `stages`:
    `ImplicitRungeKutta` over `gauss_legendre_tableau(stages)` (Hairer, Lubich & Wanner,
    *GNI*, Sec. II.1.3). Symplectic, symmetric, A-stable, and it conserves every quadratic
    invariant of any ODE exactly (to the root finder's tolerance).

    **Arguments:**

    - `stages`: the number of stages s >= 1 (order 2s).
    - `root_finder`, `max_steps`: as for `ImplicitRungeKutta`.

    **Raises:** `ValueError` for `stages` not a positive int or `max_steps < 1`; `TypeError`
    for a `root_finder` that is not an optimistix root finder or fixed-point solver.

    **Example:**

    ```pycon
    >>> import diffrax, jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> solver = si.GaussLegendre(2)
    >>> solver.order(None), isinstance(solver, si.ImplicitRungeKutta)
    (4, True)
    >>> term = diffrax.ODETerm(lambda t, y, args: (y[1], -y[0]))  # the harmonic oscillator
    >>> y1 = solver.one_step(term, 0.0, 0.1, (jnp.array(1.0), jnp.array(0.0)))
    >>> bool(abs(y1[0] ** 2 + y1[1] ** 2 - 1.0) < 1e-12)  # a quadratic invariant, exactly
    True

    ```
    """

    def __init__(
        self,
        stages: int = 2,
        root_finder: optx.AbstractRootFinder | optx.AbstractFixedPointSolver | None = None,
        max_steps: int = 100,
    ):
        self.tableau = gauss_legendre_tableau(stages)
        self.root_finder = root_finder
        self.max_steps = max_steps

    @property
    def stages(self) -> int:
        """The number of stages $s$ (the order is $2s$)."""
        return self.tableau.stages


class ImplicitMidpoint(GaussLegendre):
    """The implicit midpoint rule $y_1 = y_0 + h f(t_0 + h/2, (y_0 + y_1)/2)$, order 2: the
    1-stage Gauss–Legendre method (HLW GNI eq. (I.1.7)), so a `GaussLegendre`.

    **Arguments:** `root_finder`, `max_steps`: as for `ImplicitRungeKutta`.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> m = si.ImplicitMidpoint()
    >>> m.order(None), m.stages, isinstance(m, si.GaussLegendre)
    (2, 1, True)

    ```
    """

    def __init__(
        self,
        root_finder: optx.AbstractRootFinder | optx.AbstractFixedPointSolver | None = None,
        max_steps: int = 100,
    ):
        super().__init__(1, root_finder, max_steps)


def _unwrap(term):
    """The user's term inside diffrax's `WrapTerm` (which `diffeqsolve` puts around every
    term, to run backward solves in negated time)."""
    return term.term if isinstance(term, WrapTerm) else term


class HamiltonianTerm(diffrax.AbstractTerm):
    """The term $\\dot q = \\partial H/\\partial p$, $\\dot p = -\\partial H/\\partial q$ of a
    Hamiltonian `hamiltonian(q, p, args) -> scalar` (any, separable or not), on the state
    `y = (q, p)` (pytrees). It works with every diffrax solver and with `GaussLegendre`;
    `GeneralizedLeapfrog` needs it, to take the partial gradients apart.

    **Arguments:**

    - `hamiltonian`: `H(q, p, args) -> scalar` (a function or an equinox module; a pytree
        field, so a learned $H$ is differentiated through).

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> term = si.HamiltonianTerm(lambda q, p, args: 0.5 * (q**2 + p**2))
    >>> dq, dp = term.vf(0.0, (jnp.array(1.0), jnp.array(2.0)), None)
    >>> float(dq), float(dp)  # (dH/dp, -dH/dq)
    (2.0, -1.0)

    ```
    """

    hamiltonian: Callable  # a pytree field: a learned H (an equinox module) is differentiable

    def vf(self, t: ArrayLike, y: tuple[_Y, _Y], args: PyTree) -> tuple[_Y, _Y]:
        """$(\\partial H/\\partial p, -\\partial H/\\partial q)$ at `y = (q, p)`."""
        q, p = y
        dq = jax.grad(self.hamiltonian, argnums=1)(q, p, args)
        dp = jax.grad(self.hamiltonian, argnums=0)(q, p, args)
        return dq, jtu.tree_map(jnp.negative, dp)

    def contr(self, t0: ArrayLike, t1: ArrayLike, **kwargs) -> ArrayLike:
        """The control `t1 - t0` (time)."""
        return t1 - t0  # pyright: ignore[reportOperatorIssue]  (times: numbers or arrays)

    def prod(self, vf: PyTree[ArrayLike], control: ArrayLike) -> PyTree[ArrayLike]:
        """`control * vf`, leaf by leaf."""
        return jtu.tree_map(lambda v: control * v, vf)


class RootFindingSolver(AbstractImplicitSolver):
    """An implicit solver whose step is solved by an optimistix root finder (default
    Newton): the fields and their refusals that `GeneralizedLeapfrog` and the discrete
    gradient methods share."""

    term_structure: ClassVar = diffrax.AbstractTerm
    root_finder: optx.AbstractRootFinder | None = None
    max_steps: int = eqx.field(static=True, default=64)

    def __check_init__(self):
        check_solver_fields(self, (optx.AbstractRootFinder,), "Newton")


class GeneralizedLeapfrog(RootFindingSolver):
    """The Störmer–Verlet method for a non-separable $H(q, p)$ (the generalised leapfrog;
    Hairer, Lubich & Wanner, *Geometric Numerical Integration*, eq. (II.1.26), symplectic by
    Theorem VI.3.4):

    $p_{1/2} = p_0 - \\tfrac h2\\nabla_q H(q_0, p_{1/2})$ (implicit),
    $q_1 = q_0 + \\tfrac h2\\big(\\nabla_p H(q_0, p_{1/2}) + \\nabla_p H(q_1, p_{1/2})\\big)$
    (implicit), $p_1 = p_{1/2} - \\tfrac h2\\nabla_q H(q_1, p_{1/2})$.

    Order 2, symmetric, symplectic for any $H$; explicit (it is `VelocityVerlet`) when $H$ is
    separable. Chosen over Tao's (2016) explicit extended-phase-space method because it needs
    no extra copy of phase space and no coupling constant whose tuning trades accuracy for
    stability, and over Gauss–Legendre when a second-order method is enough: its two implicit
    solves are in half the unknowns ($p$, then $q$) rather than $s$ copies of $(q, p)$.

    Use with `terms = HamiltonianTerm(H)`, `y0 = (q0, p0)`. The two solves use `root_finder`
    (default `optimistix.Newton`, tolerance 1e-13 in float64); a failure is a diffrax
    `RESULTS` failure and an error in `solve_fixed`.

    **Arguments:**

    - `root_finder`: an optimistix root finder for the two implicit solves; default (None)
        `optimistix.Newton` at `rtol = atol = max(1e-13, 100 eps)`.
    - `max_steps`: its iteration limit.

    **Raises:** `TypeError` at construction for a `root_finder` that is not an optimistix
    root finder, `ValueError` for `max_steps < 1`; `ValueError` at the start of a solve unless
    `terms` is a `HamiltonianTerm`.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> H = lambda q, p, args: 0.5 * (1.0 + q**2) * p**2 + 0.5 * q**2  # not separable
    >>> term, y0 = si.HamiltonianTerm(H), (jnp.array(1.0), jnp.array(0.5))
    >>> q1, p1 = si.GeneralizedLeapfrog().one_step(term, 0.0, 0.1, y0)
    >>> bool(abs(H(q1, p1, None) - H(*y0, None)) < 1e-3)  # energy error O(h^2)
    True

    ```
    """

    def order(self, terms: PyTree) -> int:
        return 2

    def init(self, terms: PyTree, t0: ArrayLike, t1: ArrayLike, y0: _Y, args: PyTree) -> None:
        self.check_problem(terms, y0, args, t0)
        return None

    def check_problem(self, terms: PyTree, y0: _Y, args: PyTree, t0: ArrayLike) -> None:
        """A `HamiltonianTerm`, whose partial gradients the method takes apart."""
        if not isinstance(_unwrap(terms), HamiltonianTerm):
            raise ValueError(
                "GeneralizedLeapfrog needs `terms = structjax.integrators.HamiltonianTerm(H)`, "
                f"to take dH/dq and dH/dp apart; got {type(terms).__name__}."
            )

    def step(
        self,
        terms: _Terms,
        t0: ArrayLike,
        t1: ArrayLike,
        y0: _Y,
        args: PyTree,
        solver_state: None,
        made_jump: ArrayLike,
    ) -> _Step:
        ham = _unwrap(terms).hamiltonian  # pyright: ignore[reportAttributeAccessIssue]  (`check_problem`)
        q0, p0 = y0
        dtype = jnp.result_type(*jtu.tree_leaves(y0))
        # The step in real time: the term's control (negative in diffeqsolve's backward
        # solves, which run in negated time through a `WrapTerm`).
        half = 0.5 * jnp.asarray(terms.contr(t0, t1)).astype(dtype)
        dh_dq = jax.grad(ham, argnums=0)
        dh_dp = jax.grad(ham, argnums=1)
        root_finder = self.root_finder
        if root_finder is None:
            root_finder = default_newton(dtype)

        def axpy(x, a, y):
            return jtu.tree_map(lambda u, v: u + a * v, x, y)

        def residual_p(p_half, _):
            return jtu.tree_map(jnp.subtract, axpy(p_half, half, dh_dq(q0, p_half, args)), p0)

        sol_p = optx.root_find(residual_p, root_finder, p0, throw=False, max_steps=self.max_steps)
        p_half = sol_p.value
        v0 = dh_dp(q0, p_half, args)

        def residual_q(q1, _):
            target = axpy(axpy(q0, half, v0), half, dh_dp(q1, p_half, args))
            return jtu.tree_map(jnp.subtract, q1, target)

        guess = axpy(q0, 2 * half, v0)
        sol_q = optx.root_find(residual_q, root_finder, guess, throw=False,
                               max_steps=self.max_steps)  # fmt: skip
        q1 = sol_q.value
        p1 = axpy(p_half, -half, dh_dq(q1, p_half, args))
        y1 = (q1, p1)
        result = diffrax.RESULTS.where(
            sol_p.result == optx.RESULTS.successful,
            diffrax.RESULTS.promote(sol_q.result),
            diffrax.RESULTS.promote(sol_p.result),
        )
        return hermite_step(self, terms, t0, t1, y0, y1, args, None, result)
