"""Tables and PNG plots of the integrators suite: work-precision diagrams and Kepler's
energy error against time."""

import math

import numpy as np

from . import _harness as h


def print_tables(problem_info, rows):
    for name, info in problem_info.items():
        table = [
            [
                r["method"],
                f"{r['param_name']}={r['param']:.3g}",
                str(r["steps"]),
                str(r["force_evals"]),
                h.fmt(r["wall_s"], ".3g"),
                h.fmt(r["compile_s"], ".2f"),
                h.fmt(r["energy_error"]),
                h.fmt(r["phase_error"]) + ("" if r["ok"] else " FAILED"),
            ]
            for r in rows
            if r["problem"] == name
        ]
        h.print_table(
            f"{info['title']} (reference: {info['reference']})",
            [
                "method",
                "step/tol",
                "steps",
                "force evals",
                "wall s",
                "compile s",
                "energy err",
                "phase err",
            ],
            table,
        )
    h.say(
        "wall s: median of the timed calls, compile apart; every contender saves the same "
        "samples (solve_fixed as it goes, diffrax through SaveAt(ts))."
    )


def print_speed_and_study(speed, study):
    h.print_table(
        "Fixed-step loop cost, velocity Verlet (best ns/step; diffeqsolve on "
        f"{speed[0]['diffeqsolve_steps']} steps)",
        [
            "problem",
            "steps",
            "hand",
            "solve_fixed",
            "ratio (median paired)",
            "hand, unroll=8",
            "hand, merged kicks",
            "diffeqsolve, SaveAt(t1)",
            "diffeqsolve, SaveAt(ts) 1000 times",
            "max |difference|",
        ],
        [
            [
                s["problem"],
                str(s["num_steps"]),
                f"{s['ns_per_step']['hand']:.1f}",
                f"{s['ns_per_step']['solve_fixed']:.1f}",
                f"{s['ratio']:.3f}",
                f"{s['ns_per_step']['hand_unroll8']:.1f}",
                f"{s['ns_per_step']['hand_merged']:.1f}",
                f"{s['ns_per_step']['diffeqsolve']:.1f}",
                f"{s['ns_per_step']['diffeqsolve_saving']:.1f}",
                h.fmt(s["max_state_difference"]),
            ]
            for s in speed
        ],
    )
    h.say(
        "(max |difference|: solve_fixed against the hand loop at the end state; the two "
        "round differently, which chaos amplifies. 'hand': the FSAL loop that carries the "
        "force from step to step (the floor's reference); 'hand, unroll=8': the same with "
        "lax.scan(..., unroll=8); 'hand, merged kicks': the leapfrog form that carries "
        "p + h/2 F(q) instead of the force, as solve_fixed does -- on XLA:CPU carrying an "
        "autodiff force through the loop is what makes the FSAL loop slow)"
    )
    h.print_table(
        "Stage loop: ExplicitSplitting(tableau, stage_loop=...)",
        ["problem", "method", "stage_loop", "stages/step", "ns/stage", "compile s"],
        [
            [
                r["problem"],
                r["method"],
                r["stage_loop"],
                str(r["stages"]),
                f"{r['ns_per_stage']:.1f}",
                f"{r['compile_s']:.2f}",
            ]
            for r in study
        ],
    )


# --- plots ------------------------------------------------------------------------------

_OTHERS = {
    "diffrax SemiImplicitEuler": dict(color="grey", marker="v", ls="-."),
    "diffrax LeapfrogMidpoint": dict(color="saddlebrown", marker="^", ls="-."),
    "diffrax Tsit5": dict(color="red", marker="s", ls="--"),
    "diffrax Dopri5": dict(color="darkorange", marker="D", ls="--"),
    "diffrax Dopri8": dict(color="darkred", marker="P", ls="--"),
}


# A few structjax methods drawn boldly, the rest thin, so that the panels stay readable.
_HIGHLIGHT = {
    "VelocityVerlet": "tab:blue",
    "BlanesMoan4": "tab:green",
    "BlanesMoan6": "tab:olive",
    "KahanLi8": "tab:purple",
    "SofSpa10": "tab:cyan",
}
_OTHER_STRUCTJAX = "other structjax methods"


def _styles(rows):
    """`{method: (legend label, plot style)}`; structjax's methods first."""
    orders = {r["method"]: r["order"] for r in rows if r["family"] == "structjax"}
    styles = {}
    for name, color in _HIGHLIGHT.items():
        if name in orders:
            label = f"structjax {name} (order {orders[name]})"
            styles[name] = (label, dict(color=color, marker="o", ls="-", lw=1.8, ms=4))
    for name in sorted(orders, key=orders.get):
        if name not in styles:
            style = dict(color="tab:blue", marker=".", ls="-", lw=0.8, ms=3, alpha=0.35)
            styles[name] = (_OTHER_STRUCTJAX, style)
    for name, style in _OTHERS.items():
        styles[name] = (name, dict(style, lw=1.8, ms=5))
    return styles


def _work_precision(problems, rows, x_key, y_key, xlabel, ylabel, name):
    plt = h.pyplot()
    styles = _styles(rows)
    ncols = len(problems) + 1 if len(problems) <= 3 else 3  # the legend takes a panel
    nrows = math.ceil((len(problems) + 1) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.2 * nrows))
    axes = axes.ravel()
    legend = {}
    for ax, problem in zip(axes, problems):
        for method, (label, style) in styles.items():
            pts = sorted(
                (r[x_key], r[y_key])
                for r in rows
                if r["problem"] == problem.name
                and r["method"] == method
                and r["ok"]
                and np.isfinite(r[x_key])
                and np.isfinite(r[y_key])
                and 0 < r[x_key] <= 1
            )
            if pts:
                x, y = zip(*pts)
                legend.setdefault(label, ax.plot(x, y, **style)[0])
        ax.set(xscale="log", yscale="log", title=problem.title, xlabel=xlabel, ylabel=ylabel)
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[len(problems) :]:
        ax.axis("off")
    axes[len(problems)].legend(legend.values(), legend.keys(), loc="center", fontsize=8.5)
    fig.suptitle(f"{ylabel} against {xlabel}; errors above 1 (unstable runs) not drawn")
    fig.tight_layout()
    return h.save_figure(fig, name)


def _nearest(rows, target, key):
    return min(rows, key=lambda r: abs(math.log(r[key]) - math.log(target)))


def _kepler_energy(rows, series, orbits, name):
    """Energy error against time for velocity Verlet, KahanLi8 and Tsit5 at about equal work:
    the splittings' error stays bounded, the Runge–Kutta method's drifts."""
    plt = h.pyplot()
    kepler = [r for r in rows if r["problem"] == "kepler" and r["ok"]]
    tsit5 = [r for r in kepler if r["method"] == "diffrax Tsit5"]
    if not tsit5:
        return None
    picked = [_nearest(tsit5, 1e-10, "param")]
    for method in ("VelocityVerlet", "KahanLi8"):
        runs = [r for r in kepler if r["method"] == method]
        if runs:
            picked.insert(-1, _nearest(runs, picked[-1]["force_evals"], "force_evals"))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r, color in zip(picked, ("tab:blue", "tab:green", "tab:red")):
        err = np.abs(series[(r["method"], r["param"])])
        blocks = min(400, len(err))
        env = [b.max() for b in np.array_split(err, blocks)]
        label = (
            f"{r['method']} ({r['param_name']}={r['param']:.2g}, "
            f"{r['force_evals']:.2g} force evals)"
        )
        ax.plot(np.linspace(0, orbits, blocks), np.maximum(env, 1e-17), color=color, label=label)
    ax.set(
        yscale="log",
        xlabel="time (orbits)",
        ylabel=f"max |H - H0| / |H0| over {orbits / blocks:.3g} orbits",
        title="Kepler e=0.6: bounded energy error (splittings) against drift (Tsit5)",
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return h.save_figure(fig, name)


def write_plots(problems, rows, kepler_series, suffix: str):
    """Every plot of the suite; returns the paths written."""
    paths = [
        _work_precision(
            problems,
            rows,
            "energy_error",
            "wall_s",
            "max relative energy error",
            "wall time (s)",
            f"integrators_energy_vs_wall{suffix}",
        ),
        _work_precision(
            problems,
            rows,
            "phase_error",
            "force_evals",
            "phase-space error at end",
            "force evaluations",
            f"integrators_phase_vs_evals{suffix}",
        ),
    ]
    orbits = next(p for p in problems if p.name == "kepler").t1 / (2 * math.pi)
    path = _kepler_energy(rows, kepler_series, orbits, f"integrators_kepler_energy{suffix}")
    return paths + ([path] if path else [])
