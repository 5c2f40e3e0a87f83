"""Tables and PNG plots of the optimizers suite: step cost per shape, convergence to the
leading eigenspace, constraint error against steps, and the digits MLP."""

import numpy as np

from . import _harness as h

_ORDER = (
    "qr",
    "polar",
    "cholesky_qr",
    "cayley",
    "cayley_iterative",
    "naive qr",
    "optax.adam",
    "gram X^T X",
    "geoopt",
)


def _ordered(keys):
    return [k for k in _ORDER if k in keys]


def print_tables(costs, convergence, manifolds, mlp):
    for c in costs:
        ms, med, gram = c["ms_per_step"], c["ms_per_step_median"], c["ms_per_step"]["gram X^T X"]
        rows = []
        for k in _ordered(ms):
            chk = c["check"].get(k, {})
            rows.append(
                [
                    k,
                    h.fmt(ms[k], ".3g"),
                    h.fmt(med[k], ".3g"),
                    h.fmt(ms[k] / gram, ".2f"),
                    h.fmt(ms[k] / ms["optax.adam"], ".2f"),
                    h.fmt(ms.get("geoopt", np.nan) / ms[k], ".1f") if "geoopt" in ms else "-",
                    h.fmt(c["compile_s"].get(k), ".2f"),
                    h.fmt(chk.get("constraint_error")),
                ]
            )
        h.print_table(
            f"One riemannian_adam step on Stiefel({c['n']}, {c['p']}), float32 (ms/step, "
            f"{c['rounds']} interleaved rounds)",
            [
                "contender",
                "best ms",
                "median ms",
                "/ gram",
                "/ adam",
                "geoopt / this",
                "compile s",
                "||X^T X - I||",
            ],
            rows,
        )
        if c["geoopt"]:
            h.say(f"geoopt: {c['geoopt']}")
        h.say(
            f"structjax qr vs naive qr, max |X difference| after the runs: "
            f"{c['qr_vs_naive_max_abs_diff']:.2e}"
        )

    runs = convergence["runs"]
    h.print_table(
        f"Leading {convergence['p']}-eigenspace of a {convergence['n']}x{convergence['n']} "
        f"symmetric matrix, riemannian_adam lr={convergence['lr']:g}, float32 (optimum: sum "
        f"of top-p eigenvalues = {convergence['optimum']:.6g})",
        ["retraction", "steps", "relative gap", "final ||X^T X - I||", "max over run", "wall s"],
        [
            [
                k,
                str(r["steps"]),
                h.fmt(r["final_relative_gap"]),
                h.fmt(r["final_constraint_error"]),
                h.fmt(r["max_constraint_error"]),
                h.fmt(r["wall_s"], ".3g"),
            ]
            for k, r in runs.items()
        ],
    )
    if isinstance(convergence.get("geoopt"), str):
        h.say(f"geoopt: {convergence['geoopt']}")

    h.print_table(
        "float32 constraint error after riemannian_adam (lr 1e-2), every manifold",
        ["manifold", "shape", "steps", "start err", "final err", "max err", "loss start -> end"],
        [
            [
                r["manifold"],
                "x".join(map(str, r["shape"])),
                str(r["steps"]),
                h.fmt(r["start_error"]),
                h.fmt(r["final_error"]),
                h.fmt(r["max_error"]),
                f"{r['final_loss']:.4g} <- {r['start_loss']:.4g}",
            ]
            for r in manifolds
        ],
    )

    h.print_table(
        f"digits MLP ({mlp['architecture']}), batch {mlp['batch']}, {mlp['steps']} steps",
        ["variant", "lr", "val acc", "test acc", "constraint err", "train wall s"],
        [
            [
                r["variant"],
                f"{r['lr']:g}",
                f"{r['val_accuracy']:.4f}",
                f"{r['test_accuracy']:.4f}",
                h.fmt(r["constraint_error"]),
                h.fmt(r["wall_s"], ".3g"),
            ]
            for r in mlp["runs"]
        ],
    )
    h.print_table(
        "digits MLP, whole training step (lr chosen on validation), interleaved",
        ["variant", "best us/step", "median us/step", "/ optax.adam"],
        [
            [
                k,
                h.fmt(v, ".1f"),
                h.fmt(mlp["us_per_step_median"][k], ".1f"),
                h.fmt(mlp["ratio_to_adam"][k], ".2f"),
            ]
            for k, v in mlp["us_per_step"].items()
        ],
    )
    a = mlp["arithmetic"]
    h.say(
        f"arithmetic at batch {mlp['batch']}: model {a['model_mflop']:.1f} MFLOP/step, "
        f"manifold work {a['manifold_mflop']:.1f} MFLOP/step: ratio >= "
        f"{a['ratio_lower_bound']:.2f} at equal flop rates"
    )
    if mlp.get("batch_sweep"):
        h.print_table(
            "digits MLP training step at larger batches (polar retraction), interleaved",
            ["batch", "adam us/step", "riemannian us/step", "ratio", "flop bound"],
            [
                [
                    str(r["batch"]),
                    h.fmt(r["us_per_step"]["adam"], ".1f"),
                    h.fmt(r["us_per_step"]["polar"], ".1f"),
                    h.fmt(r["ratio"], ".2f"),
                    h.fmt(r["arithmetic"]["ratio_lower_bound"], ".2f"),
                ]
                for r in mlp["batch_sweep"]
            ],
        )


def write_plots(costs, convergence, manifolds, mlp, suffix):
    plt = h.pyplot()
    paths = []

    # Step cost bars per shape.
    fig, axes = plt.subplots(1, len(costs), figsize=(6 * len(costs), 4.2), squeeze=False)
    for ax, c in zip(axes[0], costs):
        keys = _ordered(c["ms_per_step"])
        vals = [c["ms_per_step"][k] for k in keys]
        colors = ["C0" if k in _ORDER[:5] else "C3" if k == "geoopt" else "C7" for k in keys]
        ax.bar(range(len(keys)), vals, color=colors)
        ax.axhline(
            6 * c["ms_per_step"]["gram X^T X"],
            ls="--",
            color="k",
            lw=0.8,
            label="6 x Gram product (floor)",
        )
        ax.set_xticks(range(len(keys)), keys, rotation=40, ha="right")
        ax.set_yscale("log")
        ax.set_ylabel("ms per step (best)")
        ax.set_title(f"Stiefel({c['n']}, {c['p']}), float32, 2 CPU cores")
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:.3g}", ha="center", va="bottom", fontsize=7)
        ax.legend(fontsize=8)
    paths.append(h.save_figure(fig, f"optimizers_step_cost{suffix}"))

    # Convergence and constraint error of item 2.
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    for k, r in convergence["runs"].items():
        steps = np.arange(1, len(r["relative_gap"]) + 1) * convergence["every"]
        style = dict(ls="--", color="k") if k == "geoopt" else {}
        ax1.loglog(steps, np.maximum(np.abs(r["relative_gap"]), 1e-9), label=k, **style)
        ax2.loglog(steps, np.maximum(r["constraint_error"], 1e-9), label=k, **style)
    ax1.set(
        xlabel="step",
        ylabel="|relative gap to the optimum|",
        title=f"Leading eigenspace, Stiefel({convergence['n']}, {convergence['p']})",
    )
    ax2.set(xlabel="step", ylabel="||X^T X - I||_F", title="constraint error, float32")
    for ax in (ax1, ax2):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, which="both")
    paths.append(h.save_figure(fig, f"optimizers_convergence{suffix}"))

    # Constraint error against steps, every manifold.
    fig, ax = plt.subplots(figsize=(9, 5))
    for i, r in enumerate(manifolds):
        steps = np.arange(1, len(r["errors"]) + 1) * r["every"]
        ax.semilogy(
            steps,
            np.maximum(r["errors"], 1e-10),
            marker="os^vD<>"[i % 7],
            ms=3,
            color=plt.cm.tab20(i % 20),
            label=r["manifold"],
        )
    ax.axhline(1e-5, color="k", ls=":", label="floor 1e-5")
    ax.set(
        xlabel="step",
        ylabel="constraint error (zero plotted at 1e-10)",
        title="riemannian_adam, float32: constraint error against steps",
    )
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(alpha=0.3)
    paths.append(h.save_figure(fig, f"optimizers_constraint{suffix}"))

    # The digits MLP: training loss of the chosen runs, step cost.
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    for k, chosen in mlp["chosen"].items():
        r = next(r for r in mlp["runs"] if r["variant"] == k and r["lr"] == chosen["lr"])
        steps = np.arange(len(r["losses"])) * r["loss_every"]
        ax1.semilogy(
            steps, r["losses"], label=f"{k} lr={r['lr']:g} (test {r['test_accuracy']:.3f})"
        )
    ax1.set(xlabel="step", ylabel="training loss (batch)", title="digits MLP")
    ax1.legend(fontsize=8)
    keys = list(mlp["us_per_step"])
    ax2.bar(keys, [mlp["us_per_step"][k] for k in keys], color=["C7"] + ["C0"] * (len(keys) - 1))
    ax2.axhline(
        1.3 * mlp["us_per_step"]["adam"],
        ls="--",
        color="k",
        lw=0.8,
        label="1.3 x optax.adam (floor)",
    )
    ax2.set(ylabel="us per training step (best)", title="whole training step, batch 128")
    ax2.legend(fontsize=8)
    paths.append(h.save_figure(fig, f"optimizers_mlp{suffix}"))
    return paths
