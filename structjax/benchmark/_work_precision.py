"""Work-precision sets and convergence studies over structjax's and diffrax's solvers.

After DiffEqDevTools.jl (`WorkPrecisionSet`, `test_convergence`): each run is compiled once
(compile time recorded apart), timed over several calls (median), and measured against the
problem's reference: the error at the end, every invariant's largest error and drift along
the trajectory, and the vector-field evaluations.
"""

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import PyTree

from ..integrators import (
    RKMK,
    Composition,
    CrouchGrossman,
    ExplicitSplitting,
    GaussLegendre,
    ImplicitRungeKutta,
    LieGroupRK,
    solve_fixed,
)
from ..integrators._splitting import AbstractSplitting
from ..problems import Problem

SolverLike = diffrax.AbstractSolver | Callable[[Problem], diffrax.AbstractSolver]
# Classes that are families over tables: their default label carries the order.
_FAMILIES = (Composition, ExplicitSplitting, ImplicitRungeKutta, GaussLegendre, RKMK,
             CrouchGrossman, LieGroupRK)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Setup:
    r"""One contender of a work-precision set: a solver and the step sizes or tolerances to
    run it at.

    With `dts`, the solver runs at fixed steps through `structjax.integrators.solve_fixed`
    (any diffrax solver, structjax's too), at a step within `1 / (2 samples)` of `dt`, so that
    it ends at `t1` and saves about `samples` intervals of a whole number of steps each (the
    step used is reported). With `tols`, it runs through `diffrax.diffeqsolve` with a
    `PIDController(rtol=tol, atol=tol)` and diffrax's initial step selection, saving at the
    `samples + 1` sample times.

    **Arguments:**

    - `solver`: a diffrax or structjax solver, or a function `problem -> solver` for solvers
        built from the problem's data (e.g. `lambda pb: si.Rattle(pb.constraint)`).
    - `dts`: fixed step sizes, positive; or
    - `tols`: tolerances `rtol = atol`, positive (exactly one of `dts` and `tols`).
    - `name`: the label in tables and plots (default: the solver's class name).
    - `evaluations_per_step`: the vector-field evaluations of one step, where structjax cannot
        count them itself (an implicit solver's iterations vary); `None` to use the count
        structjax knows for splittings, Lie-group methods and explicit Runge–Kutta methods.

    **Raises:** `ValueError` unless exactly one of `dts` and `tols` is a non-empty list of
    positive finite numbers; `TypeError` for a `solver` that is neither a solver nor callable.

    **Example:**

    ```pycon
    >>> import diffrax, structjax.integrators as si
    >>> from structjax.benchmark import Setup
    >>> Setup(si.BlanesMoan4(), dts=[0.1, 0.05]).label
    'BlanesMoan4'
    >>> Setup(diffrax.Tsit5(), tols=[1e-6], name="Tsit5").label
    'Tsit5'

    ```
    """

    solver: Any
    dts: Sequence[float] | None = None
    tols: Sequence[float] | None = None
    name: str | None = None
    evaluations_per_step: int | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.solver, diffrax.AbstractSolver) or callable(self.solver)):
            raise TypeError(
                "`Setup(solver=...)` needs a diffrax solver or a function problem -> solver, "
                f"got {type(self.solver).__name__}."
            )
        given = [k for k in ("dts", "tols") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"`Setup({self.label})` needs exactly one of `dts` (fixed steps) and `tols` "
                f"(adaptive), got {given or 'neither'}."
            )
        values = list(getattr(self, given[0]))
        if not values or not all(
            isinstance(v, int | float | np.floating) and math.isfinite(v) and v > 0 for v in values
        ):
            raise ValueError(
                f"`Setup({self.label}, {given[0]}=...)` needs a non-empty list of positive "
                f"finite numbers, got {values!r}."
            )
        object.__setattr__(self, given[0], tuple(float(v) for v in values))

    @property
    def label(self) -> str:
        """The name in tables and plots: `name`, else the solver's class name, with its order
        for a class that is a family over tables (`Composition4`, `GaussLegendre6`, `RKMK4`).
        `work_precision` numbers repeated labels (`" #2"`), so no two setups merge."""
        if self.name is not None:
            return self.name
        if isinstance(self.solver, diffrax.AbstractSolver):
            name = type(self.solver).__name__
            if type(self.solver) in _FAMILIES and (order := _declared_order(self.solver)):
                name += str(order)
            return name
        return getattr(self.solver, "__name__", "solver")

    @property
    def adaptive(self) -> bool:
        """Whether this setup runs at tolerances (True) or fixed steps (False)."""
        return self.tols is not None


def evaluations(
    solver: diffrax.AbstractSolver, steps: int, *, adaptive: bool = False
) -> int | None:
    r"""The vector-field (force) evaluations of `steps` steps of `solver`, where they are fixed
    by its construction.

    A splitting counts its force evaluations (its table's, plus one to start a method that
    carries the force from step to step); an explicit Runge–Kutta method its new stages per
    step plus the first stage of an FSAL method (with `steps` the attempted steps when
    adaptive; the tests count the evaluations of an instrumented vector field at run time
    and find exactly this, for diffrax's solves too); a Lie-group method its
    stages; diffrax's `SemiImplicitEuler` and `LeapfrogMidpoint` one per step. Implicit
    solvers iterate a data-dependent number of times: `None`.

    **Arguments:**

    - `solver`: the solver.
    - `steps`: the steps taken (attempted, for an adaptive solve).
    - `adaptive`: whether the solve was adaptive (the count is the same formula).

    **Returns:** an int, or `None` where the count is not fixed.

    **Example:**

    ```pycon
    >>> import diffrax, structjax.integrators as si
    >>> from structjax.benchmark import evaluations
    >>> evaluations(si.KahanLi8(), 100), evaluations(diffrax.Tsit5(), 100)
    (1701, 601)

    ```
    """
    if isinstance(solver, AbstractSplitting):
        tab = solver.tableau
        return steps * tab.force_evaluations + int(bool(tab.fsal))
    if isinstance(solver, diffrax.AbstractERK) and isinstance(
        solver.tableau, diffrax.ButcherTableau
    ):
        tab = solver.tableau
        fsal = bool(tab.fsal)
        return steps * (len(tab.a_lower) + 1 - int(fsal)) + int(fsal)
    if isinstance(solver, LieGroupRK):
        return steps * len(solver.tableau.b)
    if isinstance(solver, diffrax.SemiImplicitEuler | diffrax.LeapfrogMidpoint):
        return steps
    return None


def _norm(x) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(jnp.abs(a) ** 2) for a in jtu.tree_leaves(x)))


def _phase_error(y, ref, scale) -> jax.Array:
    """max over leaves of |y - ref| / scale (scale: the largest |ref| along the orbit)."""
    errs = [_norm(a - b) / s for a, b, s in zip(jtu.tree_leaves(y), jtu.tree_leaves(ref), scale)]
    return jnp.max(jnp.stack(errs))


def _invariant_errors(problem: Problem, ts, ys):
    """Per invariant: |I(t, y_t) - I(0, y_0)| along the trajectory, relative to |I(0, y_0)|
    where that is above sqrt(eps), absolute otherwise."""
    out = {}
    for key, fn in problem.invariants.items():
        values = jax.vmap(fn)(ts, ys)
        v0 = values[0]
        dev = jax.vmap(lambda v: _norm(v - v0))(values)
        size = _norm(v0)
        tiny = jnp.sqrt(jnp.finfo(dev.dtype).eps)
        out[key] = dev / jnp.where(size > tiny, size, 1.0)
    return out


def _slope(ts, e) -> float:
    t = np.asarray(ts, np.float64)
    e = np.asarray(e, np.float64)
    if not np.all(np.isfinite(e)):
        return math.nan  # a failed solve: its row says ok=False
    tc = t - t.mean()
    return float(np.sum(tc * (e - e.mean())) / max(np.sum(tc**2), 1e-300))


@dataclasses.dataclass
class WorkPrecision:
    r"""The result of `work_precision`: one row per setup and step (or tolerance).

    Each row is a dict with `setup`, `kind` (`"dt"` or `"tol"`), `param` (the requested step
    or tolerance), `dt` (the step used; `None` when adaptive), `steps`, `evaluations`,
    `final_error` (the phase-space error at `t1` relative to the orbit's size: per leaf
    $|y - y_\mathrm{ref}| / \max_t |y_\mathrm{ref}(t)|$, the largest leaf, the largest
    ensemble member), `invariants` (per invariant, `max_error` and `drift`, the
    least-squares slope of the error against time), `wall_s` (median of `runs` calls),
    `wall_min_s`, `runs`, `compile_s` (with `compile_shared` when an earlier row's compile
    served this one: an adaptive setup compiles once for all its tolerances), `ok` (the solve
    succeeded) and `order` (declared).
    `series` holds each row's invariant errors along its trajectory, at `times` (per row).

    **Arguments:**

    - `problem`, `title`: the problem's name and title.
    - `times`: per row, the times of its saved trajectory.
    - `rows`: the measurements, as above.
    - `series`: `series[i][invariant]`, the error along the trajectory of row `i`.
    - `ensemble`: the number of initial conditions (`None` for the problem's own `y0`).

    **Example:**

    ```pycon
    >>> import structjax.integrators as si, structjax.problems as sp
    >>> from structjax.benchmark import Setup, work_precision
    >>> res = work_precision(sp.harmonic_oscillator(t1=10.0),
    ...                      [Setup(si.VelocityVerlet(), dts=[0.1])], runs=1, progress=False)
    >>> row = res.rows[0]
    >>> print(row["setup"], row["steps"], bool(row["final_error"] < 1e-2))
    VelocityVerlet 100 True

    ```
    """

    problem: str
    title: str
    times: list[list[float]]
    rows: list[dict]
    series: list[dict[str, list[float]]]
    ensemble: int | None = None

    def setups(self) -> list[str]:
        """The setups' labels, in the order they ran.

        **Returns:** a list of strings.

        **Example:**

        ```pycon
        >>> from structjax.benchmark import WorkPrecision
        >>> WorkPrecision("p", "", [], [{"setup": "a"}, {"setup": "a"}], []).setups()
        ['a']

        ```
        """
        return list(dict.fromkeys(r["setup"] for r in self.rows))

    def to_dict(self) -> dict:
        """The result as plain JSON-ready data (NaN and infinity as `None`).

        **Returns:** a dict with the fields of this object.

        **Example:**

        ```pycon
        >>> from structjax.benchmark import WorkPrecision
        >>> WorkPrecision("p", "t", [], [], []).to_dict()["problem"]
        'p'

        ```
        """
        out: dict = _jsonable(dataclasses.asdict(self))
        return out

    def to_json(self, path: str | Path | None = None) -> str:
        """The result as JSON text, written to `path` when given.

        **Arguments:**

        - `path`: a file to write, or `None`.

        **Returns:** the JSON text.

        **Example:**

        ```pycon
        >>> import json
        >>> from structjax.benchmark import WorkPrecision
        >>> json.loads(WorkPrecision("p", "t", [], [], []).to_json())["title"]
        't'

        ```
        """
        text = json.dumps(self.to_dict(), indent=1) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, text: str) -> "WorkPrecision":
        """Read a result written by `to_json`.

        **Arguments:**

        - `text`: the JSON text.

        **Returns:** a `WorkPrecision`.

        **Example:**

        ```pycon
        >>> from structjax.benchmark import WorkPrecision
        >>> res = WorkPrecision("p", "t", [[0.0, 1.0]], [], [])
        >>> WorkPrecision.from_json(res.to_json()) == res
        True

        ```
        """
        return cls(**json.loads(text))

    def table(self, invariant: str | None = None) -> str:
        """The rows as a plain-text table (one line per run; the step column shows the step
        used, the tolerance for adaptive runs).

        **Arguments:**

        - `invariant`: the invariant whose error to show (default: the largest of all).

        **Returns:** the table as a string.

        **Raises:** `KeyError` for an invariant the problem does not have.

        **Example:**

        ```pycon
        >>> from structjax.benchmark import WorkPrecision
        >>> print(WorkPrecision("p", "t", [], [], []).table().splitlines()[0])
        t

        ```
        """
        head = ["setup", "dt/tol", "steps", "evals", "final err",
                f"{invariant} err" if invariant else "max invariant err", "wall ms",
                "compile s"]  # fmt: skip

        def inv(r):
            if invariant is not None:
                return r["invariants"][invariant]["max_error"]
            return max((v["max_error"] for v in r["invariants"].values()), default=None)

        lines = [[r["setup"], f"{r['dt'] if r['kind'] == 'dt' else r['param']:.3g}",
                  str(r["steps"]), "-" if r["evaluations"] is None else str(r["evaluations"]),
                  _fmt(r["final_error"]), _fmt(inv(r)),
                  f"{1e3 * r['wall_s']:.3g}", f"{r['compile_s']:.2f}"]
                 for r in self.rows]  # fmt: skip
        widths = [max([len(h)] + [len(x[i]) for x in lines]) for i, h in enumerate(head)]
        fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
        return "\n".join(
            [self.title or self.problem, fmt(head), fmt(["-" * w for w in widths])]
            + [fmt(x) for x in lines]
        )


def _fmt(x) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.2e}"


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray | jax.Array):
        return _jsonable(np.asarray(x).tolist())
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _declared_order(solver) -> int | None:
    try:
        order = solver.order(None)
    except Exception:  # a solver without an order (diffrax raises for some)
        return None
    return None if order is None else int(order)


def _resolve(setup: Setup, problem: Problem) -> diffrax.AbstractSolver:
    solver = setup.solver
    if not isinstance(solver, diffrax.AbstractSolver):
        solver = solver(problem)
        if not isinstance(solver, diffrax.AbstractSolver):
            raise TypeError(
                f"`Setup({setup.label})`: the function given as `solver` returned "
                f"{type(solver).__name__}, not a diffrax solver."
            )
    return solver


def _program(problem, solver, terms, y0s, ts, *, dt=None, max_steps=None):
    """A jitted `(y0, tol) -> (ys, steps, ok)`, vmapped over the ensemble when there is one.
    The tolerance is traced, so one compile serves all of an adaptive setup's tolerances;
    a fixed step fixes the number of steps, so each step compiles its own loop."""
    samples = ts.shape[0] - 1
    if dt is not None:
        # The step honoured (to the rounding of t1/dt), the sampling adjusted to it: about
        # `samples` intervals of a whole number of steps each.
        n = max(1, round(problem.t1 / dt))
        every = max(1, round(n / samples))
        n = every * max(1, round(n / every))
        dt_used = problem.t1 / n
        row_ts = jnp.linspace(0.0, problem.t1, n // every + 1, dtype=ts.dtype)

        def one_fixed(y0, tol):
            del tol
            ys = solve_fixed(
                terms, solver, y0, dt=dt_used, num_steps=n, save_every=every, args=problem.args
            ).ys
            return ys, jnp.asarray(n), jnp.asarray(True)
    else:
        n, dt_used, row_ts = None, None, ts

        def one_adaptive(y0, tol):
            sol = diffrax.diffeqsolve(
                terms, solver, 0.0, problem.t1, None, y0, args=problem.args,
                saveat=diffrax.SaveAt(ts=ts),
                stepsize_controller=diffrax.PIDController(rtol=tol, atol=tol),
                max_steps=max_steps, throw=False,
            )  # fmt: skip
            return sol.ys, sol.stats["num_steps"], sol.result == diffrax.RESULTS.successful

    one = one_fixed if dt is not None else one_adaptive
    fn = jax.jit(one if y0s is None else jax.vmap(one, in_axes=(0, None)))
    return fn, n, dt_used, row_ts


def work_precision(
    problem: Problem,
    setups: Sequence[Setup],
    *,
    samples: int = 100,
    runs: int = 3,
    y0s: PyTree | None = None,
    max_steps: int = 10**7,
    reference: bool = True,
    progress: bool = True,
) -> WorkPrecision:
    r"""Run every setup at each of its steps or tolerances on `problem`, and measure.

    Each run is compiled once (`jax.jit(...).lower(...).compile()`, timed as `compile_s`),
    then called `runs` times (`wall_s` the median). Its trajectory at about `samples + 1`
    equally spaced times gives the invariants' errors; its end state against `problem.reference`
    gives the final error. With `y0s` (a leading ensemble axis on every leaf of `y0`'s
    structure) each run is `jax.vmap`ped over the ensemble (inputs may be sharded over
    devices: the jitted run keeps their sharding) and its errors are the largest over the
    members, against a reference solved for each.

    **Arguments:**

    - `problem`: a `structjax.problems.Problem`.
    - `setups`: a list of `Setup`s.
    - `samples`: about how many intervals of the trajectory are saved (exactly, when
        adaptive; for a fixed step, the nearest count whose intervals hold whole steps).
    - `runs`: timed calls per run, >= 1.
    - `y0s`: an ensemble of initial states, or `None` for the problem's own `y0`.
    - `max_steps`: the step limit of adaptive solves (a solve that reaches it is `ok=False`).
    - `reference`: measure the final error against `problem.reference` (`False`: invariants
        only, `final_error` is `None`, and no reference is solved).
    - `progress`: show a progress bar (tqdm).

    **Returns:** a `WorkPrecision`.

    **Raises:** `ValueError` for an empty `setups`, `samples < 1`, `runs < 1`, or a `y0s`
    whose structure differs from `y0`'s; the errors of `Setup` and `Problem.terms_for`.

    **Reference:** DiffEqDevTools.jl's `WorkPrecisionSet` (Rackauckas & Nie, J. Open Res.
    Softw. 5:15 (2017)); the error measures follow Hairer, Lubich & Wanner, GNI (2006), I.

    **Example:**

    ```pycon
    >>> import diffrax, structjax.integrators as si, structjax.problems as sp
    >>> from structjax.benchmark import Setup, work_precision
    >>> res = work_precision(
    ...     sp.kepler(orbits=2.0),
    ...     [Setup(si.BlanesMoan4(), dts=[0.05]), Setup(diffrax.Tsit5(), tols=[1e-8])],
    ...     runs=1, progress=False)
    >>> [r["setup"] for r in res.rows]
    ['BlanesMoan4', 'Tsit5']
    >>> print(all(r["ok"] and r["final_error"] < 1e-3 for r in res.rows))
    True

    ```
    """
    setups = list(setups)
    if not setups or not all(isinstance(s, Setup) for s in setups):
        raise ValueError(
            "`work_precision(problem, setups)` needs a non-empty list of `Setup`s, got "
            f"{[type(s).__name__ for s in setups] or 'none'}."
        )
    labels: dict[str, int] = {}
    for i, s in enumerate(setups):
        labels[s.label] = labels.get(s.label, 0) + 1
        if labels[s.label] > 1:
            setups[i] = dataclasses.replace(s, name=f"{s.label} #{labels[s.label]}")
    for name, value in (("samples", samples), ("runs", runs)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`work_precision(..., {name}=...)` needs an int >= 1, got {value!r}.")
    ts = problem.sample_times(samples)
    if y0s is not None:
        if jtu.tree_structure(y0s) != jtu.tree_structure(problem.y0):
            raise ValueError(
                "`work_precision(..., y0s=...)` needs the structure of the problem's y0 "
                f"({jtu.tree_structure(problem.y0)}), got {jtu.tree_structure(y0s)}."
            )
        members = {int(jnp.shape(a)[0]) for a in jtu.tree_leaves(y0s) if jnp.ndim(a) > 0}
        if len(members) != 1:
            raise ValueError(
                "`work_precision(..., y0s=...)` needs one leading ensemble axis on every leaf, "
                f"got leading sizes {sorted(members)}."
            )
        size = members.pop()
        if reference:
            refs = [problem.reference(ts, jtu.tree_map(lambda a, i=i: a[i], y0s))
                    for i in range(size)]  # fmt: skip
            ref = jtu.tree_map(lambda *a: jnp.stack(a), *refs)
        else:
            ref = jtu.tree_map(
                lambda a: jnp.broadcast_to(a[:, None], (size, *ts.shape, *a.shape[1:])), y0s
            )
        x0 = y0s
    else:
        ref = (
            problem.reference(ts)
            if reference
            else jtu.tree_map(lambda a: jnp.broadcast_to(a, (*ts.shape, *jnp.shape(a))), problem.y0)
        )
        x0 = problem.y0

    # Sizes of the orbit, per leaf (and member): the scale of the phase-space error.
    def scales(r):
        return [jnp.maximum(jnp.max(jax.vmap(_norm)(a)), jnp.finfo(a.dtype).tiny)
                for a in jtu.tree_leaves(r)]  # fmt: skip

    @jax.jit
    def measure(ys, row_ts, ref):
        def one(ys, ref):
            last = jtu.tree_map(lambda a: a[-1], ys)
            final = _phase_error(last, jtu.tree_map(lambda a: a[-1], ref), scales(ref))
            return final, _invariant_errors(problem, row_ts, ys)

        if y0s is None:
            return one(ys, ref)
        final, inv = jax.vmap(one)(ys, ref)
        return jnp.max(final), jtu.tree_map(lambda e: jnp.max(e, axis=0), inv)

    tasks = [(s, x) for s in setups for x in ((s.tols if s.adaptive else s.dts) or ())]
    bar = _progress(len(tasks), problem.name, progress)
    rows, series, series_times, programs = [], [], [], {}
    for setup, x in tasks:
        bar.set_postfix_str(f"{setup.label} {'tol' if setup.adaptive else 'dt'}={x:.3g}")
        if id(setup) not in programs:
            solver = _resolve(setup, problem)
            programs[id(setup)] = (solver, problem.terms_for(solver), {})
        solver, terms, compiled_by_n = programs[id(setup)]
        fn, n, dt_used, row_ts = _program(
            problem,
            solver,
            terms,
            y0s,
            ts,
            dt=None if setup.adaptive else x,
            max_steps=max_steps,
        )
        tol = jnp.asarray(x if setup.adaptive else 0.0, dtype=_dtype(ts))
        shared = n in compiled_by_n
        if not shared:
            start = time.perf_counter()
            compiled_by_n[n] = (fn.lower(x0, tol).compile(), time.perf_counter() - start)
        compiled, compile_s = compiled_by_n[n]
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            out = jax.block_until_ready(compiled(x0, tol))
            times.append(time.perf_counter() - start)
        ys, steps, ok = out
        steps = int(jnp.max(steps))
        final, inv = measure(ys, row_ts, ref)
        final = float(final)
        ok = bool(jnp.all(ok)) and math.isfinite(final)
        if not reference:
            ok = ok and all(bool(jnp.all(jnp.isfinite(e))) for e in inv.values())
            final = None
        count = (
            steps * setup.evaluations_per_step
            if setup.evaluations_per_step is not None
            else evaluations(solver, steps, adaptive=setup.adaptive)
        )
        rows.append(
            dict(
                setup=setup.label,
                kind="tol" if setup.adaptive else "dt",
                param=x,
                dt=dt_used,
                steps=steps,
                evaluations=count,
                final_error=final,
                invariants={
                    k: dict(max_error=float(jnp.max(e)), drift=_slope(row_ts, e))
                    for k, e in inv.items()
                },
                wall_s=float(np.median(times)),
                wall_min_s=float(np.min(times)),
                runs=runs,
                compile_s=compile_s,
                compile_shared=shared,
                ok=ok,
                order=_declared_order(solver),
            )
        )
        series.append({k: np.asarray(e).tolist() for k, e in inv.items()})
        series_times.append(np.asarray(row_ts).tolist())
        bar.update()
    bar.close()
    return WorkPrecision(
        problem=problem.name,
        title=problem.title,
        times=series_times,
        rows=rows,
        series=series,
        ensemble=None if y0s is None else int(jtu.tree_leaves(y0s)[0].shape[0]),
    )


def _dtype(x):
    return jnp.result_type(x)


class _NoProgress:
    """The progress bar's interface, doing nothing (`progress=False`)."""

    def set_postfix_str(self, text: str) -> None:
        del text

    def update(self) -> None:
        return None

    def close(self) -> None:
        return None


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NoProgress()
    from tqdm import tqdm  # the terminal bar (tqdm.auto warns without ipywidgets)

    return tqdm(total=total, desc=desc, leave=False)


@dataclasses.dataclass
class Convergence:
    r"""The result of `convergence`: errors at the end against the step, and the order.

    **Arguments:**

    - `problem`, `solver`: names.
    - `dts`: the steps used.
    - `errors`: the final errors (as `work_precision`'s `final_error`).
    - `order`: the least-squares slope of $\log$ error against $\log$ dt.
    - `local_orders`: the slopes between successive steps.
    - `declared_order`: the solver's `order` (`None` if it declares none).

    **Example:**

    ```pycon
    >>> from structjax.benchmark import Convergence
    >>> c = Convergence("p", "s", [0.1, 0.05], [1e-2, 2.5e-3], 2.0, [2.0], 2)
    >>> c.agrees(tol=0.1)
    True

    ```
    """

    problem: str
    solver: str
    dts: list[float]
    errors: list[float]
    order: float
    local_orders: list[float]
    declared_order: int | None

    def agrees(self, tol: float = 0.3) -> bool:
        """Whether the estimated order is within `tol` of the declared one.

        **Arguments:**

        - `tol`: the allowed difference.

        **Returns:** a bool (`False` when the solver declares no order).

        **Example:**

        ```pycon
        >>> from structjax.benchmark import Convergence
        >>> Convergence("p", "s", [0.1, 0.05], [1e-2, 1e-3], 3.3, [3.3], 2).agrees()
        False

        ```
        """
        return self.declared_order is not None and abs(self.order - self.declared_order) <= tol


def convergence(
    problem: Problem,
    solver: SolverLike,
    dts: Sequence[float],
    *,
    name: str | None = None,
) -> Convergence:
    r"""The empirical order of `solver` on `problem`: the error at `t1` at fixed steps `dts`,
    and the least-squares slope of $\log$ error against $\log$ dt.

    Choose steps in the asymptotic range: large enough that the error stays well above the
    reference's accuracy and rounding (about 1e-11 relative in float64 for a reference
    solve), small enough that the leading error term dominates.

    **Arguments:**

    - `problem`: a `structjax.problems.Problem`.
    - `solver`: a solver, or a function `problem -> solver`.
    - `dts`: at least two distinct positive steps (each is rounded to divide `t1`).
    - `name`: the solver's label (default its class name).

    **Returns:** a `Convergence`.

    **Raises:** `ValueError` for fewer than two distinct steps, or a solve that fails.

    **Reference:** DiffEqDevTools.jl's `test_convergence`; HLW GNI (2006), II.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si, structjax.problems as sp
    >>> from structjax.benchmark import convergence
    >>> c = convergence(sp.kepler(orbits=1.0), si.BlanesMoan4(), [0.02, 0.01, 0.005])
    >>> print(c.declared_order, round(c.order), c.agrees())
    4 4 True

    ```
    """
    dts = [float(d) for d in dts]
    if len(set(dts)) < 2:
        raise ValueError(
            f"`convergence(..., dts=...)` needs two or more distinct steps, got {dts}."
        )
    setup = Setup(solver, dts=dts, name=name)
    res = work_precision(problem, [setup], samples=1, runs=1, progress=False)
    bad = [r["param"] for r in res.rows if not r["ok"]]
    if bad:
        raise ValueError(f"`convergence({setup.label})`: the solve failed at dt = {bad}.")
    used = np.asarray([r["dt"] for r in res.rows])
    errs = np.asarray([r["final_error"] for r in res.rows])
    logs = np.log(used), np.log(np.maximum(errs, 1e-300))
    order = float(np.polyfit(*logs, 1)[0])
    local = (np.diff(logs[1]) / np.diff(logs[0])).tolist()
    return Convergence(problem.name, setup.label, used.tolist(), errs.tolist(), order, local,
                       res.rows[0]["order"])  # fmt: skip


_VIEWS = ("wall", "evaluations", "dt", "invariant")


def plot(
    result: WorkPrecision | Convergence,
    view: str = "wall",
    *,
    invariant: str | None = None,
    ax: Any = None,
) -> Any:
    """Draw a work-precision or convergence result with matplotlib.

    Views of a `WorkPrecision`: `"wall"` (final error against wall time), `"evaluations"`
    (against vector-field evaluations), `"dt"` (against the step, fixed-step setups), and
    `"invariant"` (the error of `invariant`, default the first, against time, one line per
    setup at its finest run). A `Convergence` draws error against dt with the fitted slope.

    **Arguments:**

    - `result`: a `WorkPrecision` or `Convergence`.
    - `view`: one of `"wall"`, `"evaluations"`, `"dt"`, `"invariant"`.
    - `invariant`: the invariant of the `"invariant"` view.
    - `ax`: a matplotlib `Axes` to draw in (default: a new figure).

    **Returns:** the `Axes`.

    **Raises:** `ValueError` for an unknown view or invariant; `ImportError` without
    matplotlib.

    **Example:**

    ```pycon
    >>> import matplotlib; matplotlib.use("Agg")
    >>> from structjax.benchmark import Convergence, plot
    >>> ax = plot(Convergence("p", "s", [0.1, 0.05], [1e-2, 2.5e-3], 2.0, [2.0], 2))
    >>> ax.get_xscale(), ax.get_yscale()
    ('log', 'log')

    ```
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - matplotlib is in the test and bench extras
        raise ImportError(
            "`structjax.benchmark.plot` needs matplotlib (pip install matplotlib)"
        ) from e
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4.2))
    if isinstance(result, Convergence):
        dts, errs = np.asarray(result.dts), np.asarray(result.errors)
        ax.loglog(dts, errs, "o-", label=f"{result.solver}: order {result.order:.2f}")
        if result.declared_order is not None:
            ax.loglog(dts, errs[-1] * (dts / dts[-1]) ** result.declared_order, "k:",
                      label=f"slope {result.declared_order}")  # fmt: skip
        ax.set(xlabel="dt", ylabel="error at t1", title=result.problem)
        ax.legend(fontsize=8)
        return ax
    if view not in _VIEWS:
        raise ValueError(f"`plot(result, view=...)` needs one of {_VIEWS}, got {view!r}.")
    if view == "invariant":
        names = list(result.series[0]) if result.series else []
        invariant = invariant if invariant is not None else (names[0] if names else None)
        if invariant not in names:
            raise ValueError(
                f"`plot(result, 'invariant', invariant=...)` needs one of {names}, got "
                f"{invariant!r}."
            )
        for label in result.setups():
            # The setup's most accurate run in this invariant (its failed runs last).
            i = min((i for i, r in enumerate(result.rows) if r["setup"] == label),
                    key=lambda i: result.rows[i]["invariants"][invariant]["max_error"]
                    if result.rows[i]["ok"] else math.inf)  # fmt: skip
            err = np.maximum(np.asarray(result.series[i][invariant], float), 1e-17)
            ax.semilogy(result.times[i], err, label=f"{label} ({result.rows[i]['kind']} "
                        f"{result.rows[i]['param']:.2g})")  # fmt: skip
        ax.set(xlabel="t", ylabel=f"{invariant} error", title=result.title or result.problem)
        ax.legend(fontsize=7)
        return ax
    x_key = {"wall": "wall_s", "evaluations": "evaluations", "dt": "dt"}[view]
    for label in result.setups():
        # In the order of the step or tolerance, coarse to fine (not of x: wall times are noisy).
        pts = [(-r["param"], r[x_key], r["final_error"]) for r in result.rows
               if r["setup"] == label and r["ok"] and r[x_key] is not None
               and r["final_error"] is not None]  # fmt: skip
        if pts:
            _, xs, ys = zip(*sorted(pts))
            ax.loglog(xs, np.maximum(ys, 1e-17), "o-", ms=3, label=label)
    xlabel = {"wall": "wall time (s)", "evaluations": "vector-field evaluations", "dt": "dt"}
    ax.set(
        xlabel=xlabel[view], ylabel="error at t1 (relative)", title=result.title or result.problem
    )
    ax.legend(fontsize=7)
    return ax
