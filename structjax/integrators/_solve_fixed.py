"""A lean fixed-step driver over diffrax solvers, and a reversible adjoint for splittings."""

import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, ArrayLike, PyTree, Real

from .._guards import guard
from ._splitting import AbstractSplitting, _add, _apply, _check_rkn, _check_terms, _control


class FixedSolution(eqx.Module):
    """The result of `solve_fixed`.

    - `t1`, `y1`: the final time and state.
    - `ts`, `ys`: with `save_every=m`, the times $t_0 + k m\\,dt$ and the states there,
        $k = 0, \\dots, N/m$ (first axis); `None` otherwise.
    """

    t1: Array
    y1: PyTree
    ts: Array | None
    ys: PyTree | None


def _is_tracer(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def _check_step(dt, checks: bool = True):
    """Refuse a non-positive or non-finite step: at once if known, else at run time."""
    if _is_tracer(dt):
        bad, shown = ~(jnp.isfinite(dt) & (dt > 0)), "..."
    else:
        value = float(dt)
        bad, shown, checks = not (math.isfinite(value) and value > 0), repr(value), True
    return guard(
        dt,
        bad,
        f"`solve_fixed(..., dt={shown})` needs a finite step dt > 0 (to integrate backwards "
        "in time, negate the vector field instead).",
        checks=checks,
    )


def _check_start(y0, t0, checks: bool):
    """Refuse a non-finite start time. The check rides on the state (always used), so it
    survives whatever output the caller keeps."""
    if _is_tracer(t0):
        bad, shown = ~jnp.isfinite(t0), "..."
    else:
        value = float(t0)
        bad, shown, checks = not math.isfinite(value), repr(value), True
    return guard(
        y0, bad, f"`solve_fixed(..., t0={shown})` needs a finite start time t0.", checks=checks
    )


def _check_inputs(terms, y0, t0, dt, num_steps, save_every, adjoint, checks):
    """The trace-time refusals of `solve_fixed`: types, dtypes and configuration."""
    leaves = jtu.tree_leaves_with_path(y0)
    if not leaves:
        raise ValueError("`solve_fixed` needs a state `y0` with at least one array, got "
                         f"{y0!r:.100}.")  # fmt: skip
    for path, leaf in leaves:
        try:
            dtype = jnp.result_type(leaf)
        except TypeError:
            dtype = None
        if dtype is None or not jnp.issubdtype(dtype, jnp.inexact):
            found = type(leaf).__name__ if dtype is None else f"dtype {dtype}"
            raise TypeError(
                f"`solve_fixed` needs a floating-point (real or complex) state `y0`, got "
                f"`y0{jtu.keystr(path)}` of {found}: an integer or boolean state would be "
                "stepped in integer arithmetic. Cast it first, e.g. "
                "`jax.tree_util.tree_map(lambda x: jnp.asarray(x, float), y0)`."
            )
    for name, value in (("t0", t0), ("dt", dt)):
        try:
            dtype = jnp.result_type(value)
        except TypeError:
            dtype = None
        if (
            dtype is None
            or jnp.shape(value) != ()
            or not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer))
        ):
            found = type(value).__name__ if dtype is None else f"{dtype}{list(jnp.shape(value))}"
            raise TypeError(
                f"`solve_fixed(..., {name}=...)` needs a real scalar {name}, got {found}."
            )
    if isinstance(num_steps, bool) or not isinstance(num_steps, int):
        raise TypeError(
            f"`solve_fixed(..., num_steps={num_steps!r:.60})` needs a Python int >= 1 (it fixes "
            "the compiled loop; under `jax.jit` mark it static)."
        )
    if num_steps < 1:
        raise ValueError(f"`solve_fixed(..., num_steps={num_steps})` needs num_steps >= 1.")
    if save_every is not None and (
        isinstance(save_every, bool)
        or not isinstance(save_every, int)
        or save_every < 1
        or num_steps % save_every
    ):
        raise ValueError(
            f"`solve_fixed(..., save_every={save_every!r:.60})` needs a positive Python int "
            f"dividing `num_steps={num_steps}`."
        )
    if adjoint not in ("autodiff", "reversible"):
        raise ValueError(
            f"`solve_fixed(..., adjoint={adjoint!r:.60})` needs 'autodiff' or 'reversible'."
        )
    if not isinstance(checks, bool):
        raise TypeError(f"`solve_fixed(..., checks={checks!r:.60})` needs a Python bool.")


def _step_fn(solver, terms, args, y, state, t, dt):
    """One step of any diffrax solver (splittings without their dense-output work), and
    whether it succeeded (`None` for a splitting, whose steps cannot fail)."""
    if isinstance(solver, AbstractSplitting):
        y1, f1 = _apply(solver._plan, terms, t, dt, y, args, state, solver._damping)
        return y1, (f1 if solver.tableau.fsal else None), None
    y1, _, _, state, result = solver.step(terms, t, t + dt, y, args, state, False)
    return y1, state, result == diffrax.RESULTS.successful


def _forward(solver, terms, y0, args, t0, dt, num_steps: int, chunk: int, track: bool):
    """Scan over `num_steps // chunk` chunks of `chunk` steps; the state after each chunk,
    and (with `track`) whether every step succeeded.

    A failed step (an implicit method's stage solve that did not converge) is an error,
    never a silently wrong trajectory: the success flags are reduced in the carry (one
    `and` a step) and checked once, by the caller, on the returned solution."""
    state0 = solver.init(terms, t0, t0 + dt, y0, args)

    # Step indices live in the carry, not in scanned arrays, so memory is flat in steps.
    def one(carry, _):
        y, state, n, ok = carry
        t = t0 + n.astype(dt.dtype) * dt
        y, state, success = _step_fn(solver, terms, args, y, state, t, dt)
        if track:
            ok = ok & success
        return (y, state, n + 1, ok), None

    def block(carry, _):
        carry, _ = jax.lax.scan(one, carry, None, length=chunk)
        return carry, carry[0]

    start = (y0, state0, jnp.zeros((), jnp.int32), jnp.ones((), bool) if track else None)
    end, ys = jax.lax.scan(block, start, None, length=num_steps // chunk)
    return ys, end[3]


def _forward_merged(solver, terms, y0, args, t0, dt, num_steps: int, chunk: int):
    """`_forward` for an FSAL splitting K(b0) W K(bs), with the last kick of each step merged
    into the first of the next: the loop carries (q, p + b0 h F(q)) and no force, and
    synchronises p only where a state is returned. The same map and the same force
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


def _forward_any(solver, terms, y0, args, t0, dt, num_steps: int, chunk: int):
    # (a damped kick does not merge with the next one: conformal methods step plainly)
    if isinstance(solver, AbstractSplitting) and solver.tableau.fsal and solver._damping is None:
        return _forward_merged(solver, terms, y0, args, t0, dt, num_steps, chunk)
    return _forward(solver, terms, y0, args, t0, dt, num_steps, chunk, False)[0]


def _reversible(vjp_arg, solver, num_steps, chunk):
    y0, args, terms, t0, dt = vjp_arg
    return _forward_any(solver, terms, y0, args, t0, dt, num_steps, chunk)


_reversible = eqx.filter_custom_vjp(_reversible)


@_reversible.def_fwd
def _reversible_fwd(perturbed, vjp_arg, solver, num_steps, chunk):
    del perturbed
    ys = _reversible(vjp_arg, solver, num_steps, chunk)
    # Only the final state is kept: the backward pass rebuilds the rest by inverting steps.
    return ys, jtu.tree_map(lambda y: y[-1], ys)


@_reversible.def_bwd
def _reversible_bwd(y_last, ct_ys, perturbed, vjp_arg, solver, num_steps, chunk):
    del perturbed
    y0, args, terms, t0, dt = vjp_arg
    ys_like = jtu.tree_map(lambda y: jnp.zeros((num_steps // chunk,) + y.shape, y.dtype), y0)
    ct_ys = jtu.tree_map(lambda c, z: z if c is None else c, ct_ys, ys_like, is_leaf=_is_none)
    diff, static = eqx.partition((args, terms, t0, dt), eqx.is_inexact_array)
    ct_diff0 = jtu.tree_map(jnp.zeros_like, diff)
    inverse_plan = solver._inverse_plan

    def back(carry, _):
        y, ct_y, ct_diff, n = carry
        n = n - 1
        args_, terms_, t0_, dt_ = eqx.combine(diff, static)
        t = t0_ + n.astype(dt_.dtype) * dt_
        # Invert the step exactly: the adjoint word run from t + dt with step -dt.
        y_prev, _ = _apply(inverse_plan, terms_, t + dt_, -dt_, y, args_, None)

        def step_of(y_, diff_):
            a, tm, t0__, dt__ = eqx.combine(diff_, static)
            return _apply(solver._plan, tm, t0__ + n.astype(dt__.dtype) * dt__, dt__, y_, a, None)[
                0
            ]

        _, vjp = jax.vjp(step_of, y_prev, diff)
        ct_y_prev, ct_d = vjp(ct_y)
        ct_diff = jtu.tree_map(jnp.add, ct_diff, ct_d)
        return (y_prev, ct_y_prev, ct_diff, n), None

    def block(carry, ct_k):
        y, ct_y, ct_diff, n = carry
        ct_y = jtu.tree_map(jnp.add, ct_y, ct_k)
        carry, _ = jax.lax.scan(back, (y, ct_y, ct_diff, n), None, length=chunk)
        return carry, None

    n_end = jnp.asarray(num_steps, jnp.int32)
    init = (y_last, jtu.tree_map(jnp.zeros_like, y0), ct_diff0, n_end)
    (_, ct_y0, ct_diff, _), _ = jax.lax.scan(block, init, ct_ys, reverse=True)
    ct_args, ct_terms, ct_t0, ct_dt = ct_diff
    return ct_y0, ct_args, ct_terms, ct_t0, ct_dt


def _is_none(x) -> bool:
    return x is None


@eqx.filter_jit
def _solve(terms, solver, y0, args, t0, dt, num_steps, save_every, adjoint, checks):
    """The compiled loop: the solution, and whether every step succeeded (`None` where
    nothing can fail or `checks=False`)."""
    chunk = num_steps if save_every is None else save_every
    ok = None
    if adjoint == "reversible":
        ys = _reversible((y0, args, terms, t0, dt), solver, num_steps, chunk)
    elif checks and not isinstance(solver, AbstractSplitting):
        ys, ok = _forward(solver, terms, y0, args, t0, dt, num_steps, chunk, True)
    else:
        ys = _forward_any(solver, terms, y0, args, t0, dt, num_steps, chunk)
    t1 = t0 + num_steps * dt
    y1 = jtu.tree_map(lambda y: y[-1], ys)
    if save_every is None:
        return FixedSolution(t1, y1, None, None), ok
    ts = t0 + dt * save_every * jnp.arange(num_steps // save_every + 1, dtype=jnp.result_type(dt))
    ys = jtu.tree_map(lambda a, b: jnp.concatenate([a[None], b]), y0, ys)
    return FixedSolution(t1, y1, ts, ys), ok


def solve_fixed(
    terms: PyTree,
    solver: diffrax.AbstractSolver,
    y0: PyTree,
    *,
    t0: float | Real[ArrayLike, ""] = 0.0,
    dt: float | Real[ArrayLike, ""],
    num_steps: int,
    args: PyTree = None,
    save_every: int | None = None,
    adjoint: str = "autodiff",
    checks: bool = True,
) -> FixedSolution:
    """Integrate with a fixed step as one `lax.scan`: the hot loop of simulations and layers.

    Runs any diffrax solver (`solver.init` once, then `solver.step`), and structjax's
    splittings through a fast path: no step-size controller, no event or save bookkeeping,
    no dense output, and for a method that starts and ends with a kick, the last kick of
    each step merged into the first of the next (the leapfrog form), so the loop carries
    $(q, p + b_0 h F(q))$ and one force evaluation per kick, and p is synchronised only
    where a state is returned. The map is the same as stepping one step at a time.

    **Arguments:**

    - `terms`, `solver`, `y0`, `args`: as for `diffrax.diffeqsolve`; `y0` a pytree of
        floating-point arrays (real, or complex where the solver allows it).
    - `t0`, `dt`: real scalars, the start time (finite) and the step (positive, finite).
    - `num_steps`: the number of steps, a Python int >= 1 (it fixes the compiled loop).
    - `save_every`: if given, also return the state every `save_every` steps (a Python int
        dividing `num_steps`).
    - `adjoint`: `"autodiff"` differentiates through the scan (memory grows with
        `num_steps`); `"reversible"` (splitting methods only) rebuilds the trajectory
        backwards by inverting each step exactly, so memory is constant in `num_steps`.
    - `checks`: `False` drops the checks that run inside the compiled program (a traced
        `t0` or `dt` out of range, a failed step); the refusals of types, shapes and
        configuration, and of concrete `t0` and `dt`, stay. The failed-step check reduces
        one success flag over the loop and tests it once. Measured against `checks=False`
        (2 CPU cores, best of 60 interleaved runs): a splitting has no per-step check
        (ratio 1.00 for `VelocityVerlet` on 64 dof); `GaussLegendre(2)` on 2 dof, 0.99-1.00;
        `RKMK(4)` on the rigid body, 0.97-1.00; the cheapest implicit steps pay 2-5%
        (`ImplicitMidpoint` on 2 dof, 0.4 us a step; `Rattle` on the spherical pendulum,
        0.9 us a step).

    **Returns:** a `FixedSolution`.

    **Raises:**

    - `TypeError`: `solver` not a diffrax solver; an integer or boolean leaf in `y0`; a
        complex or non-scalar `t0` or `dt`; `num_steps` not a Python int.
    - `ValueError`: `num_steps < 1`; `save_every` not dividing `num_steps`; an unknown
        `adjoint`, or `"reversible"` with a solver whose steps do not invert exactly;
        `terms`/`y0` not the pair a splitting takes; `dt <= 0`, a non-finite `dt` or `t0`,
        or a failed step (an implicit stage solve that did not converge), at once when
        the values are known and as a run-time error (`jax.errors.JaxRuntimeError`) under
        `jax.jit`.
    """
    if not isinstance(solver, diffrax.AbstractSolver):
        raise TypeError(
            f"`solve_fixed(terms, solver, ...)` needs a diffrax solver, got "
            f"{type(solver).__name__}."
        )
    _check_inputs(terms, y0, t0, dt, num_steps, save_every, adjoint, checks)
    if adjoint == "reversible" and not isinstance(solver, AbstractSplitting):
        raise ValueError(
            "`solve_fixed(..., adjoint='reversible')` needs a structjax splitting method, whose "
            f"steps invert exactly; {type(solver).__name__} does not."
        )
    if adjoint == "reversible" and isinstance(solver, AbstractSplitting):
        if solver._damping is not None:
            raise ValueError(
                "`adjoint='reversible'` refuses a conformal (damped) method: its inverse steps "
                "multiply rounding errors by e^{damping * dt} each, so the rebuilt trajectory "
                "would be wrong after a long run. Use `adjoint='autodiff'`."
            )
    if isinstance(solver, AbstractSplitting):
        _check_terms(terms, y0)
        _check_rkn(solver.tableau, type(solver).__name__, terms[0], y0[1], args, t0)
    # Time takes the real dtype of the state unless t0 or dt say otherwise: Python-float t0,
    # dt with a float32 (or complex64) state integrate in float32 even under x64.
    inexact = [jnp.result_type(x) for x in jtu.tree_leaves(y0)]
    real = jnp.finfo(inexact[0]).dtype
    t0 = jnp.asarray(t0, dtype=jnp.result_type(t0, dt, real))
    # (a traced weakly typed dt, e.g. `jnp.asarray(0.01)` passed through `jax.jit`, too)
    dt = jnp.asarray(dt, dtype=t0.dtype)
    dt = _check_step(dt, checks)
    y0 = _check_start(y0, t0, checks)
    solution, ok = _solve(terms, solver, y0, args, t0, dt, num_steps, save_every, adjoint, checks)
    if ok is None:
        return solution
    return guard(
        solution,
        ~ok,
        f"`solve_fixed(..., solver={type(solver).__name__}(...))`: a step failed (an implicit "
        "stage solve did not converge within the solver's `max_steps`); take a smaller `dt`, "
        "raise `max_steps`, or pass a Newton root finder.",
    )
