"""Integrators suite: structjax's splitting methods against diffrax and a hand-written loop.

`python -m benchmarks integrators [--quick]`. On five Hamiltonian systems (Kepler, Hénon–
Heiles, pendulum, outer solar system, FPUT chain; see `_hamiltonians.py`) it runs

- every structjax splitting method through `solve_fixed`, at several step sizes;
- a hand-written FSAL velocity Verlet `lax.scan`: the speed limit of a fixed-step loop;
- diffrax's adaptive Tsit5, Dopri5, Dopri8 (`PIDController`, rtol = atol) on the joint
  first-order system, at several tolerances;
- diffrax's fixed-step SemiImplicitEuler and LeapfrogMidpoint, and structjax's
  VelocityVerlet through `diffrax.diffeqsolve` (the cost of diffrax's loop);

and reports per run the force evaluations, wall time (compile time apart), the maximum
relative energy error over the sampled trajectory, and the phase-space error at the end
against a reference. Then a stage-loop study (`stage_loop="scan"` against `"unroll"`) and the
floors, each printed PASS or MISS: they report, they never fail the run.
"""

import functools
import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import structjax.integrators as si
from structjax.check import energy_error
from structjax.integrators._methods import ALL_METHODS

from . import _geometric as geo, _hamiltonians as hm, _harness as h, _integrators_report as report

_QUICK_METHODS = (si.VelocityVerlet, si.BlanesMoan4, si.KahanLi8)
# Tsitouras 2011 (Comput. Math. Appl. 62:770), Dormand & Prince 1980 (J. Comput. Appl. Math.
# 6:19), Prince & Dormand 1981 (J. Comput. Appl. Math. 7:67), as diffrax implements them.
_ADAPTIVE = (diffrax.Tsit5, diffrax.Dopri5, diffrax.Dopri8)
_TOLERANCES = (1e-6, 1e-8, 1e-10, 1e-12, 1e-13, 1e-14)
_ENERGY_TARGET = 1e-10  # floor (2)
# Saving a trajectory costs diffrax's loop ~0.7 us/step here: skip longer fixed-step runs.
_MAX_FIXED_DIFFRAX_STEPS = 1_000_000


def _sample_times(problem):
    return np.linspace(0.0, problem.t_final, problem.samples + 1)  # ends exactly at t_final


def _last(ys):
    return jax.tree_util.tree_map(lambda y: y[-1], ys)


# --- the contenders, each `f(y0, x) -> (ys, steps, ok)` with x a step or a tolerance ----


def _structjax_fn(problem, solver, s: int):
    terms, n = problem.terms, problem.samples * s

    def f(y0, dt):
        ys = si.solve_fixed(terms, solver, y0, dt=dt, num_steps=n, save_every=s).ys
        return ys, jnp.asarray(n), jnp.asarray(True)

    return f


def verlet_scan(problem, y0, dt, num_steps: int, save_every: int | None = None, unroll: int = 1):
    """Velocity Verlet written out by hand as a `lax.scan`, the force carried from one step
    to the next (FSAL): the loop `solve_fixed(..., VelocityVerlet())` should match.
    (`unroll` is passed to the scan when nothing is saved.)"""
    force, velocity = problem.force, problem.velocity

    def step(carry, _):
        q, p, f = carry
        p = p + (0.5 * dt) * f
        q = q + dt * velocity(p)
        f = force(q)
        p = p + (0.5 * dt) * f
        return (q, p, f), None

    q0, p0 = y0
    carry = (q0, p0, force(q0))
    if save_every is None:
        (q, p, _), _ = jax.lax.scan(step, carry, length=num_steps, unroll=unroll)
        return q, p

    def block(carry, _):
        carry, _ = jax.lax.scan(step, carry, length=save_every)
        return carry, carry[:2]

    _, ys = jax.lax.scan(block, carry, length=num_steps // save_every)
    return jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), y0, ys)


def verlet_merged_scan(problem, y0, dt, num_steps: int):
    """Velocity Verlet by hand in leapfrog form: the loop carries p + h/2 F(q) (the last
    half-kick of a step merged with the first of the next), no force; one force per step."""
    force, velocity = problem.force, problem.velocity

    def step(carry, _):
        q, p_half = carry
        q = q + dt * velocity(p_half)
        return (q, p_half + dt * force(q)), None

    q0, p0 = y0
    (q, p_half), _ = jax.lax.scan(step, (q0, p0 + (0.5 * dt) * force(q0)), length=num_steps)
    return q, p_half - (0.5 * dt) * force(q)


def _hand_fn(problem, s: int):
    n = problem.samples * s

    def f(y0, dt):
        return verlet_scan(problem, y0, dt, n, s), jnp.asarray(n), jnp.asarray(True)

    return f


def joint_term(problem) -> diffrax.ODETerm:
    """The first-order system $\\dot y = (\\partial T/\\partial p, -\\partial V/\\partial q)$."""
    term_q, term_p = problem.terms

    def vf(t, y, args):
        q, p = y
        return term_q.vf(t, p, args), term_p.vf(t, q, args)

    return diffrax.ODETerm(vf)


def _diffrax_fn(problem, solver, terms, *, adaptive: bool, max_steps: int, save: bool):
    """`diffrax.diffeqsolve` from 0 to `t_final`: saving at the sample times if `save`, else
    only the end state (diffrax's fastest loop: any saving costs it per step)."""
    saveat = diffrax.SaveAt(ts=_sample_times(problem)) if save else diffrax.SaveAt(t1=True)

    def f(y0, x):
        if adaptive:
            dt0, controller = None, diffrax.PIDController(rtol=x, atol=x)
        else:
            dt0, controller = x, diffrax.ConstantStepSize()
        sol = diffrax.diffeqsolve(
            terms,
            solver,
            0.0,
            problem.t_final,
            dt0,
            y0,
            saveat=saveat,
            stepsize_controller=controller,
            max_steps=max_steps,
            throw=False,
        )
        return sol.ys, sol.stats["num_steps"], sol.result == diffrax.RESULTS.successful

    return f


def _new_stages(solver) -> int:
    """Vector-field evaluations per attempted step of an explicit Runge–Kutta method."""
    tableau = solver.tableau
    return len(tableau.a_lower) + 1 - int(bool(tableau.fsal))


# --- measuring one problem --------------------------------------------------------------


def _reference(problem):
    """The state at `t_final`, the scale of q and p along the orbit, and an estimate of the
    reference's own error (a second, independent method at the same step)."""
    if problem.exact is not None:
        y_ref = problem.exact(problem.t_final)
        orbit = [problem.exact(t) for t in np.linspace(0, 2 * math.pi, 1000)]
        scale = tuple(max(np.linalg.norm(y[i]) for y in orbit) for i in (0, 1))
        return dict(y=y_ref, scale=scale, how="exact (Kepler's equation)", error=None)
    interval = problem.t_final / problem.samples
    s = max(1, round(interval / problem.reference_dt))
    ys_k8, ys_s10 = (
        jax.jit(_structjax_fn(problem, solver, s))(problem.y0, interval / s)[0]
        for solver in (si.KahanLi8(), si.SofSpa10())
    )
    scale = tuple(float(jnp.max(jnp.linalg.norm(y.reshape(len(y), -1), axis=1))) for y in ys_k8)
    y_ref = _last(ys_k8)
    error = _phase_error(_last(ys_s10), y_ref, scale)
    how = f"KahanLi8 dt={interval / s:.3g}; SofSpa10 at that step differs by {error:.1e}"
    return dict(y=y_ref, scale=scale, how=how, error=error)


def _phase_error(y, y_ref, scale) -> float:
    """$\\max(|q - q_\\mathrm{ref}| / Q, |p - p_\\mathrm{ref}| / P)$, with Q, P the largest
    |q|, |p| along the reference orbit."""
    return max(
        float(np.linalg.norm(np.ravel(y[i]) - np.ravel(y_ref[i]))) / scale[i] for i in (0, 1)
    )


def _relative_energy(problem):
    h0 = problem.hamiltonian(*problem.y0)
    return jax.jit(lambda ys: (jax.vmap(problem.hamiltonian)(*ys) - h0) / jnp.abs(h0))


class _Sweep:
    """The runs on one problem: compile, time, and measure each, one table row per run."""

    def __init__(self, problem, quick: bool):
        self.problem, self.quick, self.progress = problem, quick, None
        self.reference = None
        self.energy = jax.jit(functools.partial(energy_error, problem.hamiltonian))
        self.relative_energy = _relative_energy(problem)
        self.rows, self.series = [], {}
        self._compiled = {}

    def _compile(self, key, fn, args):
        shared = key in self._compiled
        if not shared:
            self._compiled[key] = h.compile_fn(fn, *args)
        return (*self._compiled[key], shared)

    def run(self, key, fn, x, saving_fn=None, **row):
        """Compile `fn` once per `key` (one compile serves every step or tolerance), time it
        at `x`, measure its errors, and record a row. With `saving_fn` (diffrax), `fn` saves
        only the end state and is what is timed; the trajectory for the energy error comes
        from one call of `saving_fn`, whose wall time is recorded as `wall_saving_s`."""
        args = (self.problem.y0, jnp.asarray(x, dtype=jnp.float64))
        compiled, compile_s, shared = self._compile(key, fn, args)
        budget = (0.15, 3) if self.quick else (0.5, 5)
        (ys, steps, ok), timing = h.time_call(
            compiled, *args, budget_s=budget[0], max_calls=budget[1]
        )
        if saving_fn is not None:
            saving, _, _ = self._compile((key, "saving"), saving_fn, args)
            (ys, steps_saving, ok_saving), timing_saving = h.time_call(saving, *args, max_calls=1)
            ok = ok and ok_saving and int(steps_saving) == int(steps)
            row["wall_saving_s"] = timing_saving.best
        err = self.energy(ys)
        steps = int(steps)
        row.update(
            problem=self.problem.name,
            steps=steps,
            force_evals=row.pop("evals")(steps),
            wall_s=timing.best,
            wall_median_s=timing.median,
            calls=len(timing.times),
            compile_s=compile_s,
            compile_shared=shared,
            ok=bool(ok),
            energy_error=float(err.max_error),
            energy_drift=float(err.drift),
            phase_error=_phase_error(_last(ys), self.reference["y"], self.reference["scale"]),
        )
        self.rows.append(row)
        if self.problem.name == "kepler":
            self.series[(row["method"], row["param"])] = np.asarray(self.relative_energy(ys))
        self.progress.update(f"{self.problem.name} {row['method']}")

    def _compute_reference(self):
        self.reference = _reference(self.problem)
        self.progress.update(f"{self.problem.name} reference")

    def tasks(self):
        """The reference and every run of the sweep, as callables (so that the progress
        bar knows the total)."""
        p, quick, out = self.problem, self.quick, [self._compute_reference]
        interval = p.t_final / p.samples
        methods = _QUICK_METHODS if quick else ALL_METHODS
        for cls in methods:
            tab = cls.tableau
            for s in sorted({max(1, round(w / tab.force_evaluations)) for w in p.work}):
                row = dict(
                    method=cls.__name__,
                    family="structjax",
                    order=tab.order,
                    param_name="dt",
                    param=interval / s,
                    evals=lambda n, tab=tab: n * tab.force_evaluations + int(tab.fsal),
                )
                out.append(
                    functools.partial(
                        self.run, (cls, s), _structjax_fn(p, cls(), s), interval / s, **row
                    )
                )
        for s in p.work:
            row = dict(
                method="lax.scan Verlet (hand)",
                family="hand",
                order=2,
                param_name="dt",
                param=interval / s,
                evals=lambda n: n + 1,
            )
            out.append(
                functools.partial(self.run, ("hand", s), _hand_fn(p, s), interval / s, **row)
            )
        out += self._diffrax_fixed_tasks()
        for cls in _ADAPTIVE[::2] if quick else _ADAPTIVE:
            solver = cls()
            fn, saving_fn = (
                _diffrax_fn(p, solver, joint_term(p), adaptive=True, max_steps=10**7, save=save)
                for save in (False, True)
            )
            # + 3: one evaluation to start FSAL, two in diffrax's initial step selection.
            evals = lambda n, k=_new_stages(solver): k * n + 3  # noqa: E731
            for tol in (1e-8, 1e-12) if quick else _TOLERANCES:
                row = dict(
                    method=f"diffrax {cls.__name__}",
                    family="diffrax-adaptive",
                    order=solver.order(None),
                    param_name="rtol=atol",
                    param=tol,
                    evals=evals,
                )
                out.append(functools.partial(self.run, cls, fn, tol, saving_fn, **row))
        return out

    def _diffrax_fixed_tasks(self):
        p, interval = self.problem, self.problem.t_final / self.problem.samples
        levels = [w for w in p.work if p.samples * w <= _MAX_FIXED_DIFFRAX_STEPS]
        split, joint = p.terms, joint_term(p)
        contenders = [("diffeqsolve VelocityVerlet", si.VelocityVerlet(), split, 2, 1)]
        if not self.quick:
            contenders += [
                ("diffrax SemiImplicitEuler", diffrax.SemiImplicitEuler(), split, 1, 0),
                ("diffrax LeapfrogMidpoint", diffrax.LeapfrogMidpoint(), joint, 2, 0),
            ]
        elif p.name not in ("kepler", "fpu"):
            return []
        out = []
        for name, solver, terms, order, start in contenders:
            fn, saving_fn = (
                _diffrax_fn(
                    p,
                    solver,
                    terms,
                    adaptive=False,
                    save=save,
                    max_steps=p.samples * max(levels) + 16,
                )
                for save in (False, True)
            )
            for s in levels:
                row = dict(
                    method=name,
                    family="diffrax-fixed",
                    order=order,
                    param_name="dt",
                    param=interval / s,
                    evals=lambda n, start=start: n + start,
                )
                out.append(functools.partial(self.run, name, fn, interval / s, saving_fn, **row))
        return out


# --- floors and the stage-loop study ----------------------------------------------------


def _speed_limit(problem, num_steps: int, dt: float, rounds: int):
    """solve_fixed + VelocityVerlet against the hand-written scan, interleaved round by
    round; and the same solver through `diffrax.diffeqsolve` (timed apart, on fewer steps),
    saving only the end state, then saving at 1000 times."""
    terms, y0, dt = problem.terms, problem.y0, jnp.asarray(dt)

    def fixed(y0, dt):
        return si.solve_fixed(terms, si.VelocityVerlet(), y0, dt=dt, num_steps=num_steps).y1

    def hand(y0, dt):
        return verlet_scan(problem, y0, dt, num_steps)

    def hand_unrolled(y0, dt):
        return verlet_scan(problem, y0, dt, num_steps, unroll=8)

    def hand_merged(y0, dt):
        return verlet_merged_scan(problem, y0, dt, num_steps)

    n_dfx = min(num_steps, 200_000)

    def diffeqsolve(saveat):
        def f(y0, dt):
            return diffrax.diffeqsolve(
                terms,
                si.VelocityVerlet(),
                0.0,
                n_dfx * dt,
                dt,
                y0,
                saveat=saveat,
                max_steps=n_dfx + 16,
            ).ys

        return f

    ts = np.linspace(0.0, n_dfx * float(dt), 1000) * (1 - 1e-12)  # inside [t0, t1]
    fns = dict(
        solve_fixed=fixed,
        hand=hand,
        hand_unroll8=hand_unrolled,
        hand_merged=hand_merged,
        diffeqsolve=diffeqsolve(diffrax.SaveAt(t1=True)),
        diffeqsolve_saving=diffeqsolve(diffrax.SaveAt(ts=ts)),
    )
    compiled = {k: h.compile_fn(f, y0, dt) for k, f in fns.items()}
    timings = h.time_interleaved(
        {k: (compiled[k][0], (y0, dt)) for k in ("solve_fixed", "hand")}, rounds
    )
    ns = {k: t.best / num_steps * 1e9 for k, t in timings.items()}
    for k in ("hand_unroll8", "hand_merged"):
        ns[k] = h.time_call(compiled[k][0], y0, dt)[1].best / num_steps * 1e9
    for k in ("diffeqsolve", "diffeqsolve_saving"):
        ns[k] = h.time_call(compiled[k][0], y0, dt, budget_s=1.0, max_calls=3)[1].best / n_dfx * 1e9
    paired = np.array(timings["solve_fixed"].times) / np.array(timings["hand"].times)
    a, b = compiled["solve_fixed"][0](y0, dt), compiled["hand"][0](y0, dt)
    return dict(
        problem=problem.name,
        num_steps=num_steps,
        diffeqsolve_steps=n_dfx,
        dt=float(dt),
        rounds=rounds,
        ns_per_step=ns,
        ratio=float(np.median(paired)),
        ratio_of_bests=ns["solve_fixed"] / ns["hand"],
        paired_ratios=paired.tolist(),
        compile_s={k: c[1] for k, c in compiled.items()},
        max_state_difference=max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(a, b)),
    )


def _stage_loop_study(problem, num_steps: int, dt: float, rounds: int):
    """`ExplicitSplitting(tableau, stage_loop=...)`: scanned against unrolled stages."""
    terms, y0, dt = problem.terms, problem.y0, jnp.asarray(dt)
    cases, rows = {}, []
    for cls in (si.KahanLi8, si.SofSpa10):
        for loop in ("scan", "unroll"):
            solver = si.ExplicitSplitting(cls.tableau, stage_loop=loop)

            def f(y0, dt, solver=solver):
                return si.solve_fixed(terms, solver, y0, dt=dt, num_steps=num_steps).y1

            compiled, compile_s = h.compile_fn(f, y0, dt)
            cases[(cls.__name__, loop)] = (compiled, (y0, dt))
            rows.append(
                dict(
                    problem=problem.name,
                    method=cls.__name__,
                    stage_loop=loop,
                    stages=cls.tableau.force_evaluations,
                    num_steps=num_steps,
                    compile_s=compile_s,
                )
            )
    timings = h.time_interleaved(cases, rounds)
    for row in rows:
        t = timings[(row["method"], row["stage_loop"])]
        row.update(wall_s=t.best, ns_per_stage=t.best / (num_steps * row["stages"]) * 1e9)
    return rows


def _floors(speed, rows, compile_times, kepler_title, quick) -> list[h.Floor]:
    floors = [
        h.Floor(
            f"(1) solve_fixed+VelocityVerlet / hand-written lax.scan, {s['problem']}",
            s["ratio"],
            1.05,
            f"median of {s['rounds']} interleaved paired ratios, {s['num_steps']} steps; "
            f"best {s['ns_per_step']['solve_fixed']:.1f} vs {s['ns_per_step']['hand']:.1f} "
            f"ns/step (ratio of bests {s['ratio_of_bests']:.3f})",
        )
        for s in speed
    ]
    kepler = [r for r in rows if r["problem"] == "kepler" and r["ok"]]

    def best(family):
        hits = [r for r in kepler if r["family"] == family and r["energy_error"] <= _ENERGY_TARGET]
        return min(hits, key=lambda r: r["wall_s"]) if hits else None

    sj, dfx = best("structjax"), best("diffrax-adaptive")
    where = f"quick run ({kepler_title}), the floor is for 1000 orbits; " if quick else ""
    if sj and dfx:
        detail = (
            f"{where}{sj['method']} dt={sj['param']:.3g}: {sj['wall_s']:.3g} s vs "
            f"{dfx['method']} tol={dfx['param']:g}: {dfx['wall_s']:.3g} s (structjax saving "
            "its samples, diffrax only the end state)"
        )
        ratio = sj["wall_s"] / dfx["wall_s"]
    else:
        detail, ratio = f"{where}structjax reached it: {bool(sj)}, diffrax: {bool(dfx)}", None
    floors.append(
        h.Floor(
            f"(2) Kepler, energy error <= {_ENERGY_TARGET:g}: best structjax "
            "wall / best diffrax adaptive wall",
            ratio,
            0.1,
            detail,
        )
    )
    worst = max(compile_times, key=lambda c: c[1])
    floors.append(
        h.Floor(
            "(3) compile time of any structjax solve_fixed solve, s",
            worst[1],
            2.0,
            f"slowest: {worst[0]}",
        )
    )
    return floors


# --- the suite --------------------------------------------------------------------------


def run(*, quick: bool) -> dict:
    """Run the suite; print tables and floors; write JSON and PNGs under results/."""
    problems = hm.problems(quick)
    h.say(f"integrators suite{' (quick)' if quick else ''}: float64 on {jax.devices()[0]}")
    n_speed, rounds = (100_000, 7) if quick else (400_000, 21)
    kepler, fpu = problems[0], problems[-1]
    speed_cases = [(fpu, n_speed, 0.02), (kepler, 10 * n_speed, 2 * math.pi / 500)]
    study_cases = [(kepler, n_speed // 2)] + ([] if quick else [(fpu, n_speed // 20)])
    sweeps = [_Sweep(problem, quick) for problem in problems]
    tasks = [t for sw in sweeps for t in sw.tasks()]
    progress = h.Progress(len(tasks) + len(speed_cases) + len(study_cases) + 3, "integrators")
    for sw in sweeps:
        sw.progress = progress
    # The timing comparisons first, in a fresh process, then the sweep.
    speed, study = [], []
    for problem, n, dt in speed_cases:
        speed.append(_speed_limit(problem, n, dt, rounds))
        progress.update(f"speed limit {problem.name}")
    for problem, n in study_cases:
        study += _stage_loop_study(problem, n, 0.01, rounds=5 if quick else 9)
        progress.update(f"stage loop {problem.name}")
    for task in tasks:
        task()
    geometric, geo_floors = geo.run(quick, progress)
    progress.close()

    rows = [r for sw in sweeps for r in sw.rows]
    info = {
        sw.problem.name: dict(
            title=sw.problem.title,
            source=sw.problem.source,
            t_final=sw.problem.t_final,
            samples=sw.problem.samples,
            reference=sw.reference["how"],
            reference_error=sw.reference["error"],
        )
        for sw in sweeps
    }
    report.print_tables(info, rows)
    report.print_speed_and_study(speed, study)
    compile_times = [
        (f"{r['problem']} {r['method']} dt={r['param']:.3g}", r["compile_s"])
        for r in rows
        if r["family"] == "structjax"
    ]
    compile_times += [
        (f"{s['problem']} solve_fixed VelocityVerlet", s["compile_s"]["solve_fixed"]) for s in speed
    ]
    compile_times += [
        (f"{r['problem']} {r['method']} stage_loop={r['stage_loop']}", r["compile_s"])
        for r in study
    ]
    floors = _floors(speed, rows, compile_times, kepler.title, quick) + geo_floors
    h.say("\nFloors (reported, never enforced):")
    for floor in floors:
        floor.report()
    dfx_compile = max(
        (r["compile_s"] for r in rows if r["family"].startswith("diffrax")), default=None
    )
    h.say(f"(for comparison, the slowest diffrax compile: {h.fmt(dfx_compile, '.2f')} s)")

    suffix = "_quick" if quick else ""
    results = dict(
        suite="integrators",
        quick=quick,
        machine=h.machine_info(),
        problems=info,
        runs=rows,
        speed_limit=speed,
        stage_loop=study,
        geometric=geometric,
        floors=[f.to_json() for f in floors],
        notes=dict(
            energy_error="max over the samples t_final*k/samples of |H - H0|/|H0| "
            "(structjax.check.energy_error); diffrax's samples come from its dense output",
            phase_error="at t_final: max(|q - q_ref| / Q, |p - p_ref| / P), Q and P the "
            "largest |q| and |p| along the reference orbit",
            wall_s="best of the calls made within a time budget; compile apart",
            force_evals="structjax: steps * force evaluations per step (+1 to start FSAL); "
            "diffrax adaptive: sol.stats['num_steps'] (accepted + rejected) * new stages "
            "per step + 3",
        ),
    )
    path = h.write_json(f"integrators{suffix}", results)
    pngs = report.write_plots(problems, rows, sweeps[0].series, suffix)
    pngs.append(geo.plot(geometric, suffix))
    h.say(f"\nwrote {path.relative_to(path.parents[2])}" + "".join(f", {p.name}" for p in pngs))
    return results
