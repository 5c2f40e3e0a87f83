"""ONE explicit splitting solver, driven by a `SplittingTableau`."""

from collections.abc import Callable
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from equinox import AbstractClassVar
from jax.typing import ArrayLike
from jaxtyping import Real

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
    """
    if not tableau.rkn:
        return
    try:
        transpose = jax.linear_transpose(lambda p_: term_q.vf(t0, p_, args), p)
        jax.eval_shape(transpose, p)
    except Exception as e:  # any failure to transpose means "not linear in p"
        raise ValueError(
            f"`{name}` is a Runge–Kutta–Nyström method: its order {tableau.order} needs "
            "dq/dt linear in p (a quadratic kinetic energy T(p) = p·M⁻¹p/2), but `term_q` "
            "is not linear in p. Use a method for general separable H instead (for example "
            "`McAte42`, `BlanesMoan4General`, `BlanesMoan6General` or `KahanLi8`)."
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


def _add(x, term, vf, scale):
    """`x + term.prod(vf, scale)`, in the dtype of `x`."""
    dx = term.prod(vf, scale)
    return jtu.tree_map(lambda a, b: a + b.astype(a.dtype), x, dx)


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
    x = -damping * tau
    p = jtu.tree_map(lambda a: (jnp.exp(x) * a).astype(a.dtype), p)
    return _add(p, term_p, f, tau * _exprel(x))


def _apply(plan: _Plan, terms, t0, h, y, args, force0, damping=None):
    """Apply the factors of one step of length `h` from `t0`. `force0` is the carried force
    at `q` (FSAL) or None; `damping` the $\\gamma$ of a conformal splitting, or None.
    Returns the new state and the last force evaluation."""
    term_q, term_p = terms
    q, p = y
    cq, cp = _control(term_q, t0, h), _control(term_p, t0, h)
    ctype = jnp.result_type(cq)

    def factor(kind, c, tau, q, p, f):
        if kind == "drift":
            v = term_q.vf(t0 + tau * h, p, args)
            return _add(q, term_q, v, c * cq), p, f
        f = term_p.vf(t0 + tau * h, q, args)
        return q, _kick(p, term_p, f, c * cp, damping), f

    f = force0
    first_kind = plan.kinds[0]
    if first_kind == "kick" and f is not None:
        p = _kick(p, term_p, f, plan.coeffs[0] * cp, damping)
    else:
        q, p, f = factor(first_kind, plan.coeffs[0], plan.clocks[0], q, p, f)
    if f is None:
        f = jtu.tree_map(jnp.zeros_like, p)

    start, stop = plan.scan_pairs
    n = len(plan.kinds)
    for i in range(1, min(start, n)):
        q, p, f = factor(plan.kinds[i], plan.coeffs[i], plan.clocks[i], q, p, f)
    if stop > start:
        pair = plan.kinds[start : start + 2]
        xs = tuple(
            jnp.asarray(np.asarray(arr[start + j : stop : 2]), dtype=ctype)
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


class AbstractSplitting(diffrax.AbstractSolver):
    """An explicit splitting (composition) method for a separable Hamiltonian system.

    Use with `terms=(term_q, term_p)` and `y0=(q, p)` (see
    `structjax.integrators.separable_terms`). The one-step map is a product of exact
    shears, hence symplectic for any coefficients; its order comes from `tableau`. When the
    method begins and ends with a kick the last force evaluation of a step is carried to the
    next (FSAL), so a step costs one force evaluation per kick after the first.

    Fixed steps only (`diffrax.ConstantStepSize` or `diffrax.StepTo`): a splitting method
    has no embedded error estimate, and changing the step breaks its symplecticity.
    Dense output is the cubic Hermite interpolant (order 3).
    """

    term_structure: ClassVar = (diffrax.AbstractTerm, diffrax.AbstractTerm)
    interpolation_cls: ClassVar[Callable[..., diffrax.AbstractLocalInterpolation]] = (
        diffrax.ThirdOrderHermitePolynomialInterpolation
    )
    tableau: AbstractClassVar[SplittingTableau]
    stage_loop: str = eqx.field(static=True, default="auto")  # "auto", "scan" or "unroll"

    def __check_init__(self):
        if self.stage_loop not in ("auto", "scan", "unroll"):
            raise ValueError(
                f"`stage_loop` must be 'auto', 'scan' or 'unroll', got {self.stage_loop!r}."
            )

    def order(self, terms) -> int:
        return self.tableau.order

    def error_order(self, terms):
        return None

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

    def init(self, terms, t0, t1, y0, args):
        _check_terms(terms, y0)
        _check_rkn(self.tableau, type(self).__name__, terms[0], y0[1], args, t0)
        if not self.tableau.fsal:
            return None
        return terms[1].vf(t0, y0[0], args)

    @property
    def _damping(self):
        """The damping $\\gamma$ of a conformal splitting; None for a Hamiltonian one."""
        return None

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        force0 = solver_state
        if force0 is not None:
            force0 = jax.lax.cond(made_jump, lambda: terms[1].vf(t0, y0[0], args), lambda: force0)
        plan = self._plan
        y1, force1 = _apply(plan, terms, t0, t1 - t0, y0, args, force0, self._damping)
        # The last force evaluation is F(q1) only if the word ends with a kick.
        force1 = force1 if plan.kinds[-1] == "kick" else None
        h = t1 - t0
        k0 = jtu.tree_map(lambda v: h * v, self.func(terms, t0, y0, args, force0))
        k1 = jtu.tree_map(lambda v: h * v, self.func(terms, t1, y1, args, force1))
        dense_info = dict(y0=y0, y1=y1, k0=k0, k1=k1)
        state = force1 if self.tableau.fsal else None
        return y1, None, dense_info, state, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args, force=None):
        q, p = y0
        dq = terms[0].vf(t0, p, args)
        dp = terms[1].vf(t0, q, args) if force is None else force
        if self._damping is not None:
            dp = jtu.tree_map(lambda a, b: a - (self._damping * b).astype(a.dtype), dp, p)
        return dq, dp

    def one_step(self, terms, t0, h, y0, args=None, force0=None):
        """One step `(q, p) -> (q', p')` as a pure function (for certificates and layers)."""
        if force0 is None and self.tableau.fsal:
            force0 = terms[1].vf(t0, y0[0], args)
        return _apply(self._plan, terms, t0, h, y0, args, force0, self._damping)[0]


class ExplicitSplitting(AbstractSplitting):
    """The generic splitting solver for any `SplittingTableau` of your own.

    **Arguments:**

    - `tableau`: the method's coefficients (`structjax.integrators.SplittingTableau`).
    - `stage_loop`: `"unroll"` writes the stages out in the step, `"scan"` runs them as a
        `lax.scan` over the coefficient array, `"auto"` (default) scans words longer than a
        few factors, which is faster and compiles in constant time.
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
    on $[B, [B, [B, A]]] = 0$, which the damping breaks, so it is declared order 2 (1 if not
    symmetric); use the `...General` methods for high order.

    Build it with `conformal(method, damping)`. `damping` is an array leaf: gradients flow to
    it (with `adjoint="autodiff"`; the reversible adjoint refuses a damped method, whose
    inverse steps amplify rounding by $e^{\\gamma h}$ per step).
    """

    tableau: SplittingTableau = eqx.field(static=True)
    damping: Real[ArrayLike, ""]

    def __init__(self, tableau: SplittingTableau, damping, stage_loop: str = "auto"):
        if not isinstance(tableau, SplittingTableau):
            raise TypeError(
                f"`ConformalSplitting(tableau, damping)` needs a `SplittingTableau`, got "
                f"{type(tableau)}."
            )
        if not isinstance(damping, jax.core.Tracer) and not float(damping) >= 0:
            raise ValueError(f"`damping` must be >= 0 (a friction), got {damping}.")
        self.tableau = tableau
        self.damping = jnp.asarray(damping)
        self.stage_loop = stage_loop

    @property
    def _damping(self):
        return self.damping

    def order(self, terms) -> int:
        if not self.tableau.rkn:
            return self.tableau.order
        return 2 if self.tableau.symmetric else 1


def conformal(method: AbstractSplitting, damping) -> ConformalSplitting:
    """The conformal-symplectic version of an explicit splitting `method` (any of
    `structjax.integrators`' named methods, a `Composition` or an `ExplicitSplitting`) for
    damping $\\gamma \\ge 0$: see `ConformalSplitting`."""
    if not isinstance(method, AbstractSplitting):
        raise TypeError(
            f"`conformal(method, damping)` needs a structjax splitting method, got "
            f"{type(method).__name__}."
        )
    if isinstance(method, ConformalSplitting):
        raise TypeError("`conformal` got a method that is already conformal.")
    return ConformalSplitting(method.tableau, damping, method.stage_loop)
