"""Adjoints suite: exact, memory-lean gradients of ODE solves against diffrax's adjoints.

`python -m benchmarks adjoints [--quick]`. Everything runs in **float64**. Three workloads, each
a loss through an ODE solve with Tsit5 at a constant step, differentiated with respect to the
parameters of a neural vector field passed as `args`:

1. a neural ODE classifier: an `eqx.nn.MLP` vector field (width 64, depth 2, tanh) on the
   two moons (`sklearn.datasets.make_moons`; 256 points, quick 64), integrated over [0, 1] in
   10 steps, a linear readout and the cross-entropy, the batch by `jax.vmap` inside the loss;
2. a CNF-like density: the same kind of MLP carrying the log-density change
   `tr(jax.jacfwd(f))` along, the loss the negative log-likelihood under a standard normal at
   t = 1 (full run only);
3. a long rollout with a learned force: `q'' = NN(q)` (an MLP 1 -> 64 -> 64 -> 1, untrained),
   dt = 0.01, 10^2, 10^3 and 10^4 steps (quick: 10^2 and 10^4), 100 states saved along the
   way, the loss their mean squared error against the same rollout under the true force
   `-sin(q)`.

Quick mode (well under a minute; compiling is most of it): every contender on the classifier
(64 points), and on the rollout only the three new adjoints' compiled memory at 10^2 and 10^4
steps, untimed.

Contenders: `diffrax.diffeqsolve` (constant steps, `max_steps` = the steps) under
`RecursiveCheckpointAdjoint` (**the reference**), `BacksolveAdjoint` and structjax's
`SymplecticAdjoint`; `solve_fixed` with `adjoint="autodiff"` and `"symplectic"` (Tsit5); and
`solve_fixed` with `ReversibleRK(Tsit5())` (McCallum & Foster 2024), `adjoint="autodiff"` and
`"reversible"`. The reversible method is a different discrete method (two Tsit5 steps a step,
coupled), so its reversible gradient is compared with autodiff of itself; every other
gradient is compared with the reference's, and the symplectic ones (`SymplecticAdjoint` and
`solve_fixed`'s) with autodiff through the same Tsit5 steps in `solve_fixed`. Errors are
max |g - g_ref| / max |g_ref| over every parameter leaf (as
`structjax.check.adjoint_consistency` measures them). Two cross-checks:
every Tsit5 contender is also compared with autodiff through `solve_fixed` ("err vs fixed":
the same discrete solve differentiated through a plain `lax.scan`), and on the timed
workloads every gradient's directional derivative along a random direction with the central
difference (step 1e-5) of the forward loss of its discrete method ("vs FD"; ~1e-9 is that
arbiter's own error). They catch a reference that is itself off: with diffrax 0.7.2 /
equinox 0.13.8, `RecursiveCheckpointAdjoint` on the 10^2- and 10^3-step rollouts (constant
steps, 100 `SaveAt(ts=...)` at step ends) gives a gradient a few percent off the central
difference, which autodiff through `solve_fixed` and `BacksolveAdjoint` match. The cause
(found for this suite): `ConstantStepSize` computes a step's end as
`t0 + (t1 - t0) * (i / num_steps)`, which XLA folds to `i * const` in the forward loop but
divides at run time when the checkpointed loop recomputes from a checkpoint, 1 ulp away;
where a save time equals a step's end, `ts[j] <= t_next` flips, the save is skipped in the
recomputation and its cotangent lost (whether it happens depends on the checkpoint count).
`SymplecticAdjoint` computes the step times alike in both loops and is exact there. So
BacksolveAdjoint's and SymplecticAdjoint's errors are taken against autodiff through
`solve_fixed`, not against the reference.

For each: the gradient's relative error, the compiled temporary memory of the jitted gradient
(`compile().memory_analysis().temp_size_in_bytes`, the parameters partitioned out of the
`eqx` modules so that jit sees only arrays), the compile time (trace + lower + XLA) and the
median wall time of the gradient, timed interleaved with the other contenders of the same
workload (`time_interleaved`), as a ratio to `RecursiveCheckpointAdjoint`'s.

Why: a neural ODE's gradient should be the gradient of the discrete solve the forward pass
computed (Matsubara, Miyatake & Yaguchi 2021's symplectic adjoint, McCallum & Foster 2024's
reversible Runge-Kutta), at a memory that does not grow with the network's activations times
the steps, and at a speed close to checkpointed autodiff; `BacksolveAdjoint` (the continuous
adjoint solved backwards) is cheaper in memory but its gradient is off by its own
discretisation error, shown here where it exceeds 1e-3.

Floors (issue 17): the new adjoints' gradients equal autodiff's of the same discrete solve to
1e-10; their memory at 10^4 rollout steps within 1.5x of that at 10^2; their gradient time at
most 2x `RecursiveCheckpointAdjoint`'s (worst workload). Floors are printed PASS or MISS; they
report, they never fail the run.
"""

import time

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import structjax.integrators as si

from . import _harness as h

_ERR_FLOOR, _MEM_FLOOR, _TIME_FLOOR, _BACKSOLVE_FLAG = 1e-10, 1.5, 2.0, 1e-3
REF = "RecursiveCheckpoint"
CROSS = "fixed autodiff"  # the same Tsit5 solve differentiated by autodiff of a plain scan
# name: (how the solve runs, the gradient it is compared with)
CONTENDERS = {
    REF: ("diffeqsolve, RecursiveCheckpointAdjoint (reference)", None),
    "Backsolve": ("diffeqsolve, BacksolveAdjoint", REF),
    "SymplecticAdjoint": ("diffeqsolve, structjax SymplecticAdjoint", CROSS),
    "fixed autodiff": ("solve_fixed(Tsit5), adjoint='autodiff'", REF),
    "fixed symplectic": ("solve_fixed(Tsit5), adjoint='symplectic'", "fixed autodiff"),
    "RevRK autodiff": ("solve_fixed(ReversibleRK(Tsit5)), adjoint='autodiff'", None),
    "RevRK reversible": ("solve_fixed(ReversibleRK(Tsit5)), adjoint='reversible'",
                         "RevRK autodiff"),
}  # fmt: skip
# The new adjoints, each with the autodiff gradient of its own discrete solve.
NEW = {"SymplecticAdjoint": CROSS, "fixed symplectic": "fixed autodiff",
       "RevRK reversible": "RevRK autodiff"}  # fmt: skip


# --- solving one ODE every way ------------------------------------------------------------


def solve(name: str, vf, y0, args, *, dt: float, steps: int, save_every: int | None = None):
    """The state at `steps * dt` (or the states every `save_every` steps, the initial one
    excluded) of `y' = vf(t, y, args)` from `y0` at t = 0, by contender `name`."""
    term = diffrax.ODETerm(vf)
    if name in (REF, "Backsolve", "SymplecticAdjoint"):
        adjoint = {REF: diffrax.RecursiveCheckpointAdjoint(),
                   "Backsolve": diffrax.BacksolveAdjoint(),
                   "SymplecticAdjoint": si.SymplecticAdjoint()}[name]  # fmt: skip
        t1 = steps * dt
        if save_every is None:
            saveat = diffrax.SaveAt(t1=True)
        else:
            saveat = diffrax.SaveAt(ts=dt * save_every * np.arange(1, steps // save_every + 1))
        sol = diffrax.diffeqsolve(term, diffrax.Tsit5(), 0.0, t1, dt, y0, args, saveat=saveat,
                                  adjoint=adjoint, max_steps=steps)  # fmt: skip
        return jax.tree_util.tree_map(lambda y: y if save_every else y[0], sol.ys)
    solver = si.ReversibleRK(diffrax.Tsit5()) if name.startswith("RevRK") else diffrax.Tsit5()
    adjoint = name.split()[-1]
    sol = si.solve_fixed(term, solver, y0, dt=dt, num_steps=steps, args=args,
                         adjoint=adjoint, save_every=save_every)  # fmt: skip
    if save_every is None:
        return sol.y1
    return jax.tree_util.tree_map(lambda y: y[1:], sol.ys)


def mlp(key, d_in: int, d_out: int, width: int = 64):
    """An MLP of depth 2 with tanh, split into its arrays (differentiated) and the rest."""
    net = eqx.nn.MLP(d_in, d_out, width, 2, activation=jnp.tanh, key=key)
    return eqx.partition(net, eqx.is_inexact_array)


# --- the workloads: (loss(name, params, data), params, data, detail) ---------------------


def moons(n: int, seed: int = 0):
    try:
        from sklearn.datasets import make_moons

        x, y = make_moons(n, noise=0.1, random_state=seed)
    except ImportError:  # two moons by hand
        rng = np.random.default_rng(seed)
        a = rng.uniform(0, np.pi, n)
        y = np.arange(n) % 2
        x = np.stack([np.cos(a) + y, np.sin(a) * (1 - 2 * y) - 0.5 * y], 1)
        x = x + 0.1 * rng.standard_normal(x.shape)
    x = (x - x.mean(0)) / x.std(0)
    return jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.int32)


def classifier(n: int, steps: int = 10):
    k1, k2 = jax.random.split(jax.random.key(0))
    p_vf, s_vf = mlp(k1, 2, 2)
    readout = eqx.nn.Linear(2, 2, key=k2)
    p_ro, s_ro = eqx.partition(readout, eqx.is_inexact_array)

    def vf(t, y, p):
        return eqx.combine(p, s_vf)(y)

    def loss(name, params, data):
        p, pr = params
        x, label = data
        z = jax.vmap(lambda xi: solve(name, vf, xi, p, dt=1.0 / steps, steps=steps))(x)
        logits = jax.vmap(eqx.combine(pr, s_ro))(z)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), label[:, None], 1))

    return loss, (p_vf, p_ro), moons(n), f"MLP 2-64-64-2 vector field, {n} moons, {steps} steps"


def cnf(n: int, steps: int = 10):
    p_vf, s_vf = mlp(jax.random.key(1), 2, 2)

    def vf(t, y, p):
        x, _ = y
        f = eqx.combine(p, s_vf)
        return f(x), jnp.trace(jax.jacfwd(f)(x))

    def loss(name, params, data):
        x, _ = data

        def one(xi):
            z, dlogp = solve(name, vf, (xi, jnp.zeros(())), params, dt=1.0 / steps, steps=steps)
            return -0.5 * jnp.sum(z**2) - jnp.log(2 * jnp.pi) + dlogp

        return -jnp.mean(jax.vmap(one)(x))

    return loss, p_vf, moons(n, 1), f"MLP 2-64-64-2 + tr(jacfwd), {n} moons, {steps} steps"


def rollout(steps: int, dt: float = 0.01, saves: int = 100):
    p_vf, s_vf = mlp(jax.random.key(2), 1, 1)
    every = steps // saves
    y0 = jnp.array([1.0, 0.0])

    def learned(t, y, p):
        return jnp.stack([y[1], eqx.combine(p, s_vf)(y[:1])[0]])

    def true(t, y, p):
        return jnp.stack([y[1], -jnp.sin(y[0])])

    target = solve("fixed autodiff", true, y0, None, dt=dt, steps=steps, save_every=every)

    def loss(name, params, data):
        ys = solve(name, learned, y0, params, dt=dt, steps=steps, save_every=every)
        return jnp.mean((ys - data) ** 2)

    return loss, p_vf, target, f"q'' = MLP(q), dt={dt}, {steps} steps, {saves} saved"


# --- measuring ----------------------------------------------------------------------------


def relative(g, ref) -> float:
    num, den = 0.0, 0.0
    for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(ref), strict=True):
        a, b = np.asarray(a), np.asarray(b)
        num, den = max(num, float(np.max(np.abs(a - b)))), max(den, float(np.max(np.abs(b))))
    return num / den if den > 0 else num


def fd_check(loss, params, data, grads: dict, out: dict, eps: float = 1e-5) -> None:
    """`out[name]["fd_error"]`: |g . v - FD| / |FD| for each gradient g, v a random
    direction, FD the central difference (step `eps`) of the forward loss of the same
    discrete method (Tsit5's by `solve_fixed`, or ReversibleRK's), an arbiter independent
    of every adjoint (its own error ~1e-9 relative)."""
    leaves, tdef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(7), len(leaves))
    v = [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)]
    fds = {}
    for family in ("fixed autodiff", "RevRK autodiff"):
        f = jax.jit(lambda p, d, family=family: loss(family, p, d))
        shift = [jax.tree_util.tree_unflatten(tdef, [x + sg * eps * u for x, u in zip(leaves, v)])
                 for sg in (1, -1)]  # fmt: skip
        fds[family] = (float(f(shift[0], data)) - float(f(shift[1], data))) / (2 * eps)
    for name, g in grads.items():
        fd = fds["RevRK autodiff" if name.startswith("RevRK") else "fixed autodiff"]
        dd = sum(float(jnp.vdot(a, u)) for a, u in zip(jax.tree_util.tree_leaves(g), v))
        out[name]["fd_error"] = abs(dd - fd) / abs(fd)


def measure(label: str, workload, rounds: int, progress: h.Progress, names=tuple(CONTENDERS),
            timed: bool = True):  # fmt: skip
    """The contenders `names` on one workload: compile, memory, gradient, error, time."""
    loss, params, data, detail = workload
    out, cases, grads = {}, {}, {}
    for name in names:
        grad_fn = jax.grad(lambda p, d, name=name: loss(name, p, d))
        try:
            compiled, compile_s = h.compile_fn(grad_fn, params, data)
        except Exception as e:  # a contender that cannot run this workload
            h.say(f"  {label}: {name} failed: {type(e).__name__}: {str(e)[:200]}")
            out[name] = dict(error=f"{type(e).__name__}: {str(e)[:300]}")
            progress.update(f"{label} {name}")
            continue
        mem = compiled.memory_analysis()
        grads[name] = jax.block_until_ready(compiled(params, data))
        cases[name] = (compiled, (params, data))
        leaves = jax.tree_util.tree_leaves(grads[name])
        finite = bool(all(np.all(np.isfinite(g)) for g in leaves))
        out[name] = dict(compile_s=compile_s, temp_bytes=int(mem.temp_size_in_bytes), finite=finite)
        progress.update(f"{label} {name}")
    for name, (_, against) in CONTENDERS.items():
        if name in grads:
            if against in grads:
                out[name]["error"] = relative(grads[name], grads[against])
                out[name]["against"] = against
            if name != REF and REF in grads and against != REF:
                out[name]["error_vs_reference"] = relative(grads[name], grads[REF])
            if not name.startswith("RevRK") and CROSS not in (name, against) and CROSS in grads:
                out[name]["error_vs_fixed_autodiff"] = relative(grads[name], grads[CROSS])
    if timed:  # the gradients against central differences of the forward loss
        fd_check(loss, params, data, grads, out)
    if timed and cases:
        t = h.time_interleaved(cases, rounds)
        for name, timing in t.items():
            out[name]["grad_s"] = timing.median
            out[name]["times"] = timing.times
        if REF in t:
            for name in t:
                out[name]["time_ratio"] = t[name].median / t[REF].median
    return dict(detail=detail, contenders=out)


# --- plots ----------------------------------------------------------------------------------


def _plot_memory(rollouts: dict, suffix: str):
    plt = h.pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    steps = sorted(rollouts)
    for name in CONTENDERS:
        pts = [(s, rollouts[s]["contenders"].get(name, {}).get("temp_bytes")) for s in steps]
        pts = [(s, m) for s, m in pts if m]
        if pts:
            ax.loglog(*zip(*pts), "o-", label=name)
    ax.set_xlabel("rollout steps (Tsit5, dt = 0.01)")
    ax.set_ylabel("compiled temporary memory of the gradient (bytes)")
    ax.set_title("Gradient memory vs steps, learned-force rollout (float64)")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    return h.save_figure(fig, f"adjoints_memory{suffix}")


def _plot_errors(workloads: dict, suffix: str):
    plt = h.pyplot()
    names = [n for n, (_, against) in CONTENDERS.items() if against is not None]
    workloads = {k: w for k, w in workloads.items()
                 if any("error" in w["contenders"].get(n, {}) for n in names)}  # fmt: skip
    fig, ax = plt.subplots(figsize=(8, 4.2))
    width = 0.8 / len(workloads)
    for k, (label, w) in enumerate(workloads.items()):
        vals = [max(w["contenders"].get(n, {}).get("error", np.nan), 1e-18) for n in names]
        ax.bar(np.arange(len(names)) + k * width, vals, width, label=label)
    ax.set_yscale("log")
    ax.axhline(_ERR_FLOOR, color="k", lw=1, ls="--", label="floor 1e-10 (new adjoints)")
    ax.axhline(_BACKSOLVE_FLAG, color="gray", lw=1, ls=":", label="1e-3")
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2)
    ax.set_xticklabels([f"{n}\nvs {CONTENDERS[n][1]}" for n in names], fontsize=7)
    ax.set_ylabel("relative gradient error (max-norm; 1e-18 = exact)")
    ax.set_title("Gradient error of each adjoint against autodiff of the same solve (float64)")
    ax.legend(fontsize=7)
    return h.save_figure(fig, f"adjoints_errors{suffix}")


# --- run --------------------------------------------------------------------------------------


def run(*, quick: bool) -> dict:
    h.header("adjoints", quick)
    rounds = 3 if quick else 7
    everyone = tuple(CONTENDERS)
    # (label, workload, contenders, timed); quick: every contender on the classifier, and on
    # the rollout only the new adjoints' memory at 10^2 and 10^4 steps (compiling is the cost)
    plan = [("classifier", lambda: classifier(64 if quick else 256), everyone, True)]
    if quick:
        plan += [(f"rollout {s}", lambda s=s: rollout(s), tuple(NEW), False)
                 for s in (100, 10_000)]  # fmt: skip
    else:
        plan.append(("cnf", lambda: cnf(128), everyone, True))
        plan += [(f"rollout {s}", lambda s=s: rollout(s), everyone, True)
                 for s in (100, 1000, 10_000)]  # fmt: skip
    progress = h.Progress(sum(len(p[2]) for p in plan), "adjoints")
    start = time.perf_counter()
    workloads = {label: measure(label, make(), rounds, progress, names, timed)
                 for label, make, names, timed in plan}  # fmt: skip
    progress.close()
    seconds = time.perf_counter() - start

    for label, w in workloads.items():
        rows = []
        for name, (how, against) in CONTENDERS.items():
            if name not in w["contenders"]:
                continue
            c = w["contenders"][name]
            rows.append([name, h.fmt(c.get("error")), against or "-",
                         h.fmt(c.get("error_vs_reference")),
                         h.fmt(c.get("error_vs_fixed_autodiff")), h.fmt(c.get("fd_error")),
                         str(c.get("temp_bytes", "-")), h.fmt(c.get("compile_s"), ".2f"),
                         h.fmt(c.get("grad_s")), h.fmt(c.get("time_ratio"), ".2f")])  # fmt: skip
        h.print_table(
            f"{label}: {w['detail']} (float64; time: median of {rounds} interleaved rounds)",
            [
                "adjoint",
                "grad err",
                "vs",
                "err vs ref",
                "err vs fixed",
                "vs FD",
                "temp bytes",
                "compile s",
                "grad s",
                "/ ref",
            ],  # fmt: skip
            rows,
        )
    rollouts = {int(k.split()[1]): w for k, w in workloads.items() if k.startswith("rollout")}
    lo, hi = min(rollouts), max(rollouts)

    def worst(name, key):
        vals = [(w["contenders"].get(name, {}).get(key), label)
                for label, w in workloads.items()]  # fmt: skip
        vals = [(v, lab) for v, lab in vals if v is not None]
        return max(vals) if vals else (None, "-")

    floors = []
    for name, against in NEW.items():
        err, where = worst(name, "error")
        floors.append(h.Floor(f"{name}: gradient = autodiff", err, _ERR_FLOOR,
                              f"vs {against}, worst workload {where}"))  # fmt: skip
    for name in NEW:
        m_lo = rollouts[lo]["contenders"][name].get("temp_bytes")
        m_hi = rollouts[hi]["contenders"][name].get("temp_bytes")
        ratio = None if not (m_lo and m_hi) else m_hi / m_lo
        floors.append(h.Floor(f"{name}: memory {hi} / {lo} steps", ratio, _MEM_FLOOR,
                              f"temp bytes {m_hi} at {hi}, {m_lo} at {lo} (rollout)"))  # fmt: skip
    for name in NEW:
        ratio, where = worst(name, "time_ratio")
        floors.append(h.Floor(f"{name}: time / {REF}", ratio, _TIME_FLOOR,
                              f"median gradient time, worst workload {where}"))  # fmt: skip
    # Backsolve against the gradient that central differences confirm: autodiff through
    # solve_fixed (diffrax's RecursiveCheckpointAdjoint is off on some rollouts, see above)
    backsolve = {label: w["contenders"]["Backsolve"].get("error_vs_fixed_autodiff")
                 for label, w in workloads.items() if "Backsolve" in w["contenders"]}  # fmt: skip
    off = {k: v for k, v in backsolve.items() if v is not None and v > _BACKSOLVE_FLAG}
    h.say(
        "\nBacksolveAdjoint gradient off autodiff through solve_fixed by more than 1e-3 "
        "relative on: " + (", ".join(f"{k} ({v:.2e})" for k, v in off.items()) if off else "none")
    )
    ref_fd = {label: w["contenders"][REF].get("fd_error") for label, w in workloads.items()
              if REF in w["contenders"]}  # fmt: skip
    h.say(
        "RecursiveCheckpointAdjoint (the reference) off its forward loss's central difference "
        "by more than 1e-6 relative on: "
        + (", ".join(f"{k} ({v:.2e})" for k, v in ref_fd.items() if v and v > 1e-6) or "none")
    )
    for name in NEW:
        fd, where = worst(name, "fd_error")
        if fd is not None:
            h.say(f"{name}: worst directional derivative vs central differences {fd:.2e} ({where})")
    return h.finish(
        "adjoints",
        quick,
        dict(workloads=workloads, measure_s=seconds, backsolve_over_1e_3=off),
        floors,
        lambda suffix: [_plot_memory(rollouts, suffix), _plot_errors(workloads, suffix)],
        versions=("diffrax",),
    )
