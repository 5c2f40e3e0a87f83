"""ONE explicit splitting solver, driven by a `SplittingTableau`."""

import dataclasses
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from equinox import AbstractClassVar
from jax.typing import ArrayLike
from jaxtyping import Array, Bool, PyTree, Real

from .._guards import hyperparameter
from ._base import AbstractStructuredSolver, RealScalarLike
from ._tableau import SplittingTableau

# Words of up to this many factors are unrolled in the step; longer ones run their
# (kick, drift) pairs as a `lax.scan` over the coefficients. Measured in the stage-loop study
# of `python -m benchmarks integrators` (2-core CPU, float64): KahanLi8 costs 21 ns per
# stage scanned against 40 unrolled on Kepler, 71 against 124 on a 64-particle FPU chain,
# and the scanned step compiles in constant time (0.12 s against 0.35 s; SofSpa10 0.13
# against 0.61 s).
_UNROLL_MAX_OPS = 6


def _check_terms(terms, y):
    if not (isinstance(terms, tuple | list) and len(terms) == 2):
        raise ValueError(
            "A splitting method takes `terms=(term_q, term_p)`, a pair of diffrax terms "
            f"(see `structjax.integrators.separable_terms`), got {type(terms).__name__}: "
            f"{terms!r:.200}."
        )
    if not all(isinstance(t, diffrax.AbstractTerm) for t in terms):
        raise ValueError(
            "`terms` must be a pair of `diffrax.AbstractTerm`s, got "
            f"({type(terms[0]).__name__}, {type(terms[1]).__name__})."
        )
    if not (isinstance(y, tuple | list) and len(y) == 2):
        raise ValueError(f"A splitting method takes the state `y0=(q, p)`, got {type(y).__name__}.")
    q, p = y
    sq, sp = jtu.tree_structure(q), jtu.tree_structure(p)
    shapes_q = [jnp.shape(x) for x in jtu.tree_leaves(q)]
    shapes_p = [jnp.shape(x) for x in jtu.tree_leaves(p)]
    if sq != sp or shapes_q != shapes_p:
        raise ValueError(
            "`q` and `p` must be pytrees of the same structure and shapes, got "
            f"q: {sq} {shapes_q} and p: {sp} {shapes_p}."
        )


def _check_rkn(tableau: SplittingTableau, name: str, term_q, p, args, t0):
    """Trace-time check that dq/dt is linear in p (T quadratic), which RKN methods need.

    `jax.linear_transpose` accepts exactly the functions that are linear in their input,
    so it certifies linearity from the traced program itself (`eval_shape`: nothing runs).
    The vector field need not be shaped like `p` (diffrax asks only that
    `term_q.prod(vf, control)` is): the transpose takes cotangents shaped like its output.
    """
    if not tableau.rkn:
        return
    try:
        vf = lambda p_: term_q.vf(t0, p_, args)  # noqa: E731
        transpose = jax.linear_transpose(vf, p)
        jax.eval_shape(transpose, jax.eval_shape(vf, p))
    except Exception as e:  # any failure to transpose means "not linear in p"
        raise ValueError(
            f"`{name}` is a Runge–Kutta–Nyström method: its order {tableau.order} needs "
            "dq/dt linear in p (a quadratic kinetic energy T(p) = p·M⁻¹p/2), but `term_q` "
            "is not linear in p. Use a method for general separable H instead (for example "
            "`McAte42`, `BlanesMoan4General`, `BlanesMoan6General` or `KahanLi8`), or "
            f"`conformal({name}(), 0.0)`, which declares the table's general order "
            f"{tableau.general_order}."
        ) from e


class _Plan(eqx.Module):
    """Static schedule of one step: the first factor, the scanned pairs, the rest."""

    kinds: tuple[str, ...] = eqx.field(static=True)
    coeffs: tuple[float, ...] = eqx.field(static=True)
    clocks: tuple[float, ...] = eqx.field(static=True)  # drift-time at each factor
    scan_pairs: tuple[int, int] = eqx.field(static=True)  # [start, stop) of scanned factors


def _make_plan(tableau: SplittingTableau, stage_loop: str) -> _Plan:
    kinds = tuple(k for k, _ in tableau.ops)
    clocks, tau = [], 0.0
    for kind, c in tableau.ops:
        # A kick acts at the drift-time reached so far; a drift at its own midpoint.
        clocks.append(tau + c / 2 if kind == "drift" else tau)
        tau += c if kind == "drift" else 0.0
    return _plan_from(kinds, tableau.coeffs, tuple(clocks), stage_loop)


def _plan_from(kinds, coeffs, clocks, stage_loop: str) -> _Plan:
    n = len(kinds)
    scan = stage_loop == "scan" or (stage_loop == "auto" and n > _UNROLL_MAX_OPS)
    # The scanned pairs are (kick, drift): each kick evaluates its force inside the body, so
    # no force is carried from one iteration to the next. (Carrying an autodiff force through
    # the loop made XLA:CPU run the stage loop 5x slower on a 64-particle chain.) The first
    # factor (which may reuse the FSAL force) and any drift after it are peeled off, as is
    # the final kick whose force is carried to the next step.
    start = 1 if kinds[min(1, n - 1)] == "kick" else 2
    npairs = max(0, (n - start) // 2) if scan else 0
    return _Plan(kinds, coeffs, clocks, (start, start + 2 * npairs))


def _control(term, t0, h):
    # An ODE term's control over [t0, t0 + h] is h itself: `contr(t0, t0 + h)` would give
    # (t0 + h) - t0, which rounds h the same way on every step and makes time drift.
    return h if isinstance(term, diffrax.ODETerm) else term.contr(t0, t0 + h)


def _time_dtype(h):
    dtype = jnp.result_type(h)
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.result_type(float)


def _scale(control, c):
    """`c * control` for any control: a number, an array or a pytree of them (diffrax lets a
    term's control be any pytree its `prod` understands). A traced coefficient `c` (from the
    stage scan) is cast to each leaf's dtype, as strict dtype promotion needs."""
    if not hasattr(c, "astype"):
        return jtu.tree_map(lambda x: c * x, control)
    return jtu.tree_map(lambda x: c.astype(jnp.result_type(x)) * x, control)


def _like(x, dx, name: str = "the state"):
    """The increment `dx` (from `term.prod`) in the dtype of `x`, leaf by leaf; a complex
    increment of a real state is refused (casting it would drop its imaginary part)."""

    def cast(a, b):
        if jnp.iscomplexobj(b) and not jnp.iscomplexobj(a):
            raise TypeError(
                f"A splitting step got a complex increment for real {name} (dtype "
                f"{jnp.result_type(a)}): make the state complex, e.g. "
                "`y0 = (q.astype(complex), p.astype(complex))`."
            )
        return b.astype(jnp.result_type(a))

    return jtu.tree_map(cast, x, dx)


def _add(x, term, vf, scale):
    """`x + term.prod(vf, scale)`, in the dtype of `x`."""
    return jtu.tree_map(jnp.add, x, _like(x, term.prod(vf, scale)))


def _time_control(control, name: str = "conformal(method, damping)"):
    """A damped kick uses the control of `term_p` as its time: it must be one number."""
    leaves, tree = jtu.tree_flatten(control)
    if not (tree == jtu.tree_structure(0) and jnp.shape(leaves[0]) == ()):
        raise TypeError(
            f"`{name}` needs `term_p` with a scalar control (a time increment, as for "
            f"`diffrax.ODETerm`): the damping acts over it. Got a control {tree} with shapes "
            f"{[jnp.shape(x) for x in leaves]}."
        )
    return jnp.asarray(leaves[0])


def _exprel(x):
    """$(e^x - 1)/x$, accurate near 0 (where it is $1 + x/2 + x^2/6$)."""
    small = jnp.abs(x) < 1e-4
    safe = jnp.where(small, jnp.ones_like(x), x)
    return jnp.where(small, 1 + x / 2 + x**2 / 6, jnp.expm1(safe) / safe)


def _kick(p, term_p, f, tau, damping):
    """The exact flow for time `tau` of $\\dot p = F$ (F frozen), or with `damping`
    $\\gamma$ of $\\dot p = F - \\gamma p$: $p \\mapsto e^{-\\gamma\\tau} p +
    \\tau\\,\\mathrm{exprel}(-\\gamma\\tau) F$, which is
    $D_{\\tau/2} \\circ K_{2\\sinh(\\gamma\\tau/2)/\\gamma} \\circ D_{\\tau/2}$, the
    kick composed with the exact damping flow $D$ (McLachlan & Perlmutter 2001)."""
    if damping is None:
        return _add(p, term_p, f, tau)
    tau = _time_control(tau)
    x = -damping.astype(tau.dtype) * tau
    decay = jnp.exp(x)
    p = jtu.tree_map(lambda a: a * decay.astype(jnp.result_type(a)), p)
    return _add(p, term_p, f, tau * _exprel(x))


def _apply(plan: _Plan, terms, t0, h, y, args, force0, damping=None, controls=None):
    """Apply the factors of one step of length `h` from `t0`. `force0` is the carried force
    at `q` (FSAL) or None; `damping` the $\\gamma$ of a conformal splitting, or None;
    `controls` the pair `(term_q.contr(t0, t1), term_p.contr(t0, t1))` if already known.
    Every increment is `term.prod(term.vf(...), c * control)`, as in diffrax's own solvers,
    so the sign of a reversed-time control, pytree controls and vector fields shaped unlike
    the state all go through. Returns the new state and the last force evaluation (None if
    the word has no kick after its start)."""
    term_q, term_p = terms
    q, p = y
    if controls is None:
        controls = (_control(term_q, t0, h), _control(term_p, t0, h))
    cq, cp = controls
    if damping is not None:
        _time_control(cp)  # at trace time: a clear error for a non-scalar control
    tdtype = _time_dtype(h)

    def factor(kind, c, tau, q, p, f):
        if kind == "drift":
            v = term_q.vf(t0 + tau * h, p, args)
            return _add(q, term_q, v, _scale(cq, c)), p, f
        f = term_p.vf(t0 + tau * h, q, args)
        return q, _kick(p, term_p, f, _scale(cp, c), damping), f

    f = force0
    first_kind = plan.kinds[0]
    if first_kind == "kick" and f is not None:
        p = _kick(p, term_p, f, _scale(cp, plan.coeffs[0]), damping)
    else:
        q, p, f = factor(first_kind, plan.coeffs[0], plan.clocks[0], q, p, f)

    start, stop = plan.scan_pairs
    n = len(plan.kinds)
    for i in range(1, min(start, n)):
        q, p, f = factor(plan.kinds[i], plan.coeffs[i], plan.clocks[i], q, p, f)
    if stop > start:
        pair = plan.kinds[start : start + 2]
        xs = tuple(
            jnp.asarray(np.asarray(arr[start + j : stop : 2]), dtype=tdtype)
            for arr in (plan.coeffs, plan.clocks)
            for j in (0, 1)
        )

        def body(carry, x):
            q, p = carry
            c0, c1, tau0, tau1 = x
            q, p, _ = factor(pair[0], c0, tau0, q, p, None)
            q, p, _ = factor(pair[1], c1, tau1, q, p, None)
            return (q, p), None

        (q, p), _ = jax.lax.scan(body, (q, p), xs)
    for i in range(max(stop, min(start, n)), n):
        q, p, f = factor(plan.kinds[i], plan.coeffs[i], plan.clocks[i], q, p, f)
    return (q, p), f


class AbstractSplitting(AbstractStructuredSolver):
    """An explicit splitting (composition) method for a separable Hamiltonian system.

    Use with `terms=(term_q, term_p)` and `y0=(q, p)` (see
    `structjax.integrators.separable_terms`). The one-step map is a product of exact
    shears, hence symplectic for any coefficients; its order comes from `tableau`. When the
    method begins and ends with a kick the last force evaluation of a step is carried to the
    next (FSAL), so a step costs one force evaluation per kick after the first.

    Fixed steps only (`diffrax.ConstantStepSize` or `diffrax.StepTo`): a splitting method
    has no embedded error estimate, and changing the step breaks its symplecticity.
    Dense output is the cubic Hermite interpolant (order 3) whose slopes are the increments
    `term.prod(term.vf(t, y, args), term.contr(t0, t1))`, as in diffrax's own solvers: it
    holds in reverse time (t1 < t0), for pytree controls, for complex states and for vector
    fields that are only `prod`-compatible with the state.

    Reference: Hairer, Lubich & Wanner, *Geometric Numerical Integration* (2006), Sec. II.5
    (compositions) and Theorem VI.3.3 (symplecticity of the factors).

    **Arguments:** (of every concrete splitting, e.g. `VelocityVerlet(stage_loop="scan")`)

    - `stage_loop`: `"unroll"` writes the stages out in the step, `"scan"` runs them as a
        `lax.scan` over the coefficient array, `"auto"` (default) scans words longer than a
        few factors.

    **Raises:** `ValueError` at construction for another `stage_loop`; at trace time, for
    terms that are not a pair matching `y0 = (q, p)` or an RKN table on a non-quadratic $T$.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> terms = si.separable_terms(lambda p, a: 0.5 * jnp.sum(p**2),
    ...                            lambda q, a: 0.5 * jnp.sum(q**2))
    >>> solver = si.VelocityVerlet()
    >>> isinstance(solver, si.AbstractSplitting), solver.order(terms)
    (True, 2)
    >>> q1, p1 = solver.one_step(terms, 0.0, 0.1, (jnp.array([1.0]), jnp.array([0.0])))
    >>> print(bool(jnp.abs(0.5 * (q1**2 + p1**2) - 0.5)[0] < 1e-4))  # energy kept to O(h^3)
    True

    ```
    """

    term_structure: ClassVar = (diffrax.AbstractTerm, diffrax.AbstractTerm)
    steps_can_fail: ClassVar[bool] = False  # an explicit step cannot fail
    tableau: AbstractClassVar[SplittingTableau]
    stage_loop: str = eqx.field(static=True, default="auto")  # "auto", "scan" or "unroll"

    def __check_init__(self):
        if self.stage_loop not in ("auto", "scan", "unroll"):
            raise ValueError(
                f"`stage_loop` must be 'auto', 'scan' or 'unroll', got {self.stage_loop!r}."
            )

    def order(self, terms: PyTree) -> int:
        return self.tableau.order

    @property
    def _plan(self) -> _Plan:
        return _make_plan(self.tableau, self.stage_loop)

    @property
    def _inner_plan(self) -> _Plan:
        """For an FSAL word K(b0) ... K(bs): the factors between its first and last kick.
        Stepping with these and one merged kick K(bs + b0) per step needs no force carried
        across steps (see `solve_fixed`)."""
        plan = self._plan
        return _plan_from(plan.kinds[1:-1], plan.coeffs[1:-1], plan.clocks[1:-1], self.stage_loop)

    @property
    def _inverse_plan(self) -> _Plan:
        # The inverse of a step of length h from t0 is the adjoint word stepped from t0 + h
        # with length -h: every shear undone in reverse order, at the same times.
        return _make_plan(self.tableau.adjoint(), self.stage_loop)

    def check_problem(self, terms: PyTree, y0: PyTree, args: PyTree, t0: RealScalarLike) -> None:
        """The pair of terms and the state `(q, p)` a splitting takes; for an RKN table,
        dq/dt linear in p."""
        _check_terms(terms, y0)
        _check_rkn(self.tableau, type(self).__name__, terms[0], y0[1], args, t0)

    def init(
        self, terms: PyTree, t0: RealScalarLike, t1: RealScalarLike, y0: PyTree, args: PyTree
    ) -> PyTree:
        self.check_problem(terms, y0, args, t0)
        if not self.tableau.fsal:
            return None
        return terms[1].vf(t0, y0[0], args)

    @property
    def _damping(self):
        """The damping $\\gamma$ of a conformal splitting; None for a Hamiltonian one."""
        return None

    def step(
        self,
        terms: PyTree,
        t0: RealScalarLike,
        t1: RealScalarLike,
        y0: PyTree,
        args: PyTree,
        solver_state: PyTree,
        made_jump: ArrayLike,
    ) -> tuple[PyTree, None, dict[str, PyTree], PyTree, diffrax.RESULTS]:
        force0 = solver_state
        if force0 is not None:
            force0 = jax.lax.cond(made_jump, lambda: terms[1].vf(t0, y0[0], args), lambda: force0)
        plan = self._plan
        # The controls of the whole step, as diffrax's own solvers take them: under
        # `diffeqsolve` with t1 < t0 they carry the sign of time.
        controls = (terms[0].contr(t0, t1), terms[1].contr(t0, t1))
        y1, force1 = _apply(
            plan, terms, t0, t1 - t0, y0, args, force0, self._damping, controls=controls
        )
        # The last force evaluation is F(q1) only if the word ends with a kick.
        force1 = force1 if plan.kinds[-1] == "kick" else None
        # The Hermite slopes are the increments over the step, `prod(vf, control)`.
        k0 = self._increments(terms, t0, y0, args, force0, controls)
        k1 = self._increments(terms, t1, y1, args, force1, controls)
        dense_info = dict(y0=y0, y1=y1, k0=k0, k1=k1)
        state = force1 if self.tableau.fsal else None
        return y1, None, dense_info, state, diffrax.RESULTS.successful

    def _increments(self, terms, t, y, args, force, controls):
        """$(\\dot q, \\dot p)\\,\\Delta t$ at `(t, y)` in the terms' own product: each
        `term.prod(term.vf(t, ., args), control)`, with $-\\gamma p\\,\\Delta t$ added for a
        damped method (its control is a time increment, see `_time_control`)."""
        (term_q, term_p), (q, p), (cq, cp) = terms, y, controls
        dq = _like(q, term_q.prod(term_q.vf(t, p, args), cq))
        f = term_p.vf(t, q, args) if force is None else force
        dp = _like(p, term_p.prod(f, cp))
        if self._damping is not None:
            c = _time_control(cp)
            g = self._damping.astype(c.dtype) * c
            dp = jtu.tree_map(lambda d, a: d - g.astype(jnp.result_type(a)) * a, dp, p)
        return dq, dp

    def func(
        self, terms: PyTree, t0: RealScalarLike, y0: PyTree, args: PyTree, force: PyTree = None
    ) -> PyTree:
        q, p = y0
        dq = terms[0].vf(t0, p, args)
        dp = terms[1].vf(t0, q, args) if force is None else force
        damping = self._damping
        if damping is not None:
            if jtu.tree_structure(dp) != jtu.tree_structure(p) or any(
                jnp.shape(a) != jnp.shape(b)
                for a, b in zip(jtu.tree_leaves(dp), jtu.tree_leaves(p))
            ):
                raise ValueError(
                    "The vector field of a conformal method is F(q) - damping * p: it needs "
                    "`term_p`'s vector field shaped like `p`, got "
                    f"{jtu.tree_structure(dp)} for p: {jtu.tree_structure(p)}."
                )
            dp = jtu.tree_map(lambda a, b: a - damping.astype(jnp.result_type(a)) * b, dp, p)
        return dq, dp

    def one_step(
        self,
        terms: PyTree,
        t0: RealScalarLike,
        h: RealScalarLike,
        y0: PyTree,
        args: PyTree = None,
        force0: PyTree = None,
    ) -> PyTree:
        """One step `(q, p) -> (q', p')` as a pure function (for certificates and layers)."""
        if force0 is None and self.tableau.fsal:
            force0 = terms[1].vf(t0, y0[0], args)
        return _apply(self._plan, terms, t0, h, y0, args, force0, self._damping)[0]

    def fixed_step(
        self,
        terms: PyTree,
        t: RealScalarLike,
        dt: RealScalarLike,
        y: PyTree,
        args: PyTree,
        state: PyTree,
    ) -> tuple[PyTree, PyTree, Bool[Array, ""] | None]:
        """One step without dense output; the carried force is the FSAL one."""
        y1, f1 = _apply(self._plan, terms, t, dt, y, args, state, self._damping)
        return y1, (f1 if self.tableau.fsal else None), None

    def fused_fixed_loop(
        self,
        terms: PyTree,
        y0: PyTree,
        args: PyTree,
        t0: RealScalarLike,
        dt: RealScalarLike,
        num_steps: int,
        chunk: int,
    ) -> PyTree | None:
        """For a word K(b0) ... K(bs) that starts and ends with a kick, the last kick of
        each step merged into the first of the next (the leapfrog form). A damped kick does
        not merge with the next one: a conformal method declines (steps plainly)."""
        if not self.tableau.fsal or self._damping is not None:
            return None
        return _merged_loop(self, terms, y0, args, t0, dt, num_steps, chunk)

    def check_reversible(self, call: str) -> None:
        """A splitting's step inverts exactly: the adjoint word, stepped backwards."""

    def inverse_step(
        self, terms: PyTree, t: RealScalarLike, dt: RealScalarLike, y1: PyTree, args: PyTree = None
    ) -> PyTree:
        """The step `one_step(terms, t, dt, ., args)` undone exactly: the adjoint word run
        from `t + dt` with step `-dt`, every shear reversed in reverse order."""
        return _apply(self._inverse_plan, terms, t + dt, -dt, y1, args, None)[0]


def _merged_loop(solver, terms, y0, args, t0, dt, num_steps: int, chunk: int):
    """The fixed-step loop of an FSAL splitting K(b0) W K(bs), with the last kick of each
    step merged into the first of the next: the loop carries (q, p + b0 h F(q)) and no force,
    and synchronises p only where a state is returned. The same map and the same force
    evaluations as stepping one at a time (the kicks commute: they act at the same q)."""
    _, term_p = terms
    inner = solver._inner_plan
    plan = solver._plan
    b0, bs, tau_end = plan.coeffs[0], plan.coeffs[-1], plan.clocks[-1]
    cp = _control(term_p, t0, dt)
    q0, p0 = y0

    def inner_step(q, p, n):
        t = t0 + n.astype(dt.dtype) * dt
        (q, p), _ = _apply(inner, terms, t, dt, (q, p), args, None)
        return q, p, term_p.vf(t + tau_end * dt, q, args)

    def one(carry, _):
        q, p, n = carry
        q, p, f = inner_step(q, p, n)
        return (q, _add(p, term_p, f, (bs + b0) * cp), n + 1), None

    def block(carry, _):
        carry, _ = jax.lax.scan(one, carry, None, length=chunk - 1)
        q, p, f = inner_step(*carry)
        p_sync = _add(p, term_p, f, bs * cp)
        return (q, _add(p_sync, term_p, f, b0 * cp), carry[2] + 1), (q, p_sync)

    start = (q0, _add(p0, term_p, term_p.vf(t0, q0, args), b0 * cp), jnp.zeros((), jnp.int32))
    _, ys = jax.lax.scan(block, start, None, length=num_steps // chunk)
    return ys


class ExplicitSplitting(AbstractSplitting):
    """The generic splitting solver for any `SplittingTableau` of your own.

    **Arguments:**

    - `tableau`: the method's coefficients (`structjax.integrators.SplittingTableau`).
    - `stage_loop`: `"unroll"` writes the stages out in the step, `"scan"` runs them as a
        `lax.scan` over the coefficient array, `"auto"` (default) scans words longer than a
        few factors, which is faster and compiles in constant time.

    **Raises:** `TypeError` unless `tableau` is a `SplittingTableau`; `ValueError` for another
    `stage_loop`.

    **Example:** the tableau of a named method gives the same solver.

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> terms = si.separable_terms(lambda p, a: 0.5 * jnp.sum(p**2),
    ...                            lambda q, a: 0.5 * jnp.sum(q**2))
    >>> mine = si.ExplicitSplitting(si.McAte4.tableau)
    >>> y0 = (jnp.array([1.0]), jnp.array([0.0]))
    >>> a = mine.one_step(terms, 0.0, 0.1, y0)
    >>> b = si.McAte4().one_step(terms, 0.0, 0.1, y0)
    >>> print(mine.order(terms), bool(jnp.max(jnp.abs(a[0] - b[0])) < 1e-15))
    4 True

    ```
    """

    tableau: SplittingTableau = eqx.field(static=True)

    def __init__(self, tableau: SplittingTableau, stage_loop: str = "auto"):
        if not isinstance(tableau, SplittingTableau):
            raise TypeError(
                f"`ExplicitSplitting(tableau)` needs a `SplittingTableau`, got {type(tableau)}."
            )
        self.tableau = tableau
        self.stage_loop = stage_loop


class ConformalSplitting(AbstractSplitting):
    """A splitting method for the damped (conformal) Hamiltonian system
    $\\dot q = \\partial T/\\partial p$, $\\dot p = -\\partial V/\\partial q - \\gamma p$,
    built from any explicit splitting: each kick becomes the exact flow of the kick with
    damping, $p \\mapsto e^{-\\gamma\\tau}p + \\tau\\,\\mathrm{exprel}(-\\gamma\\tau)F(q)$,
    itself the kick composed with the exact damping flow (McLachlan & Perlmutter 2001,
    "Conformal Hamiltonian systems"; Bhatt, Floyd & Moore 2016, "Second order conformal
    symplectic schemes for damped Hamiltonian systems"). The same coefficient table, so the
    same cost; the one-step map contracts the symplectic form by exactly $e^{-\\gamma h}$
    (`structjax.check.conformal_symplecticity_error`).

    **Order.** A general splitting table keeps its order: its order conditions hold for any
    two vector fields, here the drift and the damped kick. An RKN table (`tableau.rkn`) relies
    on $[B, [B, [B, A]]] = 0$, which the damping breaks: it keeps its order for general
    separable $H$, `tableau.general_order` (McAte4, CalvoSanz4 and McAte5: 3, BlanesMoan6: 4,
    all measured), and `tableau` here is that general splitting (so no RKN guard applies).
    Use the `...General` methods for high order.

    **Dense output and reverse time.** As for every splitting, the Hermite slopes are the
    increments `term.prod(term.vf(...), control)`, the damping's $-\\gamma p\\,\\Delta t$ taken
    over `term_p`'s control, which must therefore be a scalar time increment.

    Build it with `conformal(method, damping)`. `damping` is an array leaf: gradients flow to
    it (with `adjoint="autodiff"`; the reversible adjoint refuses a damped method, whose
    inverse steps amplify rounding by $e^{\\gamma h}$ per step).

    **Arguments:**

    - `tableau`: the coefficients of the undamped splitting (its general table).
    - `damping`: $\\gamma$, a real scalar (an array leaf, differentiable).
    - `stage_loop`: as for every splitting (`"auto"`, `"scan"` or `"unroll"`).

    **Raises:** `ValueError` for a non-scalar or non-real `damping` (and, inside `jit`, a
    runtime error for a non-finite one); `ValueError` when `term_p`'s control is not a scalar.

    **Example:** the one-step map contracts the symplectic form by $e^{-\\gamma h}$.

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.integrators as si, structjax.check as sc
    >>> terms = si.separable_terms(lambda p, a: 0.5 * jnp.sum(p**2),
    ...                            lambda q, a: 0.5 * jnp.sum(q**2))
    >>> solver = si.conformal(si.VelocityVerlet(), 0.5)
    >>> step = lambda q, p: solver.one_step(terms, 0.0, 0.1, (q, p))
    >>> err = sc.conformal_symplecticity_error(step, jnp.array([1.0]), jnp.array([0.0]),
    ...                                        jnp.exp(-0.5 * 0.1))
    >>> print(type(solver).__name__, bool(err < 1e-14))
    ConformalSplitting True

    ```
    """

    tableau: SplittingTableau = eqx.field(static=True)
    # equinox allows this order: the class writes its own __init__.
    damping: Real[ArrayLike, ""]  # pyright: ignore[reportGeneralTypeIssues]

    def __init__(self, tableau: SplittingTableau, damping: ArrayLike, stage_loop: str = "auto"):
        if not isinstance(tableau, SplittingTableau):
            raise TypeError(
                f"`ConformalSplitting(tableau, damping)` needs a `SplittingTableau`, got "
                f"{type(tableau)}."
            )
        self.tableau = _conformal_tableau(tableau)
        self.damping = _check_damping(damping)
        self.stage_loop = stage_loop

    @property
    def _damping(self):
        return self.damping

    def check_reversible(self, call: str) -> None:
        raise ValueError(
            f"`{call}` refuses a conformal (damped) method: its inverse steps multiply "
            "rounding errors by e^{damping * dt} each, so the rebuilt trajectory would be "
            "wrong after a long run. Use `adjoint='autodiff'`."
        )


def _conformal_tableau(tableau: SplittingTableau) -> SplittingTableau:
    """The table as the damped system sees it: a general splitting of the table's general
    order (an RKN table's extra order does not survive the damping)."""
    if not tableau.rkn:
        return tableau
    return dataclasses.replace(
        tableau,
        order=tableau.general_order,
        rkn=False,
        general_order=None,
        source=f"{tableau.source} (conformal: its general order {tableau.general_order})",
    )


def _check_damping(damping):
    """The damping as a float array leaf, refused when negative or NaN: at once when
    concrete, at run time (`equinox.error_if`, kept alive because every kick uses the
    returned value) when traced."""
    call = "conformal(method, damping)"
    if isinstance(damping, bool) or not hasattr(jnp.asarray(damping), "dtype"):
        raise TypeError(f"`{call}` needs a real number as damping, got {damping!r}.")
    dtype = jnp.result_type(damping)
    if jnp.issubdtype(dtype, jnp.integer):
        damping = jnp.asarray(damping, dtype=jnp.result_type(float))
    elif not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"`{call}` needs a real number as damping, got dtype {dtype}.")
    if jnp.shape(damping) != ():
        raise ValueError(
            f"`{call}` needs a scalar damping (one friction for the whole system), got "
            f"shape {jnp.shape(damping)}."
        )
    damping = hyperparameter(damping, call, "damping", lambda d: d >= 0, ">= 0 (a friction)")
    return jnp.asarray(damping)


def conformal(method: AbstractSplitting, damping: ArrayLike) -> ConformalSplitting:
    """The conformal-symplectic version of an explicit splitting `method` (any of
    `structjax.integrators`' named methods, a `Composition` or an `ExplicitSplitting`) for
    damping $\\gamma \\ge 0$: see `ConformalSplitting`.

    **Arguments:**

    - `method`: a structjax splitting method (not already conformal).
    - `damping`: $\\gamma \\ge 0$, a scalar: a Python number, an array or a traced value
        (gradients flow to it).

    **Returns:** a `ConformalSplitting` whose `order` is the table's general order (an RKN
    table's `general_order`, e.g. 3 for `McAte4`, 4 for `BlanesMoan6`).

    **Raises:** `TypeError` for a method that is not a structjax splitting or a non-real
    damping; `ValueError` for a negative or NaN damping, at once when it is concrete and
    at run time (an `equinox` runtime error) when it is traced, as inside `jax.jit`.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> print(si.conformal(si.McAte4(), 0.1).order(None))
    3

    ```
    """
    if not isinstance(method, AbstractSplitting):
        raise TypeError(
            f"`conformal(method, damping)` needs a structjax splitting method, got "
            f"{type(method).__name__}."
        )
    if isinstance(method, ConformalSplitting):
        raise TypeError("`conformal` got a method that is already conformal.")
    return ConformalSplitting(method.tableau, damping, method.stage_loop)
