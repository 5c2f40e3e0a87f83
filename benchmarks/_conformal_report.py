"""Tables and plots of the conformal suite."""

import numpy as np

from . import _harness as h

_COLOURS = {
    "sgd+momentum": "C7",
    "sgd+nesterov": "C8",
    "adam": "C5",
    "conformal_momentum": "C0",
    "relativistic_gd": "C3",
    "hamiltonian_descent": "C2",
}


def _setting(s: dict) -> str:
    extra = f", d={s['extra']:g}" if s["extra"] else ""
    return f"eps={s['eps']:.3g}, mu={s['mu']:g}{extra}"


def print_tables(races, mlp, stability, overhead, ratios):
    for race in races:
        h.print_table(
            f"{race['problem']}: to f - f* <= {race['tol']:.2g} (best of each method's grid, "
            f"{race['steps']} steps at most)",
            ["method", "iterations", "wall ms", "us/step", "final gap", "reached", "best setting"],
            [
                [
                    m,
                    h.fmt(r["iterations"], "d"),
                    h.fmt(r["wall_to_tol_ms"], ".3g"),
                    h.fmt(r["us_per_step"], ".3g"),
                    h.fmt(r["final_gap"]),
                    f"{r['reached']}/{r['settings']}",
                    _setting(r["setting"]),
                ]
                for m, r in race["methods"].items()
            ],
        )
    h.print_table(
        "digits MLP (64-128-128-10, tanh, batch 128, float32): best of each method's grid",
        ["method", "steps", "train loss", "test acc", "best setting"],
        [
            [
                m,
                str(r["steps"]),
                h.fmt(r["train_loss"], ".4f"),
                h.fmt(r["test_accuracy"], ".4f"),
                _setting(r["setting"]),
            ]
            for m, r in mlp.items()
        ],  # fmt: skip
    )
    for s in stability:
        top = max(s["eps"])

        def cell(v):
            return (">= " if v == top else "") + h.fmt(v, ".3g")

        h.print_table(
            f"largest stable / converging eps at mu = {s['mu']}, {s['problem']} "
            f"({s['steps']} steps; stable: f below its start, converging: gap <= 1e-6 x start)",
            ["method", "largest stable eps", "largest converging eps"],
            [
                [m, cell(r["largest_stable_eps"]), cell(r["largest_converging_eps"])]
                for m, r in s["methods"].items()
            ],
        )
    for label, us in overhead.items():
        h.print_table(
            f"per-step cost, {label}",
            ["method", "us/step (best)", "/ sgd+momentum (median paired)"],
            [[m, h.fmt(v, ".1f"), h.fmt(ratios[label][m], ".3f")] for m, v in us.items()],
        )


def write_plots(races, stability, overhead, suffix):
    plt = h.pyplot()
    paths = []
    fig, axes = plt.subplots(1, len(races), figsize=(5 * len(races), 4))
    for ax, race in zip(np.atleast_1d(axes), races):
        for m, r in race["methods"].items():
            curve = np.maximum(np.asarray(r["curve"], float), 1e-300)
            its = np.arange(1, len(curve) + 1) * r["curve_every"]
            ax.semilogy(its, curve, color=_COLOURS[m], lw=2 if m in _COLOURS else 1, label=m)
        ax.axhline(race["tol"], color="k", ls=":", lw=1)
        ax.set_title(race["problem"], fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_ylabel("f - f*")
        ax.set_ylim(max(race["tol"] * 1e-4, 1e-300), None)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.suptitle("Convergence at each method's best setting (dotted: tolerance)")
    paths.append(h.save_figure(fig, f"conformal_convergence{suffix}"))

    fig, axes = plt.subplots(1, len(stability), figsize=(6 * len(stability), 4))
    for ax, s in zip(np.atleast_1d(axes), stability):
        eps = np.asarray(s["eps"])
        for m, r in s["methods"].items():
            base = m.split(" ")[0]
            final = np.minimum(np.asarray(r["final"], float), 1e30)
            ls = "-" if "d=0.1" in m or " " not in m else "--"
            ax.loglog(eps, np.clip(final, 1e-30, 1e30), marker=".", label=m,
                      color=_COLOURS.get(base), ls=ls)  # fmt: skip
        ax.axhline(s["f0"], color="k", ls=":", lw=1)
        ax.set_title(f"{s['problem']}, mu = {s['mu']}", fontsize=9)
        ax.set_xlabel("eps (gradient step)")
        ax.set_ylabel(f"f - f* after {s['steps']} steps (clipped to [1e-30, 1e30])")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.suptitle("Step-size stability at a common (eps, mu); dotted: the starting value")
    paths.append(h.save_figure(fig, f"conformal_stability{suffix}"))

    fig, axes = plt.subplots(1, len(overhead), figsize=(6 * len(overhead), 3.5))
    for ax, (label, us) in zip(np.atleast_1d(axes), overhead.items()):
        keys = list(us)
        ax.bar(keys, [us[k] for k in keys], color=[_COLOURS[k] for k in keys])
        ax.axhline(1.1 * us["sgd+momentum"], color="k", ls=":", lw=1)
        ax.set_title(label, fontsize=9)
        ax.set_ylabel("us / step")
        ax.tick_params(axis="x", rotation=30, labelsize=7)
    fig.suptitle("Per-step cost (dotted: 1.1 x optax.sgd with momentum)")
    paths.append(h.save_figure(fig, f"conformal_overhead{suffix}"))
    return paths
