"""The `Problem` interface: a test problem as data, with its terms, invariants and reference."""

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, ArrayLike, PyTree

from ..integrators import LieGroupRK

Invariant = Callable[[Array, PyTree], Array]  # (t, y) -> scalar or array


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    r"""A test problem for integrators: an initial value problem with its structure.

    One object serves every solver: `terms_for(solver)` hands each the terms it takes (the
    partitioned pair `(term_q, term_p)` to a splitting or `diffrax.SemiImplicitEuler`, the
    Lie-algebra term to a Lie-group method, the first-order `ode_term` to diffrax's general
    solvers and the implicit ones), all on the same state `y0`, so the errors of all compare.
    `reference(ts)` is the solution at times `ts`: the closed form where one exists, else a
    high-accuracy solve (diffrax's `Dopri8` at `reference_tol`, float64 when enabled),
    computed once per set of times and cached on the problem.

    A user's own problem is built the same way: give at least `name`, `y0`, `t1` and
    `ode_term`; the rest (the partitioned or Lie terms, the invariants, a closed form) as the
    problem has them.

    **Arguments:**

    - `name`: a short identifier (used in result tables and file names).
    - `y0`: the initial state, a pytree of floating arrays.
    - `t1`: the end time (the start is 0).
    - `ode_term`: a `diffrax` term of the first-order system $\dot y = f(t, y)$ on `y0`'s
        pytree (a `structjax.integrators.HamiltonianTerm` for a Hamiltonian problem).
    - `terms`: the partitioned pair `(term_q, term_p)` for $y = (q, p)$ (e.g. from
        `structjax.integrators.separable_terms`), or `None`.
    - `lie_term`: a `diffrax.ODETerm` whose vector field returns the Lie-algebra element(s)
        $A(t, y)$ of $\dot y = A(t, y)\,y$, for `structjax.integrators.RKMK` and
        `CrouchGrossman`, or `None`.
    - `invariants`: named first integrals, Casimirs or constraints, each `I(t, y)` returning a
        scalar or an array that is constant along the exact solution (time enters for a
        damped system's conformal invariant).
    - `exact`: `exact(t) -> y`, the closed-form solution from `y0` (traceable, so it can be
        `vmap`ped over times), or `None`.
    - `args`: passed to the terms as diffrax's `args`.
    - `hamiltonian`: `H(q, p, args) -> scalar` where the problem has one, else `None`.
    - `constraint`: `g(q, args) -> array`, holonomic constraints for `structjax.integrators.Rattle`,
        or `None`.
    - `damping`: the linear damping $\gamma$ for `structjax.integrators.conformal`, or `None`.
    - `title`, `source`: a line for plots, and the reference for the problem's data.
    - `reference_tol`: `rtol = atol` of the reference solve when there is no closed form.

    **Example:**

    ```pycon
    >>> import diffrax, jax.numpy as jnp
    >>> from structjax.problems import Problem
    >>> decay = Problem(name="decay", y0=jnp.asarray(1.0), t1=1.0,
    ...                 ode_term=diffrax.ODETerm(lambda t, y, args: -y),
    ...                 exact=lambda t: jnp.exp(-t))
    >>> ys = decay.reference(jnp.asarray([0.0, 1.0]))
    >>> print(bool(jnp.abs(ys[1] - jnp.exp(-1.0)) < 1e-15))
    True

    ```
    """

    name: str
    y0: PyTree
    t1: float | int
    ode_term: diffrax.AbstractTerm
    terms: tuple[diffrax.AbstractTerm, diffrax.AbstractTerm] | None = None
    lie_term: diffrax.AbstractTerm | None = None
    invariants: Mapping[str, Invariant] = dataclasses.field(default_factory=dict)
    exact: Callable[[Array], PyTree] | None = None
    args: PyTree = None
    hamiltonian: Callable[[PyTree, PyTree, PyTree], Array] | None = None
    constraint: Callable[[PyTree, PyTree], Array] | None = None
    damping: float | None = None
    title: str = ""
    source: str = ""
    reference_tol: float = 1e-13
    _cache: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"`Problem(name=...)` needs a non-empty string, got {self.name!r}.")
        leaves = jtu.tree_leaves(self.y0)
        if not leaves or not all(jnp.issubdtype(jnp.result_type(x), jnp.inexact) for x in leaves):
            raise TypeError(
                f"`Problem(name={self.name!r}, y0=...)` needs a pytree of floating-point arrays, "
                f"got {jtu.tree_map(lambda x: jnp.result_type(x).name, self.y0)}."
            )
        t1 = float(self.t1)
        if not (np.isfinite(t1) and t1 > 0):
            raise ValueError(
                f"`Problem(name={self.name!r}, t1=...)` needs a finite t1 > 0, got {t1}."
            )
        if not isinstance(self.ode_term, diffrax.AbstractTerm):
            raise TypeError(
                f"`Problem(name={self.name!r}, ode_term=...)` needs a diffrax term (e.g. "
                f"`diffrax.ODETerm(f)`), got {type(self.ode_term).__name__}."
            )
        for key, fn in self.invariants.items():
            if not callable(fn):
                raise TypeError(
                    f"`Problem(name={self.name!r}, invariants=...)`: invariant {key!r} must be a "
                    f"callable I(t, y), got {type(fn).__name__}."
                )

    def terms_for(self, solver: diffrax.AbstractSolver) -> Any:
        """The terms `solver` takes on this problem.

        **Arguments:**

        - `solver`: a diffrax or structjax solver.

        **Returns:** `terms` for a solver whose `term_structure` is a pair (a splitting,
        `Rattle`, `diffrax.SemiImplicitEuler`), `lie_term` for a Lie-group method, else
        `ode_term`.

        **Raises:** `ValueError` when the problem has no terms of the kind the solver needs.

        **Example:**

        ```pycon
        >>> import structjax.integrators as si, structjax.problems as sp
        >>> pb = sp.pendulum()
        >>> pb.terms_for(si.VelocityVerlet()) is pb.terms
        True

        ```
        """
        structure = getattr(solver, "term_structure", None)
        if isinstance(structure, tuple):
            if self.terms is None:
                raise ValueError(
                    f"`{type(solver).__name__}` needs partitioned terms (term_q, term_p), and "
                    f"problem {self.name!r} has none (`Problem(terms=None)`): use a solver of "
                    "the first-order `ode_term`."
                )
            return self.terms
        if isinstance(solver, LieGroupRK):
            if self.lie_term is None:
                raise ValueError(
                    f"`{type(solver).__name__}` is a Lie-group method and problem {self.name!r} "
                    "has no `lie_term` (a vector field of Lie-algebra elements)."
                )
            return self.lie_term
        return self.ode_term

    def sample_times(self, samples: int) -> Array:
        """`samples + 1` equally spaced times from 0 to `t1`, both ends included.

        **Arguments:**

        - `samples`: the number of intervals, an int >= 1.

        **Returns:** a float array of shape `(samples + 1,)`.

        **Raises:** `ValueError` for `samples < 1`.

        **Example:**

        ```pycon
        >>> import structjax.problems as sp
        >>> print(sp.harmonic_oscillator(t1=2.0).sample_times(4).tolist())
        [0.0, 0.5, 1.0, 1.5, 2.0]

        ```
        """
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f"`Problem.sample_times(samples)` needs an int >= 1, got {samples!r}.")
        return jnp.linspace(0.0, self.t1, samples + 1, dtype=_float_dtype(self.y0))

    def reference(self, ts: ArrayLike, y0: PyTree | None = None) -> PyTree:
        """The solution at times `ts` (increasing, from 0): exact where known, else a cached
        high-accuracy solve.

        **Arguments:**

        - `ts`: a 1-d array of increasing times in `[0, t1]`, starting at 0.
        - `y0`: another initial state of the same structure (the exact solution is then not
            used: it belongs to the problem's own `y0`); `None` for the problem's own.

        **Returns:** the states at `ts`, time along the first axis of every leaf.

        **Raises:** `ValueError` for times that are not increasing from 0, or a reference solve
        that fails (diffrax's error).

        **Example:**

        ```pycon
        >>> import jax.numpy as jnp
        >>> import structjax.problems as sp
        >>> pb = sp.kepler(eccentricity=0.5)
        >>> q, p = pb.reference(jnp.asarray([0.0, 2 * jnp.pi]))  # one period
        >>> print(bool(jnp.max(jnp.abs(q[1] - q[0])) < 1e-12))
        True

        ```
        """
        ts = np.asarray(ts, dtype=np.float64)
        if ts.ndim != 1 or ts.size < 1 or ts[0] != 0.0 or np.any(np.diff(ts) <= 0):
            raise ValueError(
                f"`Problem.reference(ts)` for {self.name!r} needs a 1-d array of times increasing "
                f"from 0, got {ts if ts.size < 6 else f'shape {ts.shape}'}."
            )
        own = y0 is None
        y0 = self.y0 if own else y0
        dtype = _float_dtype(y0)
        ts_j = jnp.asarray(ts, dtype=dtype)
        if own and self.exact is not None:
            return jax.vmap(self.exact)(ts_j)
        key = (ts.tobytes(), None if own else _fingerprint(y0))
        if key not in self._cache:
            self._cache[key] = _reference_solve(self, ts_j, y0)
        return self._cache[key]


def _fingerprint(y0: PyTree) -> bytes:
    return (
        b"".join(np.asarray(x).tobytes() for x in jtu.tree_leaves(y0))
        + str(jtu.tree_structure(y0)).encode()
    )


def _float_dtype(y: PyTree):
    return jnp.result_type(*jtu.tree_leaves(y))


def _reference_solve(problem: Problem, ts: Array, y0: PyTree) -> PyTree:
    """Dopri8 (Prince & Dormand 1981, as diffrax implements it) at `reference_tol` on the
    first-order system, saved at `ts`."""
    tol = max(problem.reference_tol, 100 * float(jnp.finfo(_float_dtype(y0)).eps))

    @jax.jit
    def solve(y0):
        sol = diffrax.diffeqsolve(
            problem.ode_term,
            diffrax.Dopri8(),
            0.0,
            ts[-1],
            None,
            y0,
            args=problem.args,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.PIDController(rtol=tol, atol=tol),
            max_steps=10**8,
        )
        return sol.ys

    if ts.shape[0] == 1:
        return jtu.tree_map(lambda x: jnp.asarray(x)[None], y0)
    return solve(y0)
