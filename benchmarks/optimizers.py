"""Optimizers suite: structjax's Riemannian Adam against optax, a hand-written loop and geoopt.

`python -m benchmarks optimizers [--quick]`. Everything here runs in **float32** (the package
turns x64 on; every array is made float32 explicitly). It measures

1. the cost of one `riemannian_adam` step on Stiefel(n, p) (two shapes), for each of the
   five Stiefel retractions, inside a jitted `lax.scan` on $f(X) = -\\tfrac12
   \\mathrm{tr}(X^\\top A X)$, $A = \\mathrm{diag}(d) + UU^\\top$ applied as a function; against
   `optax.adam` on the same parameters and objective (no constraint), one Gram product
   $X^\\top X$ (the floor of any orthonormalising step), a hand-written Riemannian Adam with a
   `jnp.linalg.qr` retraction, and geoopt's `RiemannianAdam` on `geoopt.Stiefel()` (torch,
   CPU, 2 threads), all timed interleaved round by round;
2. convergence after 10^4 steps to the leading eigenspace of a symmetric matrix (known
   optimum: the sum of its top-p eigenvalues, `jnp.linalg.eigh` in float64), with the
   constraint error along the way, for each retraction (and geoopt);
3. the float32 constraint error after 10^4 `riemannian_adam` steps on every manifold and
   retraction structjax offers, each on a simple objective;
4. a real training run: an MLP on scikit-learn's digits with `OrthogonalLinear` hidden layers
   trained by `riemannian_adam`, against the same MLP unconstrained under `optax.adam`.

The floors are printed PASS or MISS: they report, they never fail the run.
"""

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import structjax.manifolds as sm
from structjax.nn import OrthogonalLinear
from structjax.optim import riemannian_adam

from . import _harness as h, _optimizers_report as report

F32 = jnp.float32
RETRACTIONS = ("qr", "polar", "cholesky_qr", "cayley", "cayley_iterative")
LR = 1e-2
_GRAM_FLOOR, _MLP_FLOOR = 6.0, 1.3
_GEOOPT_FLOORS = {(1024, 256): 5.0, (4096, 64): 50.0}  # structjax at least this much faster


# --- objectives -------------------------------------------------------------------------


def _lowrank_diag(n: int, k: int, seed: int):
    """$A = \\mathrm{diag}(d) + UU^\\top$ (n x n, rank-k update), as (d, U) in float32."""
    rng = np.random.default_rng(seed)
    d = rng.uniform(0.0, 1.0, n)
    u = rng.standard_normal((n, k)) / np.sqrt(n)
    return jnp.asarray(d, F32), jnp.asarray(u, F32)


def _apply_a(d, u, x):
    return d[:, None] * x + u @ (u.T @ x)


def _trace_loss(d, u):
    """$-\\tfrac12 \\mathrm{tr}(X^\\top A X)$, $A$ applied as a function."""
    return lambda x: -0.5 * jnp.sum(x * _apply_a(d, u, x))


def _start_point(n: int, p: int, seed: int):
    return sm.Stiefel(n, p).random_point(jax.random.key(seed), dtype=F32)


# --- the contenders of item 1 -------------------------------------------------------------


def _scan_optax(opt, loss, steps: int):
    """`steps` steps of an optax optimiser in one `lax.scan`: `f(x, state) -> (x, state)`."""
    return h.train_steps(lambda x, _: loss(x), opt, steps=steps, record=False)


def naive_riemannian_adam(loss, steps: int, lr=LR, b1=0.9, b2=0.999, eps=1e-8):
    """Riemannian Adam on Stiefel written out by hand (Bécigneul & Ganea 2019, Alg. 1:
    momentum transported by projection, second moment $\\|g\\|^2$ per point), retracted by
    `jnp.linalg.qr` (sign-fixed Q factor; Absil, Mahony & Sepulchre 2008, eq. (4.8))."""

    def proj(x, v):
        xtv = x.T @ v
        return v - x @ (0.5 * (xtv + xtv.T))

    def run(x, state):
        def body(carry, _):
            x, m, v, k = carry
            k = k + 1
            g = proj(x, jax.grad(loss)(x))
            m = b1 * proj(x, m) + (1 - b1) * g
            v = b2 * v + (1 - b2) * jnp.sum(g * g)
            kf = k.astype(F32)
            step = (m / (1 - b1**kf)) / (jnp.sqrt(v / (1 - b2**kf)) + eps)
            q, r = jnp.linalg.qr(x - lr * step)
            x = q * jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0).astype(F32)
            return (x, m, v, k), None

        return jax.lax.scan(body, (x, *state), length=steps)[0]

    return run


def naive_init(x):
    return jnp.zeros_like(x), jnp.zeros((), F32), jnp.zeros((), jnp.int32)


def _scan_gram(steps: int):
    """`steps` Gram products $X^\\top X$ in a scan. $X$ is carried through an
    `optimization_barrier`, so that XLA can neither see it is loop-invariant nor hoist the
    product out of the loop (it does with $X$ a closed-over constant)."""

    def run(x, acc):
        def body(carry, _):
            x, acc = jax.lax.optimization_barrier(carry)
            return (x, acc + x.T @ x), None

        return jax.lax.scan(body, (x, acc), length=steps)[0][1]

    return run


def _geoopt_modules():
    """(torch, geoopt) or the reason they are missing."""
    try:
        import geoopt
        import torch

        torch.set_num_threads(2)
        return (torch, geoopt), None
    except Exception as e:  # any failure to import is reported as such
        return None, f"geoopt: not installed ({type(e).__name__}: {e})"


class _GeooptRun:
    """geoopt's `RiemannianAdam` on `geoopt.Stiefel()` (its default, the canonical metric
    with the Cayley retraction; Bécigneul & Ganea 2019's reference code), same objective."""

    def __init__(self, mods, x0, d, u, lr=LR):
        torch, geoopt = mods
        self.torch = torch
        self.x = geoopt.ManifoldParameter(
            torch.from_numpy(np.array(x0, np.float32)), manifold=geoopt.Stiefel()
        )
        self.d = torch.from_numpy(np.array(d, np.float32))[:, None]
        self.u = torch.from_numpy(np.array(u, np.float32))
        self.opt = geoopt.optim.RiemannianAdam([self.x], lr=lr, betas=(0.9, 0.999), eps=1e-8)

    def step(self, n: int = 1):
        x, d, u = self.x, self.d, self.u
        for _ in range(n):
            self.opt.zero_grad()
            loss = -0.5 * (x * (d * x + u @ (u.T @ x))).sum()
            loss.backward()
            self.opt.step()

    def numpy(self):
        return self.x.detach().numpy().copy()


def _constraint(x) -> float:
    x = np.asarray(x, np.float64)
    return float(np.linalg.norm(x.T @ x - np.eye(x.shape[1])))


def _step_costs(n: int, p: int, steps: int, geo_steps: int | None, rounds: int, mods, why):
    """Item 1 on one shape: ms per step of every contender, interleaved."""
    d, u = _lowrank_diag(n, 8, seed=1)
    loss = _trace_loss(d, u)
    x0 = _start_point(n, p, seed=2)
    cases, compile_s, finals = {}, {}, {}
    for r in RETRACTIONS:
        opt = riemannian_adam(LR, manifolds=sm.Stiefel(n, p, retraction=r))
        state = opt.init(x0)
        compiled, compile_s[r] = h.compile_fn(_scan_optax(opt, loss, steps), x0, state)
        cases[r] = (compiled, (x0, state))
    opt = optax.adam(LR)
    state = opt.init(x0)
    compiled, compile_s["optax.adam"] = h.compile_fn(_scan_optax(opt, loss, steps), x0, state)
    cases["optax.adam"] = (compiled, (x0, state))
    compiled, compile_s["naive qr"] = h.compile_fn(
        naive_riemannian_adam(loss, steps), x0, naive_init(x0)
    )
    cases["naive qr"] = (compiled, (x0, naive_init(x0)))
    acc0 = jnp.zeros((p, p), F32)
    compiled, compile_s["gram X^T X"] = h.compile_fn(_scan_gram(steps), x0, acc0)
    cases["gram X^T X"] = (compiled, (x0, acc0))
    per_call = {k: steps for k in cases}
    geo = None
    if mods is not None and geo_steps:
        geo = _GeooptRun(mods, x0, d, u)
        cases["geoopt"] = (lambda: geo.step(geo_steps), ())
        per_call["geoopt"] = geo_steps
    timings = h.time_interleaved(cases, rounds)
    for name, (fn, args) in cases.items():
        if name == "gram X^T X":
            continue
        if name == "geoopt":
            finals[name] = geo.numpy()
        else:
            out = fn(*args)
            finals[name] = np.asarray(out[0])
    ms = {k: t.best / per_call[k] * 1e3 for k, t in timings.items()}
    ms_median = {k: t.median / per_call[k] * 1e3 for k, t in timings.items()}
    # Same number of steps from the same start: where the runs ended (geoopt after fewer).
    lossf = jax.jit(loss)
    check = {
        k: dict(
            objective=float(lossf(jnp.asarray(x, F32))),
            constraint_error=_constraint(x),
            steps=per_call[k] * (len(timings[k].times) + 1),
        )
        for k, x in finals.items()
    }
    diff_naive = float(np.max(np.abs(finals["qr"] - finals["naive qr"])))
    return dict(
        n=n,
        p=p,
        steps_per_call=per_call,
        rounds=rounds,
        ms_per_step=ms,
        ms_per_step_median=ms_median,
        compile_s=compile_s,
        check=check,
        qr_vs_naive_max_abs_diff=diff_naive,
        geoopt=None if geo is not None else (why or "skipped in --quick (slowest case)"),
    )


# --- item 2: convergence to the leading eigenspace ------------------------------------------


def _eigen_problem(n: int, p: int, seed: int):
    """A = Q diag(lam) Q^T with a spectral gap after the p-th eigenvalue (lam_p = 1,
    lam_{p+1} = 0.8); the optimum of max tr(X^T A X) on St(n, p) is the sum of the top p
    eigenvalues (Ky Fan 1949), taken from `jnp.linalg.eigh` in float64."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.concatenate([np.linspace(2.0, 1.0, p), np.linspace(0.8, 0.0, n - p)])
    a = (q * lam) @ q.T
    a = 0.5 * (a + a.T)
    top = float(jnp.sum(jnp.linalg.eigh(jnp.asarray(a, jnp.float64))[0][-p:]))
    return jnp.asarray(a, F32), top


def _convergence_fn(opt, a, steps: int, every: int):
    """`steps` steps, recording tr(X^T A X) and the constraint error every `every` steps."""
    loss = lambda x: -0.5 * jnp.sum(x * (a @ x))  # noqa: E731
    inner = _scan_optax(opt, loss, every)

    def run(x, state):
        def block(carry, _):
            x, s = inner(*carry)
            err = jnp.linalg.norm(x.T @ x - jnp.eye(x.shape[1], dtype=F32))
            return (x, s), (jnp.sum(x * (a @ x)), err)

        (x, _), trace = jax.lax.scan(block, (x, state), length=steps // every)
        return x, trace

    return run


def _convergence(n, p, steps, every, geo_steps, mods, why, progress):
    a, top = _eigen_problem(n, p, seed=3)
    x0 = _start_point(n, p, seed=4)
    out = dict(n=n, p=p, steps=steps, every=every, optimum=top, lr=LR, runs={})
    for r in RETRACTIONS:
        opt = riemannian_adam(LR, manifolds=sm.Stiefel(n, p, retraction=r))
        state = opt.init(x0)
        compiled, compile_s = h.compile_fn(_convergence_fn(opt, a, steps, every), x0, state)
        start = time.perf_counter()
        x, (obj, err) = jax.block_until_ready(compiled(x0, state))
        wall = time.perf_counter() - start
        out["runs"][r] = _convergence_row(
            np.asarray(obj, np.float64), np.asarray(err, np.float64), top, every, wall, compile_s
        )
        progress.update(f"convergence {r}")
    if mods is None or not geo_steps:
        out["geoopt"] = why or "skipped"
        return out
    torch = mods[0]
    a64 = np.asarray(a, np.float64)
    geo = _GeooptRun(mods, x0, np.zeros(n), np.zeros((n, 1)))
    at = torch.from_numpy(np.array(a, np.float32))
    x = geo.x
    objs, errs = [], []
    start = time.perf_counter()
    for k in range(geo_steps):
        geo.opt.zero_grad()
        (-0.5 * (x * (at @ x)).sum()).backward()
        geo.opt.step()
        if (k + 1) % every == 0:
            xn = geo.numpy().astype(np.float64)
            objs.append(float(np.sum(xn * (a64 @ xn))))
            errs.append(_constraint(xn))
    wall = time.perf_counter() - start
    out["runs"]["geoopt"] = _convergence_row(np.array(objs), np.array(errs), top, every, wall, 0.0)
    out["geoopt"] = f"{geo_steps} steps" + ("" if geo_steps == steps else " (fewer: too slow)")
    progress.update("convergence geoopt")
    return out


def _convergence_row(obj, err, top, every, wall, compile_s):
    gap = (top - obj) / top
    return dict(
        steps=len(obj) * every,
        relative_gap=gap.tolist(),
        constraint_error=err.tolist(),
        final_relative_gap=float(gap[-1]),
        final_constraint_error=float(err[-1]),
        max_constraint_error=float(err.max()),
        wall_s=wall,
        compile_s=compile_s,
    )


# --- item 3: every manifold ---------------------------------------------------------------


def _manifold_cases(quick: bool):
    """(label, manifold, start point, loss) for every manifold and retraction offered; the
    losses are simple: a Rayleigh quotient, a Procrustes distance, a distance to a target
    (outside the ball for the Poincaré ball, so the iterate presses on its boundary)."""
    rng = np.random.default_rng(5)
    key = jax.random.key(6)
    n, p = (32, 4) if quick else (64, 8)
    cases = []
    d, u = _lowrank_diag(n, 4, seed=7)
    rayleigh = _trace_loss(d, u)

    def target(shape):
        return jnp.asarray(rng.standard_normal(shape), F32)

    def dist(t):
        return lambda x: 0.5 * jnp.sum((x - t) ** 2)

    cases.append(("Sphere", sm.Sphere(n), rayleigh_vec(d, u)))
    for r in RETRACTIONS:
        cases.append((f"Stiefel {r}", sm.Stiefel(n, p, retraction=r), rayleigh))
    m = 16
    cases.append(("Orthogonal", sm.Orthogonal(m), dist(target((m, m)))))
    cases.append(("SpecialOrthogonal", sm.SpecialOrthogonal(m), dist(target((m, m)))))
    for r in ("qr", "polar"):
        cases.append((f"Grassmann {r}", sm.Grassmann(n, p, retraction=r), rayleigh))
    k = 8
    g = rng.standard_normal((k, k))
    spd_target = jnp.asarray(g @ g.T / k + 0.1 * np.eye(k), F32)
    for metric, retr in (
        ("affine", "second_order"),
        ("affine", "exp"),
        ("log_euclidean", "exp"),
        ("bures_wasserstein", "exp"),
    ):
        label = f"SPD {metric}" + (f" {retr}" if metric == "affine" else "")
        cases.append(
            (label, sm.SymmetricPositiveDefinite(k, metric=metric, retraction=retr),
             dist(spd_target))
        )  # fmt: skip
    t = target((k,))
    cases.append(("PoincareBall", sm.PoincareBall(k), dist(1.5 * t / jnp.linalg.norm(t))))
    lorentz = sm.Lorentz(k)
    cases.append(("Lorentz", lorentz, dist(lorentz.random_point(jax.random.key(8), dtype=F32) * 2)))
    out = []
    for i, (label, manifold, loss) in enumerate(cases):
        x0 = manifold.random_point(jax.random.fold_in(key, i), dtype=F32)
        out.append((label, manifold, x0, loss))
    return out


def rayleigh_vec(d, u):
    return lambda x: -0.5 * jnp.sum(x * (d * x + u @ (u.T @ x)))


def _manifold_run(label, manifold, x0, loss, steps, every):
    opt = riemannian_adam(LR, manifolds=manifold)
    state = opt.init(x0)
    inner = _scan_optax(opt, loss, every)

    def run(x, state):
        def block(carry, _):
            x, s = inner(*carry)
            return (x, s), (jnp.max(manifold.constraint_error(x)), loss(x))

        (x, _), trace = jax.lax.scan(block, (x, state), length=steps // every)
        return x, trace

    compiled, compile_s = h.compile_fn(run, x0, state)
    start = time.perf_counter()
    x, (err, obj) = jax.block_until_ready(compiled(x0, state))
    wall = time.perf_counter() - start
    err, obj = np.asarray(err, np.float64), np.asarray(obj, np.float64)
    return dict(
        manifold=label,
        repr=repr(manifold),
        shape=list(x0.shape),
        dtype=str(x.dtype),
        steps=steps,
        every=every,
        start_error=float(jnp.max(manifold.constraint_error(x0))),
        final_error=float(err[-1]),
        max_error=float(err.max()),
        errors=err.tolist(),
        start_loss=float(loss(x0)),
        final_loss=float(obj[-1]),
        finite=bool(np.all(np.isfinite(np.asarray(x)))),
        wall_s=wall,
        compile_s=compile_s,
    )


# --- item 4: an MLP on digits ---------------------------------------------------------------


class MLP(eqx.Module):
    l1: eqx.Module
    l2: eqx.Module
    out: eqx.nn.Linear

    def __call__(self, x):
        return self.out(jnp.tanh(self.l2(jnp.tanh(self.l1(x)))))


def _with_retraction(layer, retraction: str):
    w = layer.weight
    stiefel = sm.Stiefel(w.manifold.n, w.manifold.p, retraction=retraction)
    return eqx.tree_at(lambda m: m.weight, layer, sm.Constrained(w.value, stiefel))


def _mlp(kind: str, width: int, key):
    k1, k2, k3 = jax.random.split(key, 3)
    if kind == "adam":
        l1, l2 = eqx.nn.Linear(64, width, key=k1), eqx.nn.Linear(width, width, key=k2)
    else:
        l1, l2 = OrthogonalLinear(64, width, key=k1), OrthogonalLinear(width, width, key=k2)
        if kind != "polar":  # OrthogonalLinear's default; the same weights, another retraction
            l1, l2 = _with_retraction(l1, kind), _with_retraction(l2, kind)
    # OrthogonalLinear has no dtype argument: under x64 its weight and bias are float64.
    return h.cast(MLP(l1, l2, eqx.nn.Linear(width, 10, key=k3, dtype=F32)), F32)


def _train_fn(static, opt, data, batches):
    """The training run on `data`: `run(params, state) -> (params, state, losses)`, one step
    per row of minibatch indices in `batches`."""
    x_tr, y_tr = data

    def loss_fn(params, idx):
        logits = jax.vmap(eqx.combine(params, static))(x_tr[idx])
        return optax.softmax_cross_entropy_with_integer_labels(logits, y_tr[idx]).mean()

    return h.train_steps(loss_fn, opt, batches)


def _accuracy(params, static, x, y) -> float:
    logits = jax.vmap(eqx.combine(params, static))(x)
    return float(jnp.mean(jnp.argmax(logits, -1) == y))


def _max_constraint(params) -> float | None:
    errs = [
        float(jnp.max(c.manifold.constraint_error(c.value)))
        for c in jax.tree_util.tree_leaves(params, is_leaf=lambda t: isinstance(t, sm.Constrained))
        if isinstance(c, sm.Constrained)
    ]
    return max(errs) if errs else None


def _mlp_study(quick: bool, progress):
    # scikit-learn's 8x8 digits, standardised on the training set; 60 / 20 / 20 %, stratified
    train, val, test = h.digits(scale="standardise", test_size=0.2, val_size=0.25)
    width, batch = (128, 128)
    steps = 400 if quick else 3000
    rng = np.random.default_rng(9)
    n_tr = train[0].shape[0]
    per_epoch = n_tr // batch
    idx = np.concatenate(
        [rng.permutation(n_tr)[: per_epoch * batch] for _ in range(-(-steps // per_epoch))]
    )
    batches = jnp.asarray(idx[: steps * batch].reshape(steps, batch), jnp.int32)
    variants = ["adam", "polar"] + ([] if quick else ["cholesky_qr", "qr"])
    lrs = (3e-3,) if quick else (1e-3, 3e-3, 1e-2)
    rows, compiled_at = [], {}
    for kind in variants:
        for lr in lrs:
            params, static = eqx.partition(
                _mlp(kind, width, jax.random.key(10)), eqx.is_inexact_array
            )
            if kind == "adam":
                opt = optax.adam(lr)
            else:
                opt = riemannian_adam(lr, manifolds=sm.manifolds_of(params))
            state = opt.init(params)
            compiled, compile_s = h.compile_fn(
                _train_fn(static, opt, train, batches), params, state
            )
            start = time.perf_counter()
            p_out, _, losses = jax.block_until_ready(compiled(params, state))
            wall = time.perf_counter() - start
            rows.append(
                dict(
                    variant=kind,
                    lr=lr,
                    steps=steps,
                    val_accuracy=_accuracy(p_out, static, *val),
                    test_accuracy=_accuracy(p_out, static, *test),
                    constraint_error=_max_constraint(p_out),
                    losses=np.asarray(losses)[:: max(1, steps // 300)].tolist(),
                    loss_every=max(1, steps // 300),
                    wall_s=wall,
                    compile_s=compile_s,
                    dtype=str(jax.tree_util.tree_leaves(p_out)[0].dtype),
                )
            )
            compiled_at[(kind, lr)] = (compiled, (params, state))
            progress.update(f"mlp {kind} lr={lr:g}")
    # The whole training step, timed interleaved at the learning rate each chose (the cost
    # does not depend on it).
    best = {
        kind: max((r for r in rows if r["variant"] == kind), key=lambda r: r["val_accuracy"])
        for kind in variants
    }
    timings = h.time_interleaved(
        {kind: compiled_at[(kind, best[kind]["lr"])] for kind in variants}, 3 if quick else 7
    )
    us = {k: t.best / steps * 1e6 for k, t in timings.items()}
    progress.update("mlp timing")
    sweep = [] if quick else _batch_sweep(train, width, (512, 2048))
    return dict(
        width=width,
        batch=batch,
        steps=steps,
        architecture=f"64 -> {width} -> {width} -> 10, tanh; hidden layers OrthogonalLinear "
        "(Stiefel(128, 64), Stiefel(128, 128)) or eqx.nn.Linear",
        runs=rows,
        chosen={k: dict(lr=b["lr"], test_accuracy=b["test_accuracy"]) for k, b in best.items()},
        us_per_step=us,
        us_per_step_median={k: t.median / steps * 1e6 for k, t in timings.items()},
        ratio_to_adam={k: us[k] / us["adam"] for k in variants},
        arithmetic=_mlp_arithmetic(width, batch),
        batch_sweep=sweep,
    )


def _mlp_arithmetic(width: int, batch: int) -> dict:
    """Flops of one training step: the model's forward and backward ($\\approx 6 \\times$
    batch x multiply-adds) against the manifold work of Riemannian Adam on the two hidden
    weights (six n x p by p x p-sized products, $2np^2$ flops each: gradient projection 2,
    momentum transport 2, polar retraction 2). The latter does not grow with the batch."""
    macs = 64 * width + width * width + width * 10
    model = 6 * batch * macs
    shapes = [(width, 64), (width, width)]
    manifold = sum(6 * 2 * n * p * p for n, p in shapes)
    return dict(
        model_mflop=model / 1e6,
        manifold_mflop=manifold / 1e6,
        ratio_lower_bound=(model + manifold) / model,
        note="at equal flop rates, riemannian_adam's step costs at least "
        "(model + manifold) / model times optax.adam's",
    )


def _batch_sweep(train, width: int, batch_sizes, steps: int = 300) -> list[dict]:
    """The training-step ratio at larger batches (timing only; same data, sampled with
    replacement): the manifold work is fixed, the model's grows with the batch."""
    rng = np.random.default_rng(11)
    rows = []
    for batch in batch_sizes:
        idx = jnp.asarray(rng.integers(0, train[0].shape[0], (steps, batch)), jnp.int32)
        cases = {}
        for kind in ("adam", "polar"):
            params, static = eqx.partition(
                _mlp(kind, width, jax.random.key(10)), eqx.is_inexact_array
            )
            opt = optax.adam(1e-3) if kind == "adam" else riemannian_adam(
                1e-3, manifolds=sm.manifolds_of(params)
            )  # fmt: skip
            state = opt.init(params)
            compiled, _ = h.compile_fn(_train_fn(static, opt, train, idx), params, state)
            cases[kind] = (compiled, (params, state))
        t = h.time_interleaved(cases, 5)
        us = {k: v.best / steps * 1e6 for k, v in t.items()}
        rows.append(
            dict(batch=batch, us_per_step=us, ratio=us["polar"] / us["adam"],
                 arithmetic=_mlp_arithmetic(width, batch))
        )  # fmt: skip
    return rows


# --- floors and the suite -----------------------------------------------------------------


def _floors(costs, manifolds, mlp) -> list[h.Floor]:
    floors = []
    for c in costs:
        ms = c["ms_per_step"]
        best = min(RETRACTIONS, key=lambda r: ms[r])
        floors.append(
            h.Floor(
                f"(1) {c['n']}x{c['p']}: best retraction step / one Gram product X^T X",
                ms[best] / ms["gram X^T X"],
                _GRAM_FLOOR,
                f"{best} {ms[best]:.3g} ms vs X^T X {ms['gram X^T X']:.3g} ms",
            )
        )
        threshold = _GEOOPT_FLOORS.get((c["n"], c["p"]))
        if threshold is not None and "geoopt" in ms:
            floors.append(
                h.Floor(
                    f"(1) {c['n']}x{c['p']}: best structjax step / geoopt RiemannianAdam step",
                    ms[best] / ms["geoopt"],
                    1 / threshold,
                    f"{best} {ms[best]:.3g} ms vs geoopt {ms['geoopt']:.3g} ms: "
                    f"{ms['geoopt'] / ms[best]:.1f}x faster (floor {threshold:g}x)",
                )
            )
        elif threshold is not None:
            floors.append(
                h.Floor(f"(1) {c['n']}x{c['p']}: structjax / geoopt", None, 1 / threshold,
                        str(c["geoopt"]))
            )  # fmt: skip
    worst = max(manifolds, key=lambda r: r["final_error"] if r["finite"] else np.inf)
    floors.append(
        h.Floor(
            "(3) float32 constraint error after riemannian_adam, worst manifold",
            worst["final_error"] if worst["finite"] else None,
            1e-5,
            f"{worst['manifold']} after {worst['steps']} steps",
        )
    )
    for kind, ratio in mlp["ratio_to_adam"].items():
        if kind == "adam":
            continue
        floors.append(
            h.Floor(
                f"(4) digits MLP training step, OrthogonalLinear ({kind}) + riemannian_adam / "
                "optax.adam",
                ratio,
                _MLP_FLOOR,
                f"{mlp['us_per_step'][kind]:.1f} vs {mlp['us_per_step']['adam']:.1f} us/step",
            )
        )
    return floors


def run(*, quick: bool) -> dict:
    """Run the suite; print tables and floors; write JSON and PNGs under results/.

    Every float32 matrix product runs at full precision (`jax.default_matmul_precision`), as
    structjax's manifolds do by themselves (`structjax.manifolds._base.mm`): on a GPU the
    default is TF32, which puts a Stiefel point 1e-3 off its manifold and would make the
    contenders (optax.adam, the hand-written loop, the Gram product) unlike for like. On CPU
    this changes nothing."""
    with jax.default_matmul_precision("highest"):
        return _run(quick=quick)


def _run(*, quick: bool) -> dict:
    h.header("optimizers", quick, ": float32")
    mods, why = _geoopt_modules()
    if why:
        h.say(why)
    if quick:
        # (n, p, scan steps, geoopt steps per call or None)
        shapes, rounds = [(512, 128, 30, 3), (2048, 32, 50, None)], 3
        conv = dict(n=128, p=8, steps=2000, every=100, geo_steps=300)
        man_steps, man_every = 1000, 100
    else:
        shapes, rounds = [(1024, 256, 50, 5), (4096, 64, 100, 1)], 5
        # geoopt's eager loop runs ~10 ms a step here: 2000 of its steps, not 10^4.
        conv = dict(n=256, p=16, steps=10_000, every=100, geo_steps=2000)
        man_steps, man_every = 10_000, 500
    cases = _manifold_cases(quick)
    mlp_runs = (2 if quick else 12) + 1
    progress = h.Progress(len(shapes) + len(RETRACTIONS) + 1 + len(cases) + mlp_runs, "optimizers")
    costs = []
    for n, p, steps, geo_steps in shapes:
        costs.append(_step_costs(n, p, steps, geo_steps, rounds, mods, why))
        progress.update(f"step cost {n}x{p}")
    convergence = _convergence(
        conv["n"], conv["p"], conv["steps"], conv["every"], conv["geo_steps"], mods, why, progress
    )
    manifolds = []
    for label, manifold, x0, loss in cases:
        manifolds.append(_manifold_run(label, manifold, x0, loss, man_steps, man_every))
        progress.update(label)
    mlp = _mlp_study(quick, progress)
    progress.close()

    report.print_tables(costs, convergence, manifolds, mlp)
    floors = _floors(costs, manifolds, mlp)
    return h.finish(
        "optimizers",
        quick,
        dict(
            dtype="float32", step_costs=costs, convergence=convergence, manifolds=manifolds, mlp=mlp
        ),
        floors,
        lambda suffix: report.write_plots(costs, convergence, manifolds, mlp, suffix),
        versions=("optax", "geoopt", "torch", "scikit-learn"),
        notes=dict(
            ms_per_step="best (and median) over interleaved rounds of one compiled lax.scan "
            "of steps_per_call steps, divided by the steps; compile apart; geoopt: a Python "
            "loop of eager torch steps, torch.set_num_threads(2)",
            objective="item 1: f(X) = -tr(X^T A X)/2, A = diag(d) + U U^T (rank 8) applied "
            "as a function; gradient by jax.grad (geoopt: autograd)",
            relative_gap="(sum of top-p eigenvalues - tr(X^T A X)) / sum of top-p eigenvalues",
            constraint_error="manifold.constraint_error, max over points; Stiefel: ||X^T X - I||_F",
            learning_rate=LR,
            precision="float32 matrix products at full precision (no TF32 on GPU)",
        ),
    )
