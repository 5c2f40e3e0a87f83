"""Tables and plots of the nn suite."""

import numpy as np

from . import _harness as h

_VARIANT_STYLE = {
    "stored": dict(color="C7", ls="-", marker="o"),
    "reversible (vmap)": dict(color="C3", ls="--", marker="s"),
    "reversible (batch in block)": dict(color="C0", ls="-", marker="^"),
}
_KIND_TITLE = {"revnet": "RevNet blocks", "verlet": "Verlet blocks"}
_ROLLOUT_STYLE = {
    "exact H, VelocityVerlet": dict(color="k", ls=":", lw=1),
    "exact H, Tsit5": dict(color="0.5", ls=":", lw=1),
    "HNN separable, VelocityVerlet": dict(color="C0", ls="-", lw=1.6),
    "HNN separable, Tsit5": dict(color="C0", ls="--", lw=1),
    "HNN general, GeneralizedLeapfrog": dict(color="C2", ls="-", lw=1.2),
    "MLP field, Tsit5": dict(color="C3", ls="-", lw=1.6),
    "GSympNet map": dict(color="C1", ls="-", lw=1.6),
    "MLP map (residual)": dict(color="C5", ls="-", lw=1.2),
}


def _mib(b) -> str:
    return f"{b / 2**20:.1f}"


def print_tables(memory, dynamics, density, lipschitz):
    for kind, rows in memory["kinds"].items():
        table = []
        for row in rows:
            for variant, v in row["variants"].items():
                table.append([
                    f"{row['depth']:>4}  {variant}",
                    _mib(v["temp_bytes"]),
                    _mib(v["argument_bytes"]),
                    _mib(v["output_bytes"]),
                    h.fmt(v.get("best_s", None) and v["best_s"] * 1e3, ".2f")
                    if v["ran"] else "not run",
                    h.fmt(v.get("ratio_to_stored"), ".2f"),
                    h.fmt(v["compile_s"], ".2f"),
                ])  # fmt: skip
        h.print_table(
            f"(1) {_KIND_TITLE[kind]}: gradient of a Reversible stack, batch "
            f"{memory['batch']}, dim {memory['dim']}, width {memory['width']}, float32",
            ["depth  variant", "temp MiB", "args MiB", "out MiB", "grad ms (best)",
             "/ stored", "compile s"],
            table,
        )  # fmt: skip
    rows = []
    reversible = memory["variants"][1:]
    for kind, per_depth in memory["agreement_float64"].items():
        for depth, a in per_depth.items():
            rows.append([f"{kind} depth {depth}", h.fmt(a["max_abs_grad"]),
                         *(h.fmt(a[v]) for v in reversible)])  # fmt: skip
    h.print_table(
        "(1) gradient agreement in float64: max |g_reversible - g_stored| (batch 32)",
        ["stack", "max |g_stored|", *reversible],
        rows,
    )

    for name, s in dynamics["systems"].items():
        rows = [
            [
                label,
                h.fmt(r["max_error_median"]),
                h.fmt(r["max_error_worst"]),
                h.fmt(r["final_error_median"]),
                h.fmt(r["drift_median"], ".1e"),
            ]
            for label, r in s["rollouts"].items()
        ]
        h.print_table(
            f"(2) {s['title']}: relative error of the true H over {dynamics['num_steps']} "
            f"steps of {dynamics['dt']} ({dynamics['held_out']} held-out ICs, "
            f"{s['train_points']} training points)",
            ["model, integrator", "max (median)", "max (worst)", "final (median)",
             "drift (median)"],
            rows,
        )  # fmt: skip
        train = ", ".join(
            f"{m} {t['final_loss']:.2e} ({t['train_s']:.1f} s)" for m, t in s["training"].items()
        )
        h.say(f"    final training MSE: {train}")
        h.say(f"    all rollouts, one jit: {s['rollouts_wall_s']:.1f} s (compile included)")
        sym = ", ".join(f"{m} {v:.1e}" for m, v in s["symplecticity_error"].items())
        h.say(f"    check.symplecticity_error of the trained one-step maps: {sym}")

    for ds, d in density["datasets"].items():
        rows = []
        for name, r in d["flows"].items():
            rows.append([
                name,
                h.fmt(r["test_ll"], ".3f"),
                h.fmt(r.get("inversion_error_float32")),
                h.fmt(r.get("inversion_error_float64")),
                h.fmt(r.get("log_det_error_float64")),
                h.fmt(r.get("train_s"), ".1f"),
            ])  # fmt: skip
        h.print_table(
            f"(3) {ds} ({d['train']} train / {d['test']} test, standardised): test "
            "log-likelihood, nats per sample",
            ["model", "test ll", "inv err f32", "inv err f64", "log-det err f64", "train s"],
            rows,
        )

    eps = lipschitz["eps"]
    rows = [
        [
            name,
            h.fmt(r["clean_accuracy"], ".3f"),
            *(h.fmt(r["certified"][e], ".3f") for e in eps),
            h.fmt(r["declared_bound"], ".3g"),
            h.fmt(r["lipschitz_lower_bound"], ".3f"),
            h.fmt(r["train_s"], ".1f"),
        ]
        for name, r in lipschitz["nets"].items()
    ]
    h.print_table(
        f"(4) digits (64 features in [0, 1], 10 classes), widths 64-{lipschitz['width']}-"
        f"{lipschitz['width']}-10: clean and certified accuracy at L2 radius eps",
        ["network", "clean", *(f"eps={e:g}" for e in eps), "L (bound)", "L lower", "train s"],
        rows,
    )


def write_plots(memory, dynamics, density, lipschitz, suffix):
    plt = h.pyplot()
    paths = []

    kinds = list(memory["kinds"])
    fig, axes = plt.subplots(len(kinds), 3, figsize=(15, 3.8 * len(kinds)), squeeze=False)
    for ax_row, kind in zip(axes, kinds):
        rows = memory["kinds"][kind]
        depths = [r["depth"] for r in rows]
        for variant in memory["variants"]:
            style = _VARIANT_STYLE[variant]
            temp = [r["variants"][variant]["temp_bytes"] / 2**20 for r in rows]
            ax_row[0].loglog(depths, temp, label=variant, **style)
            ran = [r for r in rows if r["variants"][variant]["ran"]]
            ax_row[1].loglog([r["depth"] for r in ran],
                             [r["variants"][variant]["best_s"] * 1e3 for r in ran],
                             label=variant, **style)  # fmt: skip
            if variant != "stored":
                ax_row[2].semilogx([r["depth"] for r in ran],
                                   [r["variants"][variant]["ratio_to_stored"] for r in ran],
                                   label=variant, **style)  # fmt: skip
        args = rows[0]["variants"]["stored"]["argument_bytes"] / 2**20
        ax_row[0].set_title(f"{_KIND_TITLE[kind]}: XLA temp memory of the gradient", fontsize=9)
        ax_row[0].set_ylabel(f"temp MiB (args at depth 8: {args:.2f} MiB)", fontsize=8)
        ax_row[1].set_title(f"{_KIND_TITLE[kind]}: gradient wall time (best)", fontsize=9)
        ax_row[1].set_ylabel("ms")
        ax_row[2].axhline(2.5, color="k", ls=":", lw=1)
        ax_row[2].axhline(1.0, color="0.7", lw=0.8)
        ax_row[2].set_title("gradient time / stored (dotted: floor 2.5)", fontsize=9)
        for ax in ax_row:
            ax.set_xlabel("depth (blocks)")
        ax_row[0].legend(fontsize=7)
    fig.suptitle(
        f"Reversible stacks, batch {memory['batch']}, dim {memory['dim']}, "
        f"width {memory['width']}, float32"
    )
    paths.append(h.save_figure(fig, f"nn_memory{suffix}"))

    systems = dynamics["systems"]
    fig, axes = plt.subplots(1, len(systems), figsize=(5.5 * len(systems), 4), squeeze=False)
    for ax, (name, s) in zip(axes[0], systems.items()):
        for label, r in s["rollouts"].items():
            steps = np.asarray(r["curve_steps"], float)
            curve = np.asarray([np.inf if v is None else v for v in r["curve_median"]], float)
            curve = np.clip(np.where(np.isfinite(curve), curve, 1e3), 1e-12, 1e3)
            ax.loglog(np.maximum(steps, 1), curve, label=label, **_ROLLOUT_STYLE[label])
        ax.set_title(s["title"], fontsize=9)
        ax.set_xlabel(f"step (dt = {dynamics['dt']:g})")
        ax.set_ylabel("|H(y_t) - H(y_0)| / |H(y_0)| (median over ICs)")
        ax.set_ylim(1e-8, 2e3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Energy error of learned dynamics (true H; clipped at 1e3)")
    paths.append(h.save_figure(fig, f"nn_dynamics{suffix}"))

    datasets = density["datasets"]
    ncols = 1 + max(
        sum("density" in r for r in d["flows"].values()) for d in datasets.values()
    )  # fmt: skip
    fig, axes = plt.subplots(len(datasets), ncols, figsize=(2.8 * ncols, 2.9 * len(datasets)),
                             squeeze=False)  # fmt: skip
    for ax_row, (ds, d) in zip(axes, datasets.items()):
        g = np.asarray(d["grid"])
        pts = np.asarray(d["data_sample"])
        ax_row[0].scatter(pts[:, 0], pts[:, 1], s=2, color="k")
        ax_row[0].set_title(f"{ds}: test data", fontsize=8)
        with_density = [(n, r) for n, r in d["flows"].items() if "density" in r]
        for ax, (name, r) in zip(ax_row[1:], with_density):
            dens = np.asarray([[np.nan if v is None else v for v in row] for row in r["density"]])
            ax.contourf(g, g, dens, levels=20, cmap="viridis")
            ax.set_title(f"{name}\ntest ll {r['test_ll']:.3f}", fontsize=7)
        for ax in ax_row:
            ax.set_xlim(g[0], g[-1])
            ax.set_ylim(g[0], g[-1])
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("Learned densities (standard-normal base)")
    paths.append(h.save_figure(fig, f"nn_density{suffix}"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, r) in enumerate(lipschitz["nets"].items()):
        label = f"{name} (clean {r['clean_accuracy']:.3f}, L <= {r['declared_bound']:.3g})"
        ax.plot(lipschitz["eps_curve"], r["certified_curve"], marker=".", color=f"C{i}",
                label=label)  # fmt: skip
    ax.set_xlabel("L2 radius eps (inputs in [0, 1]^64)")
    ax.set_ylabel("certified robust accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title("digits: margin > sqrt(2) L eps (Tsuzuku et al. 2018)", fontsize=9)
    paths.append(h.save_figure(fig, f"nn_lipschitz{suffix}"))
    return paths
