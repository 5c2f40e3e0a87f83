"""The geometric part of the integrators suite: Lie-group, implicit symplectic and conformal
integrators against diffrax's adaptive Runge–Kutta methods.

1. Free rigid body on SO(3) (state (R^T, m), Euler's equations), and the heavy top
   (Euler–Poisson, its Casimirs): RKMK4 and Crouch–Grossman 3
   at fixed steps against Tsit5 and Dopri8 (adaptive, several tolerances) on the embedded
   matrix ODE: error at the end against wall time, and the distance from SO(3) over a long
   run at one fixed step.
2. The double pendulum in canonical coordinates (a non-separable H): Gauss–Legendre 4 and 6
   against Dopri8 (adaptive), the largest relative energy error over 10^4 periods against
   wall time. Floor: Gauss–Legendre 4 at equal energy error at least 3x faster than Dopri8.
3. A damped oscillator: a conformal-symplectic splitting against Tsit5 at the same step:
   the area of a small triangle of initial conditions against the exact $e^{-\\gamma t}$.
"""

import math
import time

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

import structjax.integrators as si
from structjax.check import lie_group_error

from . import _harness as h

INERTIA = jnp.array([1.0, 2.0, 3.5])
_GL_FLOOR = 3.0


def _timed(fn, *args):
    """Compile, then the best of two calls: (output, seconds)."""
    compiled, _ = h.compile_fn(fn, *args)
    jax.block_until_ready(compiled(*args))
    best = math.inf
    for _ in range(2):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - start)
    return out, best


# --- 1. rigid body ---------------------------------------------------------------------------


def _hat(w):
    z = jnp.zeros_like(w[0])
    return jnp.array([[z, -w[2], w[1]], [w[2], z, -w[0]], [-w[1], w[0], z]])


def _rigid_algebra(t, y, args):
    a = _hat(-y[1][:, 0] / INERTIA)
    return a, a


def _rigid_embedded(t, y, args):
    return jax.tree_util.tree_map(lambda m, v: m @ v, _rigid_algebra(t, y, args), y)


Y0 = (jnp.eye(3), jnp.array([[0.3], [1.0], [-0.4]]))


def _error(y, ref) -> float:
    return max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(y, ref))


def rigid_body(quick: bool) -> dict:
    out = _lie_race(_rigid_algebra, Y0, 20.0 if quick else 200.0,
                    lambda y: float(lie_group_error("SO", y[0])))  # fmt: skip
    return dict(out, drift=_so3_drift(quick))


_CHI, _MGL = jnp.array([0.0, 0.0, 1.0]), 2.0
Z0 = jnp.array([[0.3], [1.0], [-0.4], [0.6], [0.0], [0.8]])


def _heavy_top_algebra(t, z, args):
    """Euler–Poisson equations of the heavy top, z = (m, Gamma):
    m' = m x w + Mgl Gamma x chi, Gamma' = Gamma x w, w = I^-1 m, as z' = A(z) z with
    A = [[hat(-w), hat(-Mgl chi)], [0, hat(-w)]] (a Lie algebra whose group keeps the
    Casimirs |Gamma|^2 and m . Gamma)."""
    w = z[:3, 0] / INERTIA
    top = jnp.concatenate([_hat(-w), _hat(-_MGL * _CHI)], axis=1)
    bottom = jnp.concatenate([jnp.zeros((3, 3)), _hat(-w)], axis=1)
    return jnp.concatenate([top, bottom], axis=0)


def _casimir_error(z) -> float:
    return max(abs(float(jnp.sum(z[3:] ** 2) - jnp.sum(Z0[3:] ** 2))),
               abs(float(jnp.sum(z[:3] * z[3:]) - jnp.sum(Z0[:3] * Z0[3:]))))  # fmt: skip


def heavy_top(quick: bool) -> dict:
    # t = 20 in both modes: the top is chaotic here, and by t = 200 every method's error at
    # the end is O(1); the Casimirs are the structure measured.
    return _lie_race(_heavy_top_algebra, Z0, 20.0, _casimir_error)


def _lie_race(algebra, y0, t1, invariant) -> dict:
    """Lie-group methods at fixed steps against diffrax's adaptive RK on the embedded ODE:
    error at t1 (against Dopri8 at 1e-14), wall time, and `invariant(y)` (the distance from
    the group, or the Casimirs' error) at the end."""

    def embedded_vf(t, y, args):
        return jax.tree_util.tree_map(lambda m, v: m @ v, algebra(t, y, args), y)

    embedded = diffrax.ODETerm(embedded_vf)
    Y0 = y0  # noqa: N806
    tight = diffrax.PIDController(rtol=1e-14, atol=1e-14)
    ref = diffrax.diffeqsolve(embedded, diffrax.Dopri8(), 0.0, t1, 0.01, Y0, max_steps=10**7,
                              stepsize_controller=tight)  # fmt: skip
    ref = jax.tree_util.tree_map(lambda a: a[-1], ref.ys)
    rows = []
    term = diffrax.ODETerm(algebra)
    for name, make in [("RKMK4", lambda: si.RKMK(4)), ("CrouchGrossman3", si.CrouchGrossman3)]:
        for dt in (0.2, 0.1, 0.05, 0.025):
            n = round(t1 / dt)

            def go(y, s=make(), n=n, dt=dt):
                return si.solve_fixed(term, s, y, dt=dt, num_steps=n).y1

            y, wall = _timed(go, Y0)
            rows.append(dict(method=name, param=dt, error=_error(y, ref), wall_s=wall,
                             group_error=invariant(y)))  # fmt: skip
    for name, solver in [("diffrax Tsit5", diffrax.Tsit5()), ("diffrax Dopri8", diffrax.Dopri8())]:
        for tol in (1e-6, 1e-8, 1e-10, 1e-12):

            def run(y, solver=solver, tol=tol):
                return diffrax.diffeqsolve(embedded, solver, 0.0, t1, 0.01, y, max_steps=10**7,
                    stepsize_controller=diffrax.PIDController(rtol=tol, atol=tol)).ys  # fmt: skip

            ys, wall = _timed(run, Y0)
            y = jax.tree_util.tree_map(lambda a: a[-1], ys)
            rows.append(dict(method=name, param=tol, error=_error(y, ref), wall_s=wall,
                             group_error=invariant(y)))  # fmt: skip
    return dict(t1=t1, rows=rows)


def _so3_drift(quick: bool) -> dict:
    """The distance from SO(3) along a long rigid-body run at one fixed step."""
    n_long = 10_000 if quick else 100_000
    every = n_long // 100
    drift = {}
    for name, solver, tm in [("RKMK4", si.RKMK(4), diffrax.ODETerm(_rigid_algebra)),
                             ("Tsit5 (same fixed step)", diffrax.Tsit5(),
                              diffrax.ODETerm(_rigid_embedded))]:  # fmt: skip
        out = jax.jit(lambda y, solver=solver, tm=tm: si.solve_fixed(
            tm, solver, y, dt=0.05, num_steps=n_long, save_every=every).ys)(Y0)  # fmt: skip
        drift[name] = np.asarray(lie_group_error("SO", out[0])).tolist()
    return dict(dt=0.05, steps=n_long, every=every, error=drift)


# --- 2. double pendulum ----------------------------------------------------------------------


def _double_pendulum(q, p, args):
    """Unit masses and lengths, g = 1, angles from the downward vertical, canonical momenta
    (e.g. Goldstein, *Classical Mechanics*, or the standard Lagrangian-to-Hamiltonian
    transform): $H = \\frac{p_1^2 + 2p_2^2 - 2p_1p_2\\cos\\Delta}{2(1 + \\sin^2\\Delta)} -
    2\\cos\\theta_1 - \\cos\\theta_2$, $\\Delta = \\theta_1 - \\theta_2$. Not separable."""
    d = q[0] - q[1]
    kinetic = (p[0] ** 2 + 2 * p[1] ** 2 - 2 * p[0] * p[1] * jnp.cos(d)) / (
        2 * (1 + jnp.sin(d) ** 2)
    )
    return kinetic - 2 * jnp.cos(q[0]) - jnp.cos(q[1])


def double_pendulum(quick: bool) -> dict:
    # Small oscillation: the slow normal mode has omega^2 = 2 - sqrt(2).
    period = 2 * math.pi / math.sqrt(2 - math.sqrt(2))
    periods = 100 if quick else 10_000
    t1 = periods * period
    samples = 1000
    y0 = (jnp.array([0.3, 0.3]), jnp.array([0.0, 0.0]))
    e0 = float(_double_pendulum(*y0, None))
    term = si.HamiltonianTerm(_double_pendulum)

    def energy_err(qs, ps):
        e = jax.vmap(lambda q, p: _double_pendulum(q, p, None))(qs, ps)
        return float(jnp.max(jnp.abs(e - e0)) / abs(e0))

    rows = []
    newton = optx.Newton(rtol=1e-13, atol=1e-13)
    for label, stages, finder, dts in [
        ("GaussLegendre4", 2, None, (0.2, 0.1)),  # fixed-point stages (the default)
        ("GaussLegendre4 (Newton)", 2, newton, (0.2,)),
        ("GaussLegendre6", 3, None, (0.4, 0.2)),
    ]:
        for dt in dts:
            n = round(t1 / dt)
            every = max(1, n // samples)
            n = every * (n // every)

            def go(y, s=stages, f=finder, n=n, dt=dt, every=every):
                return si.solve_fixed(term, si.GaussLegendre(s, f), y, dt=dt, num_steps=n,
                                      save_every=every).ys  # fmt: skip

            ys, wall = _timed(go, y0)
            rows.append(dict(method=label, param=dt, energy_error=energy_err(*ys), wall_s=wall,
                             steps=n))  # fmt: skip
    for tol in (1e-9, 1e-10, 1e-11, 1e-12):

        def run(y, tol=tol):
            sol = diffrax.diffeqsolve(term, diffrax.Dopri8(), 0.0, t1, 0.1, y, max_steps=10**8,
                stepsize_controller=diffrax.PIDController(rtol=tol, atol=tol),
                saveat=diffrax.SaveAt(ts=jnp.linspace(0.0, t1, samples)))  # fmt: skip
            return sol.ys, sol.stats["num_steps"]

        (ys, steps), wall = _timed(run, y0)
        rows.append(dict(method="diffrax Dopri8", param=tol, energy_error=energy_err(*ys),
                         wall_s=wall, steps=int(steps)))  # fmt: skip
    return dict(periods=periods, t1=t1, rows=rows)


def gl_floor(dp: dict) -> h.Floor:
    """GL4's fastest run against the fastest Dopri8 run at least as accurate in energy."""
    gl = [r for r in dp["rows"] if r["method"].startswith("GaussLegendre4")]
    dop = [r for r in dp["rows"] if r["method"] == "diffrax Dopri8"]
    best = min(gl, key=lambda r: r["wall_s"])
    match = [r for r in dop if r["energy_error"] <= best["energy_error"]]
    if not match:
        name = "(G) double pendulum: GaussLegendre4 wall / Dopri8 wall at equal energy error"
        return h.Floor(name, None, 1 / _GL_FLOOR, "no Dopri8 tolerance reached GL4's error")
    d = min(match, key=lambda r: r["wall_s"])
    return h.Floor(
        f"(G) double pendulum, {dp['periods']} periods: GaussLegendre4 wall / Dopri8 wall at "
        "equal energy error",
        best["wall_s"] / d["wall_s"],
        1 / _GL_FLOOR,
        f"{best['method']} dt={best['param']:g}: {best['wall_s']:.3g} s, energy error "
        f"{best['energy_error']:.2e}; Dopri8 rtol={d['param']:g}: {d['wall_s']:.3g} s, "
        f"{d['energy_error']:.2e}",
    )


# --- 3. damped oscillator ------------------------------------------------------------------


def damped_area(quick: bool) -> dict:
    """q'' + gamma q' + q = 0: the area of a triangle of initial conditions (side 1e-4) after
    N steps, over the exact e^{-gamma t} times its initial area."""
    gamma, dt = 0.1, 0.05
    n = 2000 if quick else 20_000
    terms = si.separable_terms(lambda p, a: 0.5 * p**2, lambda q, a: 0.5 * q**2)
    tri = np.array([[1.0, 0.0], [1.0 + 1e-4, 0.0], [1.0, 1e-4]])

    def area(pts):
        c = pts - pts.mean(0)
        return 0.5 * abs(c[0, 0] * (c[1, 1] - c[2, 1]) + c[1, 0] * (c[2, 1] - c[0, 1])
                         + c[2, 0] * (c[0, 1] - c[1, 1]))  # fmt: skip

    def damped(t, y, args):
        return y[1], -y[0] - gamma * y[1]

    out = {}
    for name, solver, tm in [
        ("conformal BlanesMoan4General", si.conformal(si.BlanesMoan4General(), gamma), terms),
        ("conformal VelocityVerlet", si.conformal(si.VelocityVerlet(), gamma), terms),
        ("diffrax Tsit5 (same step)", diffrax.Tsit5(), diffrax.ODETerm(damped)),
    ]:
        every = n // 50
        pts = []
        for q, p in tri:
            sol = si.solve_fixed(tm, solver, (jnp.asarray(q), jnp.asarray(p)), dt=dt,
                                 num_steps=n, save_every=every)  # fmt: skip
            pts.append(np.stack([np.asarray(sol.ys[0]), np.asarray(sol.ys[1])], -1))
        pts = np.stack(pts, 1)  # (samples, 3, 2)
        ts = np.asarray(sol.ts)
        ratio = np.array([area(p) for p in pts]) / (area(tri) * np.exp(-gamma * ts))
        out[name] = dict(t=ts.tolist(), area_over_exact=ratio.tolist(),
                         worst=float(np.max(np.abs(ratio - 1))))  # fmt: skip
    return dict(gamma=gamma, dt=dt, steps=n, methods=out)


# --- report ---------------------------------------------------------------------------------


def run(quick: bool, progress) -> tuple[dict, list]:
    rb = rigid_body(quick)
    progress.update("rigid body")
    ht = heavy_top(quick)
    dp = double_pendulum(quick)
    progress.update("double pendulum")
    da = damped_area(quick)
    progress.update("damped oscillator")
    h.print_table(
        f"free rigid body on SO(3), t = {rb['t1']:g}: error at the end (vs Dopri8 at 1e-14)",
        ["method", "dt / tol", "max error", "wall s", "distance from SO(3)"],
        [
            [
                r["method"],
                f"{r['param']:g}",
                h.fmt(r["error"]),
                h.fmt(r["wall_s"], ".3g"),
                h.fmt(r["group_error"]),
            ]
            for r in rb["rows"]
        ],  # fmt: skip
    )
    h.print_table(
        f"heavy top (Euler-Poisson), t = {ht['t1']:g}: error at the end; the Casimirs "
        "|Gamma|^2 and m.Gamma",
        ["method", "dt / tol", "max error", "wall s", "Casimir error"],
        [
            [
                r["method"],
                f"{r['param']:g}",
                h.fmt(r["error"]),
                h.fmt(r["wall_s"], ".3g"),
                h.fmt(r["group_error"]),
            ]
            for r in ht["rows"]
        ],  # fmt: skip
    )
    d = rb["drift"]
    h.say(f"distance from SO(3) after {d['steps']} steps of {d['dt']}: "
          + ", ".join(f"{k} {v[-1]:.2e}" for k, v in d["error"].items()))  # fmt: skip
    h.print_table(
        f"double pendulum (non-separable H), {dp['periods']} periods: max relative energy error",
        ["method", "dt / tol", "energy error", "wall s", "steps"],
        [
            [
                r["method"],
                f"{r['param']:g}",
                h.fmt(r["energy_error"]),
                h.fmt(r["wall_s"], ".3g"),
                str(r["steps"]),
            ]
            for r in dp["rows"]
        ],  # fmt: skip
    )
    h.print_table(
        f"damped oscillator (gamma = {da['gamma']}), {da['steps']} steps of {da['dt']}: "
        "phase-space area / (exact e^(-gamma t) area)",
        ["method", "worst |ratio - 1|"],
        [[k, h.fmt(v["worst"])] for k, v in da["methods"].items()],
    )
    floors = [gl_floor(dp)]
    return dict(rigid_body=rb, heavy_top=ht, double_pendulum=dp, damped_area=da), floors


def plot(results: dict, suffix: str):
    plt = h.pyplot()
    fig, axes = plt.subplots(1, 5, figsize=(25, 4))
    rb, dp, da = results["rigid_body"], results["double_pendulum"], results["damped_area"]
    ht = results["heavy_top"]
    for name in dict.fromkeys(r["method"] for r in ht["rows"]):
        rows = [r for r in ht["rows"] if r["method"] == name]
        axes[4].loglog([r["wall_s"] for r in rows], [max(r["group_error"], 1e-17) for r in rows],
                       "o-", label=name)  # fmt: skip
    axes[4].set(xlabel="wall s", ylabel="Casimir error at the end", title="heavy top")
    axes[4].legend(fontsize=7)
    for name in dict.fromkeys(r["method"] for r in rb["rows"]):
        rows = [r for r in rb["rows"] if r["method"] == name]
        axes[0].loglog([r["wall_s"] for r in rows], [r["error"] for r in rows], "o-", label=name)
    axes[0].set(xlabel="wall s", ylabel="max error at the end", title="free rigid body")
    axes[0].legend(fontsize=7)
    d = rb["drift"]
    for name, err in d["error"].items():
        steps = d["every"] * np.arange(1, len(err) + 1)
        axes[1].semilogy(steps, np.maximum(err, 1e-17), label=name)
    axes[1].set(xlabel="steps", ylabel="||R^T R - I|| + |det R - 1|",
                title=f"distance from SO(3), dt = {d['dt']}")  # fmt: skip
    axes[1].legend(fontsize=7)
    for name in dict.fromkeys(r["method"] for r in dp["rows"]):
        rows = [r for r in dp["rows"] if r["method"] == name]
        axes[2].loglog([r["wall_s"] for r in rows], [r["energy_error"] for r in rows], "o-",
                       label=name)  # fmt: skip
    axes[2].set(xlabel="wall s", ylabel="max relative energy error",
                title=f"double pendulum, {dp['periods']} periods")  # fmt: skip
    axes[2].legend(fontsize=7)
    for name, v in da["methods"].items():
        axes[3].plot(v["t"], v["area_over_exact"], label=name)
    axes[3].set(xlabel="t", ylabel="area / exact", title="damped oscillator: phase-space area")
    axes[3].legend(fontsize=7)
    fig.tight_layout()
    return h.save_figure(fig, f"integrators_geometric{suffix}")
