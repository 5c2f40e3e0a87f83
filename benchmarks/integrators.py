"""Integrators suite: structjax's splitting methods against diffrax and a hand-written loop.

`python -m benchmarks integrators [--quick]`, a thin script over `structjax.benchmark`: on five
Hamiltonian systems of `structjax.problems` (Kepler, Hénon–Heiles, pendulum, outer solar
system, FPUT chain) it runs `work_precision` with

- structjax's splitting methods at several step sizes (`solve_fixed`);
- diffrax's adaptive Tsit5, Dopri5, Dopri8 (`PIDController`, rtol = atol) at several
  tolerances, on the problem's first-order term;
- (full run) diffrax's fixed-step SemiImplicitEuler and LeapfrogMidpoint;

and reports per run the force evaluations, wall time (compile apart), the largest relative
energy error over the sampled trajectory, and the phase-space error at the end against the
problem's reference. Then the speed limit of a fixed-step loop (`solve_fixed` against a
hand-written FSAL velocity Verlet `lax.scan`, and `diffrax.diffeqsolve`), a stage-loop study
(`stage_loop="scan"` against `"unroll"`), the geometric part (`_geometric.py`), and the floors,
each printed PASS or MISS: they report, they never fail the run.
"""

import dataclasses
import math
import time

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import structjax.integrators as si
import structjax.problems as sp
from structjax.benchmark import Setup, work_precision
from structjax.integrators._methods import ALL_METHODS

from . import _geometric as geo, _harness as h, _integrators_report as report

_QUICK_METHODS = (si.VelocityVerlet, si.BlanesMoan4, si.KahanLi8)
# Tsitouras 2011 (Comput. Math. Appl. 62:770), Dormand & Prince 1980 (J. Comput. Appl. Math.
# 6:19), Prince & Dormand 1981 (J. Comput. Appl. Math. 7:67), as diffrax implements them.
_ADAPTIVE = (diffrax.Tsit5, diffrax.Dopri5, diffrax.Dopri8)
_TOLERANCES = (1e-6, 1e-8, 1e-10, 1e-12, 1e-13, 1e-14)
_ENERGY_TARGET = 1e-10  # floor (2)


@dataclasses.dataclass(frozen=True)
class Case:
    """A problem of the library, how finely its trajectory is sampled, and the work levels:
    force evaluations per sample interval; a method with `f` per step runs with
    `s = max(1, round(w / f))` steps per interval for each `w`, so that all methods span the
    same range of cost."""

    problem: sp.Problem
    samples: int
    work: tuple[int, ...]

    @property
    def interval(self) -> float:
        return self.problem.t1 / self.samples


def cases(quick: bool) -> list[Case]:
    """The problems of the sweep (quick: Kepler, the outer solar system, FPUT)."""
    q = quick
    out = [
        # A prime number of samples: successive orbits are sampled at different phases, so
        # the largest energy error sees the pericentre passages.
        Case(sp.kepler(eccentricity=0.6, orbits=20 if q else 1000), 157 if q else 7919,
             (64, 512) if q else (16, 32, 64, 128, 256, 512, 1024)),
        # Hénon–Heiles is chaotic at H = 1/8: a 1e-12 perturbation grows ~2000-fold by t = 100,
        # so the run stops there for the end state to stay comparable with the reference.
        Case(sp.henon_heiles(t1=20.0 if q else 100.0), 200 if q else 1000,
             (4, 32) if q else (2, 4, 8, 16, 32, 64, 128, 256)),
        Case(sp.pendulum(t1=100.0 if q else 1000.0), 499 if q else 4999,
             (4, 32) if q else (2, 4, 8, 16, 32, 64, 128, 256)),
        Case(sp.outer_solar_system(t1=20_000.0 if q else 200_000.0), 200 if q else 2000,
             (2, 16) if q else (1, 2, 4, 8, 16, 32, 64, 128)),
        Case(sp.fpu(particles=64, t1=200.0 if q else 2000.0), 200 if q else 2000,
             (4, 32) if q else (2, 4, 8, 16, 32, 64, 128, 256)),
    ]  # fmt: skip
    return (
        [c for c in out if c.problem.name in ("kepler", "outer_solar_system", "fpu")] if q else out
    )


def setups(case: Case, quick: bool) -> list[Setup]:
    """The contenders on one problem."""
    out = []
    for cls in _QUICK_METHODS if quick else ALL_METHODS:
        f = cls.tableau.force_evaluations
        steps = sorted({max(1, round(w / f)) for w in case.work})
        out.append(Setup(cls(), dts=[case.interval / s for s in steps], name=cls.__name__))
    if not quick:
        dts = [case.interval / w for w in case.work if case.samples * w <= 1_000_000]
        out += [
            Setup(diffrax.SemiImplicitEuler(), dts=dts, name="diffrax SemiImplicitEuler"),
            Setup(diffrax.LeapfrogMidpoint(), dts=dts, name="diffrax LeapfrogMidpoint"),
        ]
    for cls in _ADAPTIVE[::2] if quick else _ADAPTIVE:
        tols = (1e-8, 1e-12) if quick else _TOLERANCES
        out.append(Setup(cls(), tols=tols, name=f"diffrax {cls.__name__}"))
    return out


def _family(setup: Setup) -> str:
    if isinstance(setup.solver, si.AbstractStructuredSolver):
        return "structjax"
    return "diffrax-adaptive" if setup.adaptive else "diffrax-fixed"


def _rows(case: Case, res, families: dict) -> list[dict]:
    """The work-precision rows in the suite's table schema."""
    out = []
    for r in res.rows:
        out.append(
            dict(
                problem=case.problem.name,
                method=r["setup"],
                family=families[r["setup"]],
                order=r["order"],
                param_name="rtol=atol" if r["kind"] == "tol" else "dt",
                param=r["param"] if r["kind"] == "tol" else r["dt"],
                steps=r["steps"],
                force_evals=r["evaluations"],
                wall_s=r["wall_s"],
                wall_min_s=r["wall_min_s"],
                calls=r["runs"],
                compile_s=r["compile_s"],
                ok=r["ok"],
                energy_error=r["invariants"]["energy"]["max_error"],
                energy_drift=r["invariants"]["energy"]["drift"],
                phase_error=r["final_error"],
            )
        )
    return out


# --- the speed limit: solve_fixed against a hand-written loop --------------------------


def _force_velocity(problem: sp.Problem):
    """-dV/dq and dT/dp of a separable H, from the problem's H (the other argument is a
    constant that XLA folds away)."""
    hamiltonian, (q0, p0) = problem.hamiltonian, problem.y0
    force = lambda q: -jax.grad(hamiltonian, argnums=0)(q, jnp.zeros_like(p0), None)  # noqa: E731
    velocity = lambda p: jax.grad(hamiltonian, argnums=1)(jnp.zeros_like(q0), p, None)  # noqa: E731
    return force, velocity


def verlet_scan(problem, y0, dt, num_steps: int, unroll: int = 1):
    """Velocity Verlet written out by hand as a `lax.scan`, the force carried from one step
    to the next (FSAL): the loop `solve_fixed(..., VelocityVerlet())` should match."""
    force, velocity = _force_velocity(problem)

    def step(carry, _):
        q, p, f = carry
        p = p + (0.5 * dt) * f
        q = q + dt * velocity(p)
        f = force(q)
        p = p + (0.5 * dt) * f
        return (q, p, f), None

    q0, p0 = y0
    (q, p, _), _ = jax.lax.scan(step, (q0, p0, force(q0)), length=num_steps, unroll=unroll)
    return q, p


def verlet_merged_scan(problem, y0, dt, num_steps: int):
    """Velocity Verlet by hand in leapfrog form: the loop carries p + h/2 F(q) (the last
    half-kick of a step merged with the first of the next), no force; one force per step."""
    force, velocity = _force_velocity(problem)

    def step(carry, _):
        q, p_half = carry
        q = q + dt * velocity(p_half)
        return (q, p_half + dt * force(q)), None

    q0, p0 = y0
    (q, p_half), _ = jax.lax.scan(step, (q0, p0 + (0.5 * dt) * force(q0)), length=num_steps)
    return q, p_half - (0.5 * dt) * force(q)


def _speed_limit(problem, num_steps: int, dt: float, rounds: int):
    """solve_fixed + VelocityVerlet against the hand-written scan, interleaved round by
    round; and the same solver through `diffrax.diffeqsolve` (timed apart, on fewer steps),
    saving only the end state, then saving at 1000 times."""
    terms, y0, dt = problem.terms, problem.y0, jnp.asarray(dt)

    def fixed(y0, dt):
        return si.solve_fixed(terms, si.VelocityVerlet(), y0, dt=dt, num_steps=num_steps).y1

    n_dfx = min(num_steps, 200_000)

    def diffeqsolve(saveat):
        def f(y0, dt):
            return diffrax.diffeqsolve(terms, si.VelocityVerlet(), 0.0, n_dfx * dt, dt, y0,
                                       saveat=saveat, max_steps=n_dfx + 16).ys  # fmt: skip

        return f

    ts = np.linspace(0.0, n_dfx * float(dt), 1000) * (1 - 1e-12)  # inside [t0, t1]
    fns = dict(
        solve_fixed=fixed,
        hand=lambda y0, dt: verlet_scan(problem, y0, dt, num_steps),
        hand_unroll8=lambda y0, dt: verlet_scan(problem, y0, dt, num_steps, unroll=8),
        hand_merged=lambda y0, dt: verlet_merged_scan(problem, y0, dt, num_steps),
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
    cases_, rows = {}, []
    for cls in (si.KahanLi8, si.SofSpa10):
        for loop in ("scan", "unroll"):
            solver = si.ExplicitSplitting(cls.tableau, stage_loop=loop)

            def f(y0, dt, solver=solver):
                return si.solve_fixed(terms, solver, y0, dt=dt, num_steps=num_steps).y1

            compiled, compile_s = h.compile_fn(f, y0, dt)
            cases_[(cls.__name__, loop)] = (compiled, (y0, dt))
            rows.append(dict(problem=problem.name, method=cls.__name__, stage_loop=loop,
                             stages=cls.tableau.force_evaluations, num_steps=num_steps,
                             compile_s=compile_s))  # fmt: skip
    timings = h.time_interleaved(cases_, rounds)
    for row in rows:
        t = timings[(row["method"], row["stage_loop"])]
        row.update(wall_s=t.best, ns_per_stage=t.best / (num_steps * row["stages"]) * 1e9)
    return rows


# --- floors ---------------------------------------------------------------------------


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
            f"{dfx['method']} tol={dfx['param']:g}: {dfx['wall_s']:.3g} s (both saving the "
            "same samples)"
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
        )  # fmt: skip
    )
    return floors


# --- the suite --------------------------------------------------------------------------


def run(*, quick: bool) -> dict:
    """Run the suite; print tables and floors; write JSON and PNGs under results/."""
    start = time.perf_counter()
    h.say(f"integrators suite{' (quick)' if quick else ''}: float64 on {jax.devices()[0]}")
    all_cases = cases(quick)
    kepler, fpu = all_cases[0].problem, all_cases[-1].problem
    n_speed, rounds = (100_000, 7) if quick else (400_000, 21)
    speed_cases = [(fpu, n_speed, 0.02), (kepler, 10 * n_speed, 2 * math.pi / 500)]
    study_cases = [(kepler, n_speed // 2)] + ([] if quick else [(fpu, n_speed // 20)])
    progress = h.Progress(len(speed_cases) + len(study_cases) + len(all_cases) + 4, "integrators")
    # The timing comparisons first, in a fresh process, then the work-precision sets.
    speed, study = [], []
    for problem, n, dt in speed_cases:
        speed.append(_speed_limit(problem, n, dt, rounds))
        progress.update(f"speed limit {problem.name}")
    for problem, n in study_cases:
        study += _stage_loop_study(problem, n, 0.01, rounds=5 if quick else 9)
        progress.update(f"stage loop {problem.name}")
    rows, sets, kepler_series = [], {}, {}
    for case in all_cases:
        contenders = setups(case, quick)
        res = work_precision(case.problem, contenders, samples=case.samples,
                             runs=3 if quick else 5, progress=False)  # fmt: skip
        families = {s.label: _family(s) for s in contenders}
        rows += _rows(case, res, families)
        # The rows only: the trajectories' series (and their times) are for the plots, and
        # would make the JSON hundreds of MB on the full run.
        sets[case.problem.name] = {k: v for k, v in res.to_dict().items()
                                   if k not in ("series", "times")}  # fmt: skip
        if case.problem.name == "kepler":
            for r, s in zip(res.rows, res.series):
                param = r["param"] if r["kind"] == "tol" else r["dt"]
                kepler_series[(r["setup"], param)] = np.asarray(s["energy"])
        progress.update(f"work-precision {case.problem.name}")
    geometric, geo_floors = geo.run(quick, progress)
    progress.close()

    info = {
        c.problem.name: dict(
            title=c.problem.title,
            source=c.problem.source,
            t_final=c.problem.t1,
            samples=c.samples,
            reference="exact" if c.problem.exact is not None
            else f"diffrax Dopri8 at rtol = atol = {c.problem.reference_tol:g}",
        )
        for c in all_cases
    }  # fmt: skip
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
    dfx_compile = max(
        (r["compile_s"] for r in rows if r["family"].startswith("diffrax")), default=None
    )
    h.say(f"(for comparison, the slowest diffrax compile: {h.fmt(dfx_compile, '.2f')} s)")
    problems = [c.problem for c in all_cases]

    def plots(suffix):
        pngs = report.write_plots(problems, rows, kepler_series, suffix)
        return [*pngs, geo.plot(geometric, suffix)]

    return h.finish(
        "integrators",
        quick,
        dict(
            problems=info,
            runs=rows,
            work_precision=sets,
            speed_limit=speed,
            stage_loop=study,
            geometric=geometric,
            # The suite's own time up to the JSON (the plots follow it).
            measured_s=time.perf_counter() - start,
        ),
        floors,
        plots,
        notes=dict(
            energy_error="max over the samples t_final*k/samples of |H - H0|/|H0| "
            "(structjax.benchmark.work_precision); every contender saves the same samples",
            phase_error="at t_final: per leaf |y - y_ref| / max_t |y_ref|, the larger of q "
            "and p, against the problem's reference (structjax.problems)",
            wall_s="median of the timed calls; compile apart",
            force_evals="structjax.benchmark.evaluations: splittings, steps * force "
            "evaluations per step (+1 to start FSAL); diffrax adaptive, attempted steps * new "
            "stages per step + 1 (FSAL)",
        ),
    )
