"""A lean fixed-step driver over diffrax solvers, and a reversible adjoint for splittings."""

import functools

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, PyTree

from .._guards import checked_value, guard, is_traced
from .._reversible import _is_none, reversible_loop
from ._adjoint import erk_fns, erk_tableau, symplectic_loop, vjp_fns
from ._base import AbstractStructuredSolver, RealScalarLike
from ._reversible_rk import PairedReversibleRK, ReversibleRK, _increment


class FixedSolution(eqx.Module):
    """The result of `solve_fixed`.

    **Arguments:**

    - `t1`, `y1`: the final time and state.
    - `ts`, `ys`: with `save_every=m`, the times $t_0 + k m\\,dt$ and the states there,
        $k = 0, \\dots, N/m$ (first axis); `None` otherwise.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> half_sq = lambda x, args: 0.5 * jnp.sum(x**2)
    >>> terms = si.separable_terms(half_sq, half_sq)
    >>> y0 = (jnp.asarray([1.0]), jnp.asarray([0.0]))
    >>> sol = si.solve_fixed(terms, si.VelocityVerlet(), y0, dt=0.1, num_steps=100)
    >>> q, p = sol.y1
    >>> print(bool(jnp.abs(0.5 * (q**2 + p**2) - 0.5).max() < 1e-3), float(sol.t1))
    True 10.0

    ```
    """

    t1: Array
    y1: PyTree
    ts: Array | None
    ys: PyTree | None


def _check_step(dt, checks: bool = True):
    """Refuse a non-positive or non-finite step: at once if known, else at run time."""
    return checked_value(
        dt,
        lambda d: jnp.isfinite(d) & (d > 0),
        lambda d: (
            f"`solve_fixed(..., dt={'...' if d is None else repr(float(d))})` needs a "
            "finite step dt > 0 (to integrate backwards in time, negate the vector field instead)."
        ),
        checks=checks,
    )


def _check_start(y0, t0, checks: bool):
    """Refuse a non-finite start time. The check rides on the state (always used), so it
    survives whatever output the caller keeps."""
    return checked_value(
        t0,
        jnp.isfinite,
        lambda t: (
            f"`solve_fixed(..., t0={'...' if t is None else repr(float(t))})` needs a "
            "finite start time t0."
        ),
        checks=checks,
        on=y0,
    )


def _check_inputs(terms, y0, t0, dt, num_steps, save_every, adjoint, checks, checkpoints=None):
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
    if adjoint not in ("autodiff", "reversible", "symplectic"):
        raise ValueError(
            f"`solve_fixed(..., adjoint={adjoint!r:.60})` needs 'autodiff', 'reversible' or "
            "'symplectic'."
        )
    if not isinstance(checks, bool):
        raise TypeError(f"`solve_fixed(..., checks={checks!r:.60})` needs a Python bool.")
    if checkpoints is not None:
        if isinstance(checkpoints, bool) or not isinstance(checkpoints, int):
            raise TypeError(
                f"`solve_fixed(..., checkpoints={checkpoints!r:.60})` needs a Python int >= 1 "
                "or None."
            )
        if checkpoints < 1:
            raise ValueError(
                f"`solve_fixed(..., checkpoints={checkpoints!r:.60})` needs a Python int >= 1 "
                "or None."
            )
        if adjoint == "autodiff":
            raise ValueError(
                f"`solve_fixed(..., checkpoints={checkpoints}, adjoint='autodiff')`: "
                "checkpoints are the stored states of adjoint='symplectic' or 'reversible'; "
                "autodiff keeps every step's."
            )


def _fixed_step(solver, terms, t, dt, y, args, state):
    """One step of any solver in the loop: a structured solver's own `fixed_step`, else
    diffrax's `step` without its dense output. `(y1, state, success)`."""
    if isinstance(solver, AbstractStructuredSolver):
        return solver.fixed_step(terms, t, dt, y, args, state)
    y1, _, _, state, result = solver.step(terms, t, t + dt, y, args, state, False)
    return y1, state, result == diffrax.RESULTS.successful


def _can_fail(solver) -> bool:
    return not isinstance(solver, AbstractStructuredSolver) or solver.steps_can_fail


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
        y, state, success = _fixed_step(solver, terms, t, dt, y, args, state)
        if track:
            ok = ok & success
        return (y, state, n + 1, ok), None

    def block(carry, _):
        carry, _ = jax.lax.scan(one, carry, None, length=chunk)
        return carry, carry[0]

    start = (y0, state0, jnp.zeros((), jnp.int32), jnp.ones((), bool) if track else None)
    end, ys = jax.lax.scan(block, start, None, length=num_steps // chunk)
    return ys, end[3]


def _forward_any(solver, terms, y0, args, t0, dt, num_steps: int, chunk: int):
    """The states after every `chunk` steps: the solver's fused loop where it offers one."""
    if isinstance(solver, AbstractStructuredSolver):
        ys = solver.fused_fixed_loop(terms, y0, args, t0, dt, num_steps, chunk)
        if ys is not None:
            return ys
    return _forward(solver, terms, y0, args, t0, dt, num_steps, chunk, False)[0]


def _reversible_step(params, w, n, y):
    solver, terms, args, t0, dt = params
    return solver.one_step(terms, t0 + n.astype(dt.dtype) * dt, dt, y, args)


def _reversible_inverse(params, w, n, y1):
    solver, terms, args, t0, dt = params
    return solver.inverse_step(terms, t0 + n.astype(dt.dtype) * dt, dt, y1, args)


def _reversible_rk_inverse_vjp(diff, static, w, n, yz1, ct, batched: bool):
    """`ReversibleRK`'s inverse and step VJP at once (for `reversible_loop`): the inverse
    evaluates the step's two increments, `Psi_{-h}(t_{n+1}, y_{n+1})` and then
    `Psi_h(t_n, z_n)`, at the very points the step did, so their VJPs are taken there and
    nothing is recomputed: a backward step costs two increments with their VJPs.

    The step is `y1 = lam y + (1 - lam) z + A(z)`, `z1 = z - B(y1)`; for cotangents
    `(a, b)` of `(y1, z1)`: `c = a - B_y^T b`, `ct_y = lam c`,
    `ct_z = b + (1 - lam) c + A_z^T c`, `ct_params = A_p^T c - B_p^T b`."""

    def increment(d, y, back: bool):
        solver, terms, args, t0, dt = eqx.combine(d, static)
        t = t0 + n.astype(dt.dtype) * dt
        base = solver.rk.solver
        if back:
            return _increment(base, terms, t + dt, -dt, y, args)
        return _increment(base, terms, t, dt, y, args)

    def fn(back):
        if batched:
            return lambda d, y: jax.vmap(lambda y_: increment(d, y_, back))(y)
        return lambda d, y: increment(d, y, back)

    lam = eqx.combine(diff, static)[0].rk.coupling
    (y1, z1), (a, b) = yz1, ct
    big_b, vjp_b = eqx.filter_vjp(fn(True), diff, y1)
    z = jtu.tree_map(jnp.add, z1, big_b)
    big_a, vjp_a = eqx.filter_vjp(fn(False), diff, z)
    y = jtu.tree_map(lambda u, v, r: (u - (1 - lam) * v - r) / lam, y1, z, big_a)
    ct_d_b, ct_y1_b = vjp_b(jtu.tree_map(jnp.negative, b))
    c = jtu.tree_map(jnp.add, a, ct_y1_b)
    ct_d_a, ct_z_a = vjp_a(c)
    ct_y = jtu.tree_map(lambda v: lam * v, c)
    ct_z = jtu.tree_map(lambda u, v, r: u + (1 - lam) * v + r, b, c, ct_z_a)
    ct_d = jtu.tree_map(_add_none, ct_d_a, ct_d_b, is_leaf=_is_none)
    return (y, z), ct_d, None, (ct_y, ct_z)


def _add_none(u, v):
    return None if u is None else (v if v is None else u + v)


def _reversible_fused(params, ws, y0, *, num_steps: int, chunk: int):
    solver, terms, args, t0, dt = params
    return _forward_any(solver, terms, y0, args, t0, dt, num_steps, chunk)


def _anchor_chunk(num_steps: int, chunk: int, checkpoints: int | None) -> int:
    """The reversible adjoint's chunk: `chunk` (the saves), or with `checkpoints` the
    smallest divisor of `chunk` of at least `num_steps / checkpoints` steps."""
    if checkpoints is None:
        return chunk
    target = -(-num_steps // checkpoints)
    return min(d for d in range(1, chunk + 1) if chunk % d == 0 and d >= min(target, chunk))


def _reversible(solver, terms, y0, args, t0, dt, num_steps: int, chunk: int, checkpoints):
    """The fixed-step loop under the reversible adjoint (`structjax._reversible`): the
    solver's fused forward loop, and a backward pass that inverts each step exactly
    (`solver.inverse_step`) and differentiates `solver.one_step` there, restarting from the
    stored state at every save (and every `checkpoints`-th of the steps)."""
    sub = _anchor_chunk(num_steps, chunk, checkpoints)
    fused = functools.partial(_reversible_fused, num_steps=num_steps, chunk=sub)
    inverse_vjp = _reversible_rk_inverse_vjp if isinstance(solver, PairedReversibleRK) else None
    ys = reversible_loop(_reversible_step, _reversible_inverse, (solver, terms, args, t0, dt),
                         None, y0, length=num_steps, chunk=sub, fused=fused,
                         inverse_vjp=inverse_vjp)  # fmt: skip
    every = chunk // sub
    return jtu.tree_map(lambda a: a[every - 1 :: every], ys)


def _symplectic(solver, terms, y0, args, t0, dt, num_steps: int, chunk: int, checkpoints):
    """The fixed-step loop under the symplectic adjoint (`_adjoint.py`): an explicit RK
    tableau's partner steps, stage by stage; any other solver's step differentiated whole
    at the stored state."""
    tab = erk_tableau(solver)
    if tab is not None:
        step, step_vjp = erk_fns(tab)
        params = (terms, args)
    else:
        if isinstance(solver, AbstractStructuredSolver):

            def one(p, t, h, y):
                sv, tm, ar = p
                return sv.one_step(tm, t, h, y, ar)

        else:

            def one(p, t, h, y):
                sv, tm, ar = p
                state = sv.init(tm, t, t + h, y, ar)
                return sv.step(tm, t, t + h, y, ar, state, False)[0]

        step, step_vjp = vjp_fns(one)
        params = (solver, terms, args)
    return symplectic_loop(step, step_vjp, params, y0, t0, dt, length=num_steps, chunk=chunk,
                           checkpoints=checkpoints)  # fmt: skip


def _check_symplectic(solver, terms) -> None:
    name = type(solver).__name__
    if _can_fail(solver) and erk_tableau(solver) is None:
        raise ValueError(
            f"`solve_fixed(..., adjoint='symplectic', solver={name}(...))` needs a solver whose "
            "steps cannot fail (explicit Runge-Kutta, splittings, explicit Lie-group methods); "
            f"{name} solves stage equations that may not converge: use adjoint='autodiff'."
        )
    if erk_tableau(solver) is not None and not isinstance(terms, diffrax.AbstractTerm):
        raise ValueError(
            f"`solve_fixed(..., adjoint='symplectic', solver={name}(...))` needs one term "
            f"(a diffrax.ODETerm), got {type(terms).__name__}."
        )


@eqx.filter_jit
def _solve(terms, solver, y0, args, t0, dt, num_steps, save_every, adjoint, checks, checkpoints):
    """The compiled loop: the solution, and whether every step succeeded (`None` where
    nothing can fail or `checks=False`)."""
    chunk = num_steps if save_every is None else save_every
    ok = None
    if adjoint == "reversible":
        ys = _reversible(solver, terms, y0, args, t0, dt, num_steps, chunk, checkpoints)
    elif adjoint == "symplectic":
        ys = _symplectic(solver, terms, y0, args, t0, dt, num_steps, chunk, checkpoints)
    elif checks and _can_fail(solver):
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
    t0: RealScalarLike = 0.0,
    dt: RealScalarLike,
    num_steps: int,
    args: PyTree = None,
    save_every: int | None = None,
    adjoint: str = "autodiff",
    checks: bool = True,
    checkpoints: int | None = None,
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
        `num_steps`); `"reversible"` (splitting methods, and any explicit method made
        reversible by `ReversibleRK`) rebuilds the trajectory backwards by inverting each
        step, so memory is constant in `num_steps`;
        `"symplectic"` (Matsubara, Miyatake & Yaguchi 2021) keeps the state entering each
        step and runs the backward pass as the forward method's symplectic partner: for an
        explicit Runge-Kutta tableau (diffrax's `Euler`, `Heun`, `Midpoint`, `Ralston`,
        `Bosh3`, `Tsit5`, `Dopri5`, `Dopri8`, any `AbstractERK`) one stage's vector-Jacobian
        product at a time, so the vector field's activations are held for one evaluation;
        for structjax's splittings and explicit Lie-group methods the step's own VJP. The
        gradient is autodiff's of the same discrete solve (to 2e-15 relative, tested).
        It keeps the state entering every segment of `ceil(num_steps / checkpoints)`
        steps and recomputes one segment at a time on the way back (one more step per
        step): memory `checkpoints` + one segment's states + one stage's activations. It
        does not differentiate `t0` or `dt` (an error if asked) nor run implicit solvers.
    - `checkpoints`: for `adjoint="symplectic"`, the number of states kept (default
        `ceil(sqrt(num_steps))`; `num_steps` keeps them all and recomputes nothing). For
        `adjoint="reversible"`, the reconstruction restarts from the stored state at every
        save; `checkpoints` stores more: the state after every `d` steps, `d` the
        smallest divisor of `save_every` (or `num_steps`) of at least
        `num_steps / checkpoints`. Rounding in the inverse grows along a reconstruction
        (`ReversibleRK` divides by its coupling each step), and these bound its length.
        Not for `"autodiff"`.
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
        complex or non-scalar `t0` or `dt`; `num_steps` or `checkpoints` not a Python int.
    - `ValueError`: `num_steps < 1`; `save_every` not dividing `num_steps`;
        `checkpoints < 1`, or given with `adjoint="autodiff"`; an unknown
        `adjoint`, `"reversible"` with a solver whose steps do not invert exactly, or
        `"symplectic"` with an implicit solver or an explicit RK method given several terms;
        `terms`/`y0` not the pair a splitting takes; `dt <= 0`, a non-finite `dt` or `t0`,
        or a failed step (an implicit stage solve that did not converge), at once when
        the values are known and as a run-time error (`jax.errors.JaxRuntimeError`) under
        `jax.jit`.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> half_sq = lambda x, args: 0.5 * jnp.sum(x**2)
    >>> terms = si.separable_terms(half_sq, half_sq)
    >>> y0 = (jnp.asarray([1.0]), jnp.asarray([0.0]))
    >>> sol = si.solve_fixed(terms, si.VelocityVerlet(), y0, dt=0.1, num_steps=100)
    >>> q, p = sol.y1
    >>> print(bool(jnp.abs(0.5 * (q**2 + p**2) - 0.5).max() < 1e-3), float(sol.t1))
    True 10.0

    ```
    """
    if not isinstance(solver, diffrax.AbstractSolver):
        raise TypeError(
            f"`solve_fixed(terms, solver, ...)` needs a diffrax solver, got "
            f"{type(solver).__name__}."
        )
    _check_inputs(terms, y0, t0, dt, num_steps, save_every, adjoint, checks, checkpoints)
    paired = isinstance(solver, ReversibleRK)
    if paired:  # the loop runs on (y, z), z_0 = y_0; the solution is y
        solver, y0 = PairedReversibleRK(solver), (y0, y0)
    if adjoint == "reversible":
        if not isinstance(solver, AbstractStructuredSolver):
            raise ValueError(
                "`solve_fixed(..., adjoint='reversible')` needs a structjax splitting method, "
                f"whose steps invert exactly; {type(solver).__name__} does not."
            )
        name = type(solver).__name__
        solver.check_reversible(f"solve_fixed(..., adjoint='reversible', solver={name}(...))")
    if adjoint == "symplectic":
        _check_symplectic(solver, terms)
    if isinstance(solver, AbstractStructuredSolver):
        solver.check_problem(terms, y0, args, t0)
    # Time takes the real dtype of the state unless t0 or dt say otherwise: Python-float t0,
    # dt with a float32 (or complex64) state integrate in float32 even under x64.
    inexact = [jnp.result_type(x) for x in jtu.tree_leaves(y0)]
    real = jnp.finfo(inexact[0]).dtype
    # Concrete t0 and dt (Python floats, even under `jit`) are checked as given, at once:
    # converted first, they would be traced constants and leave a run-time check behind.
    given_t0, given_dt = t0, dt
    t0 = jnp.asarray(t0, dtype=jnp.result_type(t0, dt, real))
    # (a traced weakly typed dt, e.g. `jnp.asarray(0.01)` passed through `jax.jit`, too)
    dt = jnp.asarray(dt, dtype=t0.dtype)
    if is_traced(given_dt):
        dt = _check_step(dt, checks)
    else:
        _check_step(given_dt, checks)
    if is_traced(given_t0):
        y0 = _check_start(y0, t0, checks)
    else:
        _check_start(y0, given_t0, checks)
    solution, ok = _solve(terms, solver, y0, args, t0, dt, num_steps, save_every, adjoint, checks,
                          checkpoints)  # fmt: skip
    if paired:
        ys = None if solution.ys is None else solution.ys[0]
        solution = FixedSolution(solution.t1, solution.y1[0], solution.ts, ys)
    if ok is None:
        return solution
    return guard(
        solution,
        ~ok,
        f"`solve_fixed(..., solver={type(solver).__name__}(...))`: a step failed (an implicit "
        "stage solve did not converge within the solver's `max_steps`); take a smaller `dt`, "
        "raise `max_steps`, or pass a Newton root finder.",
    )
