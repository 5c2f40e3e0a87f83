"""Guards suite: what structjax's run-time checks cost, and optimisers over many leaves.

`python -m benchmarks guards [--quick]`. Everything runs in **float32** (typical training). It
measures, each contender timed interleaved round by round against its reference in the same run:

1. the guard cost of a `riemannian_adam` step (a pytree of a Stiefel, a sphere and an SPD
   weight plus a Euclidean bias, inside a jitted `lax.scan`): guarded (the default) against
   the same optimiser and manifolds built with `checks=False`;
2. the guard cost of a `solve_fixed` step: `VelocityVerlet` on a 64-dof anharmonic chain and
   `GaussLegendre(2)` on a pendulum (an implicit method, whose failed-step check is a guard),
   `checks=True` against `checks=False`;
3. many leaves: `riemannian_adam` over a pytree of 200 weights on mixed manifolds (Stiefel,
   sphere, SPD, Euclidean) against `optax.adam` on the same tree: compile time (trace + lower
   + XLA) of one update step, and the time of one step.

Floors (issue 13): guards cost under 3% (ratio <= 1.03); at 200 leaves compile time within 2x
and step time within 1.5x of `optax.adam`'s. Floors are printed PASS or MISS; they report, they
never fail the run.
"""

import time

import jax
import jax.numpy as jnp
import optax

import structjax.integrators as si
import structjax.manifolds as sm
from structjax.optim import riemannian_adam

from . import _harness as h

F32 = jnp.float32
_GUARD_FLOOR, _COMPILE_FLOOR, _STEP_FLOOR = 1.03, 2.0, 1.5


def _ratio(cases: dict, rounds: int) -> tuple[dict, float]:
    """Interleaved best times of `guarded` and `unguarded`, and their ratio."""
    t = h.time_interleaved(cases, rounds)
    return {k: v.best for k, v in t.items()}, t["guarded"].best / t["unguarded"].best


# --- 1. riemannian_adam ---------------------------------------------------------------------


def _adam_params(checks: bool, n: int):
    ms = {
        "W": sm.Stiefel(n, n // 8, checks=checks),
        "s": sm.Sphere(n, checks=checks),
        "P": sm.SymmetricPositiveDefinite(8, checks=checks),
        "b": None,
    }
    key = jax.random.split(jax.random.key(0), 3)
    params = {
        "W": ms["W"].random_point(key[0], dtype=F32),
        "s": ms["s"].random_point(key[1], dtype=F32),
        "P": ms["P"].random_point(key[2], dtype=F32),
        "b": jnp.zeros((n,), F32),
    }
    return ms, params


def _adam_loss(p):
    w, s, pp, b = p["W"], p["s"], p["P"], p["b"]
    return (
        -jnp.sum(jnp.sin(w[: w.shape[1]]) * w[: w.shape[1]])
        + jnp.sum(s * jnp.arange(s.shape[0], dtype=F32)) / s.shape[0]
        + jnp.trace(pp) - jnp.sum(jnp.log(jnp.diagonal(jnp.linalg.cholesky(pp))))
        + jnp.sum((b - 0.1) ** 2)
    )  # fmt: skip


def _adam_run(checks: bool, n: int, steps: int):
    ms, params = _adam_params(checks, n)
    opt = riemannian_adam(1e-2, manifolds=ms, checks=checks)
    run = h.train_steps(lambda p, _: _adam_loss(p), opt, steps=steps, record=False)
    state = opt.init(params)
    compiled, _ = h.compile_fn(run, params, state)
    return compiled, (params, state)


def _guard_cost_adam(quick: bool) -> dict:
    n, steps, rounds = (256, 50, 15) if quick else (512, 200, 30)
    cases = {name: _adam_run(name == "guarded", n, steps) for name in ("guarded", "unguarded")}
    best, ratio = _ratio(cases, rounds)
    return dict(n=n, steps=steps, step_s={k: v / steps for k, v in best.items()}, ratio=ratio)


# --- 2. solve_fixed -------------------------------------------------------------------------


def _chain_problem(dof: int):
    def kinetic(p, args):
        return 0.5 * jnp.sum(p**2)

    def potential(q, args):
        d = jnp.diff(q, prepend=0.0)
        return jnp.sum(0.5 * d**2 + 0.25 * d**4)

    q0 = jnp.sin(jnp.linspace(0.0, 3.0, dof, dtype=F32))
    return si.separable_terms(kinetic, potential), (q0, jnp.zeros_like(q0)), si.VelocityVerlet()


def _pendulum_problem():
    def h_fn(q, p, args):
        return 0.5 * jnp.sum(p**2) - jnp.sum(jnp.cos(q))

    terms = si.HamiltonianTerm(h_fn)
    y0 = (jnp.array([1.0, 0.5], F32), jnp.array([0.0, 0.3], F32))
    return terms, y0, si.GaussLegendre(2)


def _solve_run(problem, checks: bool, steps: int):
    terms, y0, solver = problem

    def run(y0):
        return si.solve_fixed(terms, solver, y0, dt=0.01, num_steps=steps, checks=checks).y1

    compiled, _ = h.compile_fn(run, y0)
    return compiled, (y0,)


def _guard_cost_solve(quick: bool) -> dict:
    steps, rounds = (2000, 15) if quick else (20000, 30)
    out = {}
    for label, problem in (("VelocityVerlet, 64-dof chain", _chain_problem(64)),
                           ("GaussLegendre(2), pendulum", _pendulum_problem())):  # fmt: skip
        n = steps if "Verlet" in label else steps // 4
        cases = {
            name: _solve_run(problem, name == "guarded", n) for name in ("guarded", "unguarded")
        }
        best, ratio = _ratio(cases, rounds)
        out[label] = dict(steps=n, step_s={k: v / n for k, v in best.items()}, ratio=ratio)
    return out


# --- 3. many leaves -------------------------------------------------------------------------


def _many_leaves(leaves: int):
    """`leaves` weights cycling through four manifolds and two sizes each."""
    kinds = [
        (sm.Stiefel(64, 16), (64, 16)), (sm.Stiefel(32, 8), (32, 8)),
        (sm.Sphere(32), (32,)), (sm.Sphere(16), (16,)),
        (sm.SymmetricPositiveDefinite(8), (8, 8)), (sm.SymmetricPositiveDefinite(4), (4, 4)),
        (None, (64,)), (None, (32, 32)),
    ]  # fmt: skip
    keys = jax.random.split(jax.random.key(1), leaves)
    ms, params = {}, {}
    for i in range(leaves):
        m, shape = kinds[i % len(kinds)]
        name = f"w{i:03d}"
        ms[name] = m
        params[name] = (
            jax.random.normal(keys[i], shape, F32) * 0.1
            if m is None
            else m.random_point(keys[i], dtype=F32)
        )
    return ms, params


def _leaf_loss(params):
    return sum(jnp.sum(jnp.sin(x)) for x in jax.tree_util.tree_leaves(params))


def _leaves_case(opt, params):
    def step(p, st):
        u, st = opt.update(jax.grad(_leaf_loss)(p), st, p)
        return optax.apply_updates(p, u), st

    state = opt.init(params)
    jax.clear_caches()
    start = time.perf_counter()
    compiled = jax.jit(step).lower(params, state).compile()
    return compiled, (params, state), time.perf_counter() - start


def _leaves(quick: bool) -> dict:
    leaves, rounds = (200, 10) if quick else (200, 40)
    ms, params = _many_leaves(leaves)
    out = {}
    cases = {}
    for name, opt in (("optax.adam", optax.adam(1e-3)),
                      ("riemannian_adam", riemannian_adam(1e-3, manifolds=ms))):  # fmt: skip
        compiled, args, seconds = _leaves_case(opt, params)
        cases[name] = (compiled, args)
        out[name] = dict(compile_s=seconds)
    t = h.time_interleaved(cases, rounds)
    for name in cases:
        out[name]["step_s"] = t[name].best
    out["compile_ratio"] = out["riemannian_adam"]["compile_s"] / out["optax.adam"]["compile_s"]
    out["step_ratio"] = out["riemannian_adam"]["step_s"] / out["optax.adam"]["step_s"]
    out["leaves"] = leaves
    return out


# --- run --------------------------------------------------------------------------------------


def _plot(floors: list, suffix: str):
    plt = h.pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    names = [f.name for f in floors]
    values = [f.measured for f in floors]
    colors = ["tab:green" if f.passed else "tab:red" for f in floors]
    ax.barh(names, values, color=colors)
    for i, f in enumerate(floors):
        ax.plot([f.threshold] * 2, [i - 0.4, i + 0.4], color="k", lw=2)
        ax.text(f.measured, i, f"  {f.measured:.3f}", va="center", fontsize=8)
    ax.axvline(1.0, color="gray", lw=0.8, ls=":")
    ax.set_xlabel("ratio to the reference in the same run (black bar: floor)")
    ax.set_title("structjax guards and many-leaf optimisers (float32, lower is better)")
    ax.invert_yaxis()
    return h.save_figure(fig, f"guards{suffix}")


def run(*, quick: bool) -> dict:
    progress = h.Progress(3, "guards")
    adam = _guard_cost_adam(quick)
    progress.update("riemannian_adam guards")
    solve = _guard_cost_solve(quick)
    progress.update("solve_fixed guards")
    leaves = _leaves(quick)
    progress.update("200 leaves")
    progress.close()

    h.print_table(
        "Guard cost: one step, guarded vs checks=False (float32, best of interleaved rounds)",
        ["step", "guarded", "unguarded", "ratio"],
        [[f"riemannian_adam, Stiefel({adam['n']},{adam['n'] // 8}) + sphere + SPD + bias",
          h.fmt(adam["step_s"]["guarded"]), h.fmt(adam["step_s"]["unguarded"]),
          f"{adam['ratio']:.3f}"]]
        + [[f"solve_fixed, {k}", h.fmt(v["step_s"]["guarded"]), h.fmt(v["step_s"]["unguarded"]),
            f"{v['ratio']:.3f}"] for k, v in solve.items()],
    )  # fmt: skip
    h.print_table(
        f"{leaves['leaves']} leaves on mixed manifolds: riemannian_adam vs optax.adam",
        ["optimiser", "compile s", "step s"],
        [[k, f"{leaves[k]['compile_s']:.2f}", h.fmt(leaves[k]["step_s"])]
         for k in ("optax.adam", "riemannian_adam")],
    )  # fmt: skip
    floors = [
        h.Floor("guard cost, riemannian_adam", adam["ratio"], _GUARD_FLOOR,
                "guarded / checks=False step time"),
        *[h.Floor(f"guard cost, solve_fixed {k.split(',')[0]}", v["ratio"], _GUARD_FLOOR,
                  "guarded / checks=False step time") for k, v in solve.items()],
        h.Floor("200 leaves, compile", leaves["compile_ratio"], _COMPILE_FLOOR,
                "riemannian_adam / optax.adam compile time"),
        h.Floor("200 leaves, step", leaves["step_ratio"], _STEP_FLOOR,
                "riemannian_adam / optax.adam step time"),
    ]  # fmt: skip
    return h.finish(
        "guards",
        quick,
        dict(guard_cost=dict(riemannian_adam=adam, solve_fixed=solve), leaves=leaves),
        floors,
        lambda suffix: [_plot(floors, suffix)],
    )
