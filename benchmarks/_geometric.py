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

import diffrax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

import structjax.integrators as si
import structjax.problems as sp
from structjax.benchmark import Setup, work_precision

from . import _harness as h

_GL_FLOOR = 3.0


def _rows(res, invariant) -> list[dict]:
    """Rows of one work-precision set: error at the end, wall time, `invariant(row)`."""
    return [
        dict(method=r["setup"], param=r["param"], error=r["final_error"], wall_s=r["wall_s"],
             group_error=invariant(r), steps=r["steps"], ok=r["ok"])
        for r in res.rows
    ]  # fmt: skip


# --- 1. rigid body and heavy top ----------------------------------------------------------


def _lie_setups(quick: bool) -> list[Setup]:
    """RKMK4 and Crouch–Grossman 3 against Tsit5 and Dopri8 (quick: RKMK4 and Dopri8)."""
    if quick:
        return [Setup(si.RKMK(4), dts=(0.2, 0.05), name="RKMK4"),
                Setup(diffrax.Dopri8(), tols=(1e-6, 1e-10), name="diffrax Dopri8")]  # fmt: skip
    dts, tols = (0.2, 0.1, 0.05, 0.025), (1e-6, 1e-8, 1e-10, 1e-12)
    return [
        Setup(si.RKMK(4), dts=dts, name="RKMK4"),
        Setup(si.CrouchGrossman3(), dts=dts, name="CrouchGrossman3"),
        Setup(diffrax.Tsit5(), tols=tols, name="diffrax Tsit5"),
        Setup(diffrax.Dopri8(), tols=tols, name="diffrax Dopri8"),
    ]


def rigid_body(quick: bool) -> dict:
    """Lie-group methods at fixed steps against diffrax's adaptive RK on the embedded matrix
    ODE: error at t1 (against the problem's Dopri8 reference), wall time, the distance from
    SO(3) at the end; and that distance along a long run at one fixed step."""
    pb = sp.free_rigid_body(t1=20.0 if quick else 200.0)
    res = work_precision(pb, _lie_setups(quick), samples=1, runs=2, progress=False)
    rows = _rows(res, lambda r: r["invariants"]["orthogonality"]["max_error"])
    return dict(t1=pb.t1, rows=rows, drift=_so3_drift(quick))


def heavy_top(quick: bool) -> dict:
    # t = 20 in both modes: the top is chaotic here, and by t = 200 every method's error at
    # the end is O(1); the Casimirs are the structure measured.
    pb = sp.heavy_top(t1=20.0)
    res = work_precision(pb, _lie_setups(quick), samples=1, runs=2, progress=False)

    def casimirs(r):
        inv = r["invariants"]
        return max(inv["casimir_gamma"]["max_error"], inv["casimir_m_gamma"]["max_error"])

    return dict(t1=pb.t1, rows=_rows(res, casimirs))


def _so3_drift(quick: bool) -> dict:
    """The distance from SO(3) along a long rigid-body run at one fixed step, RKMK4 against
    Tsit5 at the same step (a fixed-step Setup of a diffrax solver)."""
    dt, n_long = 0.05, 10_000 if quick else 100_000
    pb = sp.free_rigid_body(t1=dt * n_long)
    setups = [Setup(si.RKMK(4), dts=[dt], name="RKMK4"),
              Setup(diffrax.Tsit5(), dts=[dt], name="Tsit5 (same fixed step)")]  # fmt: skip
    res = work_precision(pb, setups, samples=100, runs=1, reference=False, progress=False)
    error = {r["setup"]: s["orthogonality"][1:] for r, s in zip(res.rows, res.series)}
    return dict(dt=dt, steps=n_long, every=n_long // 100, error=error)


# --- 2. double pendulum ----------------------------------------------------------------------


def double_pendulum(quick: bool) -> dict:
    """Gauss–Legendre 4 and 6 (fixed-point and Newton stages) against Dopri8 at several
    tolerances: the largest relative energy error over the run against wall time."""
    # Small oscillation: the slow normal mode has omega^2 = 2 - sqrt(2).
    period = 2 * math.pi / math.sqrt(2 - math.sqrt(2))
    periods = 100 if quick else 10_000
    pb = sp.double_pendulum(angles=(0.3, 0.3), t1=periods * period)
    newton = optx.Newton(rtol=1e-13, atol=1e-13)
    setups = [
        Setup(si.GaussLegendre(2), dts=(0.2,) if quick else (0.2, 0.1), name="GaussLegendre4"),
        Setup(si.GaussLegendre(3), dts=(0.4,) if quick else (0.4, 0.2), name="GaussLegendre6"),
        Setup(diffrax.Dopri8(), tols=(1e-9, 1e-10, 1e-11, 1e-12), name="diffrax Dopri8"),
    ]
    if not quick:
        setups.insert(
            1, Setup(si.GaussLegendre(2, newton), dts=(0.2,), name="GaussLegendre4 (Newton)")
        )
    res = work_precision(pb, setups, samples=1000, runs=2, max_steps=10**8, reference=False,
                         progress=False)  # fmt: skip
    rows = [
        dict(method=r["setup"], param=r["param"], steps=r["steps"], wall_s=r["wall_s"],
             energy_error=r["invariants"]["energy"]["max_error"])
        for r in res.rows
    ]  # fmt: skip
    return dict(periods=periods, t1=pb.t1, rows=rows)


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
