"""Tables and plots of the equivariant suite."""

import numpy as np

from . import _harness as h

_PEER_LABEL = {"emlp": "emlp", "e3nn": "e3nn-jax"}


def _ms(s) -> str:
    return h.fmt(None if s is None else s * 1e3, ".2f")


def _us(s) -> str:
    return h.fmt(None if s is None else s * 1e6, ".0f")


def print_tables(peers, peer, conv, certs, digits, regression):
    rows = [[label, p["version"] or "-", "yes" if p["available"] else "NO",
             p.get("error", "")[:70]] for label, p in peers.items()]  # fmt: skip
    h.print_table("Peers", ["package", "version", "imports", "error"], rows)
    if "note" in peers["escnn"]:
        h.say(f"    escnn: {peers['escnn']['note']}")

    for lib in ("emlp", "e3nn"):
        if not peer[lib]:
            continue
        rows = []
        for name, r in peer[lib].items():
            f = r["forward"]
            rows.append([
                name, r["count_ours"], r["count_peer"],
                _ms(r["ours_first_s"]), _ms(r["ours_best_s"]),
                _ms(r["peer_first_s"]), _ms(r["peer_best_s"]),
                h.fmt(r["peer_over_ours_best"], ".1f"),
            ])  # fmt: skip
        h.print_table(
            f"(1) equivariant bases, ours vs {_PEER_LABEL[lib]} (every cache cleared before each "
            f"call; best of {peer['basis_repeats']})",
            ["representations", "# ours", f"# {lib}", "ours first ms", "ours best ms",
             f"{lib} first ms", f"{lib} best ms", f"{lib} / ours"],
            rows,
        )  # fmt: skip
        rows = []
        for name, r in peer[lib].items():
            f = r["forward"]
            rows.append([
                name, f"{r['size_in']}->{r['size_out']}",
                _us(f["ours"]["best_s"]), _us(f[lib]["best_s"]), _us(f["dense"]["best_s"]),
                h.fmt(f["ours"]["ratio_to_reference"], ".2f"),
                h.fmt(f[lib]["ratio_to_reference"], ".2f"),
                h.fmt(f["ours, W formed once"]["ratio_to_reference"], ".2f"),
                h.fmt(r["error_float32"], ".1e"), h.fmt(r["peer_error_float32"], ".1e"),
                h.fmt(r["error_float64"], ".1e"),
            ])  # fmt: skip
        h.print_table(
            f"(1)/(2) layer forward, batch {peer['batch']}, float32, jitted (best of "
            f"{peer['rounds']} interleaved rounds); ratios to eqx.nn.Linear of the same sizes; "
            "equivariance errors",
            ["representations", "sizes", "ours us", f"{lib} us", "dense us", "ours/dense",
             f"{lib}/dense", "W once/dense", "err32 ours", f"err32 {lib}", "err64 ours"],
            rows,
        )  # fmt: skip

    rows = []
    for name, r in conv["layers"].items():
        f = r["forward"]
        rows.append([
            name, r["params"], r["plain_params"], _ms(f["ours"]["best_s"]),
            _ms(f["plain conv"]["best_s"]), h.fmt(f["ours"]["ratio_to_reference"], ".2f"),
            h.fmt(r["error_float32"], ".1e"), r["check_group"],
        ])  # fmt: skip
    h.print_table(
        f"(2) convolutions vs a plain Conv2d of the same array sizes, batch {conv['batch']}, "
        f"{conv['image']}x{conv['image']}, float32, jitted, vmap (best of {conv['rounds']} "
        "interleaved rounds)",
        ["layer", "params", "plain params", "ours ms", "plain ms", "ours/plain", "err32",
         "checked on"],
        rows,
    )  # fmt: skip
    a = conv.get("steerable_arbitrary_angles")
    rows = [[name, r["group"], h.fmt(r["error_float32"], ".1e")] for name, r in certs.items()]
    if a is not None:
        rows.append([f"SteerableConv {a['field_type']}, kernel {a['kernel']}, {a['image']}x"
                     f"{a['image']} smooth input, arbitrary angles (float64)", "SO(2)",
                     h.fmt(a["error_float64"], ".1e")])  # fmt: skip
    h.print_table("(1) further equivariance certificates", ["layer", "group", "error"], rows)

    rows = []
    for name, r in digits["nets"].items():
        rows.append([
            name, r["params"], h.fmt(r["train_s"], ".1f"), h.fmt(r["final_loss"], ".3f"),
            h.fmt(r["acc_upright"], ".3f"), h.fmt(r["acc_rot90"], ".3f"),
            h.fmt(r["acc_random_angle"], ".3f"), h.fmt(r["invariance_error_c4_float32"], ".1e"),
            h.fmt(r["invariance_error_so2_float32"], ".1e"),
        ])  # fmt: skip
    h.print_table(
        f"(3) digits 9x9 ({digits['train']} train / {digits['test']} test), trained on upright "
        f"digits only, {digits['steps']} steps of {digits['batch']}, kernel "
        f"{digits['kernel']}: test accuracy",
        ["network", "params", "train s", "loss", "upright", "rot k*90", "random angle",
         "inv err C4", "inv err SO(2)"],
        rows,
    )  # fmt: skip

    for tname, t in regression["tasks"].items():
        rows = []
        for n, models in t["sizes"].items():
            for mname, r in models.items():
                rows.append([
                    f"n={n}  {mname}", r["params"], h.fmt(r["test_mse"], ".3e"),
                    h.fmt(r["prediction_std"], ".2f"),
                    h.fmt(r["final_train_loss"], ".2e"), h.fmt(r["train_s"], ".1f"),
                    h.fmt(r["invariance_error_float32"], ".1e"),
                    h.fmt(r["invariance_error_float64"], ".1e"),
                ])  # fmt: skip
        h.print_table(
            f"(3) {tname} ({t['group']}, input {t['rep_in']}), {regression['steps']} steps of "
            f"{regression['batch']}, width {regression['width']}, depth {regression['depth']}, "
            f"{regression['test']} test points: test MSE (standardised targets)",
            ["train size, model", "params", "test MSE", "pred std", "train loss", "train s",
             "inv err f32", "inv err f64"],
            rows,
        )  # fmt: skip
        cc = t["crosscheck_vs_emlp"]
        h.say(
            "    target formula vs emlp.datasets on emlp's samples: "
            + ("emlp not available" if cc is None else f"max relative difference {cc:.1e}")
        )
    steps = regression.get("emlp_step_times")
    if steps:
        rows = [[name, r["ours_params"], r["emlp_params"], h.fmt(r["ours_build_s"], ".1f"),
                 h.fmt(r["emlp_build_s"], ".1f"), _ms(r["ours_grad_s"]), _ms(r["emlp_grad_s"]),
                 h.fmt(r["emlp_grad_s"] / r["ours_grad_s"], ".1f")]
                for name, r in steps.items()]  # fmt: skip
        h.print_table(
            "(3) EMLP gradient step, ours vs emlp (flax), width 128, depth 2, batch 256, "
            "float32 (hidden: each library's uniform_rep)",
            ["EMLP", "params ours", "params emlp", "build ours s", "build emlp s",
             "grad ours ms", "grad emlp ms", "emlp / ours"],
            rows,
        )  # fmt: skip


def _bars(ax, labels, series: dict, log: bool, ylabel: str):
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(labels))
    for i, (name, values) in enumerate(series.items()):
        vals = [np.nan if v is None else v for v in values]
        ax.bar(x + (i - (len(series) - 1) / 2) * width, vals, width, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=55, ha="right", fontsize=7)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel, fontsize=8)
    ax.legend(fontsize=7)


def write_plots(peer, conv, certs, digits, regression, suffix):
    plt = h.pyplot()
    paths = []

    libs = [lib for lib in ("emlp", "e3nn") if peer[lib]]
    if libs:
        fig, axes = plt.subplots(2, len(libs), figsize=(7.5 * len(libs), 9), squeeze=False)
        for col, lib in enumerate(libs):
            rows = peer[lib]
            labels = list(rows)
            _bars(axes[0][col], labels, {
                "ours (best)": [r["ours_best_s"] for r in rows.values()],
                f"{_PEER_LABEL[lib]} (best)": [r["peer_best_s"] for r in rows.values()],
                "ours (first)": [r["ours_first_s"] for r in rows.values()],
                f"{_PEER_LABEL[lib]} (first)": [r["peer_first_s"] for r in rows.values()],
            }, True, "seconds")  # fmt: skip
            axes[0][col].set_title(f"basis computation, ours vs {_PEER_LABEL[lib]}", fontsize=9)
            _bars(axes[1][col], labels, {
                "ours (vmap)": [r["forward"]["ours"]["best_s"] * 1e6 for r in rows.values()],
                _PEER_LABEL[lib]: [r["forward"][lib]["best_s"] * 1e6 for r in rows.values()],
                "eqx.nn.Linear": [r["forward"]["dense"]["best_s"] * 1e6 for r in rows.values()],
                "ours, W formed once": [r["forward"]["ours, W formed once"]["best_s"] * 1e6
                                        for r in rows.values()],
            }, True, "microseconds")  # fmt: skip
            axes[1][col].set_title(f"layer forward, batch {peer['batch']}, float32", fontsize=9)
        fig.tight_layout()
        paths.append(h.save_figure(fig, f"equivariant_peers{suffix}"))

    names, ratios, errors = [], [], []
    seen = set()
    for lib in libs:
        for name, r in peer[lib].items():
            if name not in seen:
                seen.add(name)
                names.append(f"EquivariantLinear {name}")
                ratios.append(r["forward"]["ours"]["ratio_to_reference"])
                errors.append(r["error_float32"])
    for name, r in conv["layers"].items():
        names.append(name)
        ratios.append(r["forward"]["ours"]["ratio_to_reference"])
        errors.append(r["error_float32"])
    err_names = names + list(certs)
    errors = errors + [r["error_float32"] for r in certs.values()]
    fig, axes = plt.subplots(1, 2, figsize=(14, 0.32 * len(err_names) + 2))
    y = np.arange(len(names))
    axes[0].barh(y, ratios, color=["C3" if r > 2 else "C0" for r in ratios])
    axes[0].axvline(2.0, color="k", ls=":", lw=1)
    axes[0].axvline(1.0, color="0.7", lw=0.8)
    axes[0].set_yticks(y)
    axes[0].set_yticklabels(names, fontsize=7)
    axes[0].invert_yaxis()
    axes[0].set_xlabel("forward time / plain layer of the same sizes (dotted: floor 2)")
    ye = np.arange(len(err_names))
    axes[1].barh(ye, np.maximum(errors, 1e-17), color=["C3" if e > 1e-5 else "C0"
                                                       for e in errors])  # fmt: skip
    axes[1].axvline(1e-5, color="k", ls=":", lw=1)
    axes[1].set_xscale("log")
    axes[1].set_yticks(ye)
    axes[1].set_yticklabels(err_names, fontsize=7)
    axes[1].invert_yaxis()
    axes[1].set_xlabel("float32 equivariance error (dotted: floor 1e-5)")
    fig.tight_layout()
    paths.append(h.save_figure(fig, f"equivariant_floors{suffix}"))

    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
    grid = digits["angle_grid_deg"]
    for i, (name, r) in enumerate(digits["nets"].items()):
        axes[0].plot(grid + [360], r["acc_grid"] + r["acc_grid"][:1], marker=".",
                     color=f"C{i}", label=f"{name}, {r['params']} params")  # fmt: skip
    for a in (90, 180, 270):
        axes[0].axvline(a, color="0.85", lw=0.8)
    axes[0].set_xlabel("rotation of every test digit (degrees)")
    axes[0].set_ylabel("test accuracy")
    axes[0].set_ylim(0, 1)
    axes[0].legend(fontsize=7)
    axes[0].set_title("digits, trained on upright digits only", fontsize=9)
    nets = digits["nets"]
    _bars(axes[1], list(nets), {
        "upright": [r["acc_upright"] for r in nets.values()],
        "random k x 90 deg": [r["acc_rot90"] for r in nets.values()],
        "random angle": [r["acc_random_angle"] for r in nets.values()],
    }, False, "test accuracy")  # fmt: skip
    axes[1].set_ylim(0, 1)
    fig.tight_layout()
    paths.append(h.save_figure(fig, f"equivariant_digits{suffix}"))

    tasks = regression["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.5 * len(tasks), 4.2), squeeze=False)
    for ax, (tname, t) in zip(axes[0], tasks.items()):
        for j, (n, models) in enumerate(t["sizes"].items()):
            for k, (mname, r) in enumerate(models.items()):
                curve = np.asarray(r["loss_curve"], float)
                steps = np.linspace(0, regression["steps"], len(curve))
                ax.semilogy(steps, curve, color=f"C{k}", ls=["-", "--", ":"][j % 3], lw=1,
                            label=f"{mname}, n={n}: test MSE {r['test_mse']:.3g}")  # fmt: skip
        ax.set_title(f"{tname} ({t['group']}): training loss", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("MSE (standardised)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(h.save_figure(fig, f"equivariant_regression{suffix}"))
    return paths
