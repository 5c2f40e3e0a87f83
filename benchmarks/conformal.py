"""Conformal suite: structjax's conformal Hamiltonian optimisers against optax.

`python -m benchmarks conformal [--quick]`. In one run:

1. iterations and wall time to a tolerance on an ill-conditioned quadratic (condition
   10^4), Rosenbrock, logistic regression on scikit-learn's breast-cancer data (float64), and
   an MLP on digits (float32, minibatches), each method at its best setting on a grid of
   step sizes (and momenta), the whole grid of a method run at once under `jax.vmap`;
2. the largest stable step for each method at a common gradient step $\\epsilon$ and
   momentum $\\mu$ (França et al. 2020 report that relativistic GD stays stable where
   Nesterov diverges: this measures it);
3. the per-step overhead of each optimiser against `optax.sgd` with momentum, on a large
   separable problem where the optimiser's own work dominates, and on the MLP step.

Contenders: optax `sgd` (heavy ball), `sgd(nesterov=True)`, `adam`; structjax
`conformal_symplectic_momentum`, `relativistic_gd` and `hamiltonian_descent` (relativistic
kinetic energy). Each is written in the common parameters $(\\epsilon, \\mu)$: the gradient
step and the momentum factor (`structjax.optim.franca_parameters` for RGD).
"""

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import structjax.optim as so

from . import _conformal_report as report, _harness as h

F32 = jnp.float32
_OVERHEAD_FLOOR = 1.1


# --- the contenders, in the common parameters (eps, mu, extra) ------------------------------


def _rgd(eps, mu, delta):
    # franca_parameters, in jnp so that the grid can be traced under vmap
    hh = jnp.sqrt(2 * eps)
    c = 2 / (hh * jnp.sqrt(delta))
    return so.relativistic_gd(hh, -jnp.log(mu) / hh, 1.0, c)


def _hd(eps, mu, _):
    # Maddison et al.'s factor d = 1 / (1 + gamma eps) set to mu
    return so.hamiltonian_descent(eps, (1 / mu - 1) / eps, so.relativistic_kinetic())


def _csm(eps, mu, _):
    hh = jnp.sqrt(eps)  # eps = h^2 / m, mu = exp(-gamma h)
    return so.conformal_symplectic_momentum(hh, -jnp.log(mu) / hh)


METHODS = {
    "sgd+momentum": lambda eps, mu, _: optax.sgd(eps, momentum=mu),
    "sgd+nesterov": lambda eps, mu, _: optax.sgd(eps, momentum=mu, nesterov=True),
    "adam": lambda eps, mu, _: optax.adam(eps),
    "conformal_momentum": _csm,
    "relativistic_gd": _rgd,
    "hamiltonian_descent": _hd,
}
OURS = ("conformal_momentum", "relativistic_gd", "hamiltonian_descent")


def _grid(method: str, eps_values, quick: bool):
    """(eps, mu, extra) settings of a method: momenta 0.9 and 0.99, RGD's delta 0.1 and 1."""
    mus = (0.9,) if method == "adam" else ((0.9,) if quick else (0.9, 0.99))
    extras = (0.1, 1.0) if method == "relativistic_gd" else (0.0,)
    return [(e, m, x) for e in eps_values for m in mus for x in extras]


# --- problems -------------------------------------------------------------------------------


def _quadratic(n: int = 100, kappa: float = 1e4, seed: int = 0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    a = jnp.asarray((q * np.geomspace(1.0, kappa, n)) @ q.T)
    x_star = jnp.asarray(rng.standard_normal(n))

    def f(x):
        d = x - x_star
        return 0.5 * d @ (a @ d)

    return dict(name=f"quadratic (n={n}, condition {kappa:g})", f=f, x0=jnp.zeros(n), f_star=0.0,
                tol=1e-8 * float(f(jnp.zeros(n))), eps=np.geomspace(1e-6, 1.0, 25))  # fmt: skip


def _rosenbrock():
    def f(x):
        return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2

    return dict(name="Rosenbrock (2-D, from (-1.2, 1))", f=f, x0=jnp.array([-1.2, 1.0]),
                f_star=0.0, tol=1e-10, eps=np.geomspace(1e-5, 0.3, 19))  # fmt: skip


def _logistic():
    """L2-regularised logistic regression on breast-cancer (569 x 30, standardised, plus an
    intercept); lambda = 1e-3. f* from 500 L-BFGS iterations (optax.lbfgs)."""
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    x = jnp.asarray(np.hstack([x, np.ones((x.shape[0], 1))]))
    s = jnp.asarray(2.0 * y - 1.0)

    def f(w):
        return jnp.mean(jax.nn.softplus(-s * (x @ w))) + 0.5e-3 * w @ w

    w0 = jnp.zeros(x.shape[1])
    solver = optax.lbfgs()

    @jax.jit
    def solve(w):
        def body(carry, _):
            w, st = carry
            v, g = optax.value_and_grad_from_state(f)(w, state=st)
            u, st = solver.update(g, st, w, value=v, grad=g, value_fn=f)
            return (optax.apply_updates(w, u), st), None

        return jax.lax.scan(body, (w, solver.init(w)), length=500)[0][0]

    f_star = float(f(solve(w0)))
    return dict(name="logistic regression (breast cancer, 569 x 31)", f=f, x0=w0,
                f_star=f_star, tol=1e-8, eps=np.geomspace(1e-3, 30.0, 19))  # fmt: skip


def _first_below(values, threshold) -> int | None:
    hit = np.nonzero(np.asarray(values) <= threshold)[0]
    return int(hit[0]) + 1 if hit.size else None


def _race(problem, method: str, steps: int, quick: bool):
    """Every setting of `method` on `problem`, vmapped: f - f* after each step."""
    f, x0 = problem["f"], problem["x0"]
    grid = _grid(method, problem["eps"], quick)
    hp = tuple(jnp.asarray(np.array(c, float)) for c in zip(*grid))

    def run(eps, mu, extra):
        opt = METHODS[method](eps, mu, extra)

        def body(carry, _):
            x, st = carry
            u, st = opt.update(jax.grad(f)(x), st, x)
            x = optax.apply_updates(x, u)
            return (x, st), f(x)

        return jax.lax.scan(body, (x0, opt.init(x0)), length=steps)[1]

    values = np.asarray(jax.jit(jax.vmap(run))(*hp)) - problem["f_star"]
    values = np.where(np.isfinite(values), values, np.inf)
    iters = [_first_below(v, problem["tol"]) for v in values]
    # best: fewest iterations to the tolerance, else the lowest final value
    order = sorted(range(len(grid)), key=lambda i: (iters[i] is None, iters[i] or 0, values[i, -1]))
    best = order[0]
    return dict(
        setting=dict(zip(("eps", "mu", "extra"), grid[best])),
        iterations=iters[best],
        final_gap=float(values[best, -1]),
        curve=values[best, :: max(1, steps // 400)].tolist(),
        curve_every=max(1, steps // 400),
        reached=sum(i is not None for i in iters),
        settings=len(grid),
    )


def _step_time(problem, method: str, setting, steps: int = 2000) -> float:
    """Seconds per step of the compiled loop without recording f (one setting)."""
    f, x0 = problem["f"], problem["x0"]
    opt = METHODS[method](*(jnp.asarray(v) for v in setting.values()))

    run = h.train_steps(lambda x, _: f(x), opt, steps=steps, record=False)
    compiled, _ = h.compile_fn(run, x0, opt.init(x0))
    return compiled, (x0, opt.init(x0)), steps


# --- the MLP on digits --------------------------------------------------------------------


def _mlp_params(key):
    model = h.cast(eqx.nn.MLP(64, 10, 128, 2, activation=jnp.tanh, key=key), F32)
    return eqx.partition(model, eqx.is_inexact_array)


def _mlp_loss(static, x, y):
    """Cross-entropy of the MLP on the minibatch of indices `i`."""

    def loss(p, i):
        logits = jax.vmap(eqx.combine(p, static))(x[i])
        return optax.softmax_cross_entropy_with_integer_labels(logits, y[i]).mean()

    return loss


def _mlp_race(method: str, steps: int, quick: bool):
    (x_tr, y_tr), (x_te, y_te) = h.digits(scale="standardise", std_eps=1e-6)
    params, static = _mlp_params(jax.random.key(0))
    batch = 128
    idx = jnp.asarray(
        np.random.default_rng(1).integers(0, x_tr.shape[0], (steps, batch)), jnp.int32
    )
    eps_values = np.geomspace(1e-3, 1e-1, 3 if quick else 5)
    if method == "adam":
        eps_values = eps_values / 30
    grid = _grid(method, eps_values, True)
    loss = _mlp_loss(static, x_tr, y_tr)

    def run(eps, mu, extra):
        opt = METHODS[method](eps, mu, extra)
        p, _ = h.train_steps(loss, opt, idx, record=False)(params, opt.init(params))
        return loss(p, slice(None)), jnp.mean(  # the loss on the whole training set
            jnp.argmax(jax.vmap(eqx.combine(p, static))(x_te), -1) == y_te
        )

    hp = tuple(jnp.asarray(np.array(c, np.float32)) for c in zip(*grid))
    train_loss, test_acc = (np.asarray(a) for a in jax.jit(jax.vmap(run))(*hp))
    train_loss = np.where(np.isfinite(train_loss), train_loss, np.inf)
    best = int(np.argmin(train_loss))
    return dict(setting=dict(zip(("eps", "mu", "extra"), grid[best])),
                train_loss=float(train_loss[best]), test_accuracy=float(test_acc[best]),
                steps=steps)  # fmt: skip


def _mlp_step_cases(steps: int):
    (x_tr, y_tr), _ = h.digits(scale="standardise", std_eps=1e-6)
    params, static = _mlp_params(jax.random.key(0))
    idx = jnp.asarray(np.random.default_rng(2).integers(0, x_tr.shape[0], (steps, 128)), jnp.int32)
    loss = _mlp_loss(static, x_tr, y_tr)
    cases = {}
    for method in METHODS:
        opt = METHODS[method](0.01, 0.9, 1.0)
        state = opt.init(params)
        run = h.train_steps(loss, opt, idx, record=False)
        compiled, _ = h.compile_fn(run, params, state)
        cases[method] = (compiled, (params, state))
    return cases


# --- item 2: stability ----------------------------------------------------------------------


def _unbroken(eps_values, ok) -> float | None:
    """The end of the first unbroken run of `ok` (from the smallest eps that passes): an
    isolated lucky point above a failure does not count."""
    if not ok.any():
        return None
    i0 = int(np.argmax(ok))
    rest = ok[i0:]
    n = len(rest) if rest.all() else int(np.argmin(rest))
    return float(eps_values[i0 + n - 1])


def _stability(problem, steps: int, eps_values, mu: float = 0.9):
    """For each method at momentum mu: f(x_T) - f* after `steps` steps across eps; stable
    when finite and below the starting value."""
    f, x0 = problem["f"], problem["x0"]
    f0 = float(f(x0)) - problem["f_star"]
    variants = {
        "sgd+momentum": ("sgd+momentum", 0.0),
        "sgd+nesterov": ("sgd+nesterov", 0.0),
        "conformal_momentum": ("conformal_momentum", 0.0),
        "relativistic_gd d=0.1": ("relativistic_gd", 0.1),
        "relativistic_gd d=1": ("relativistic_gd", 1.0),
        "relativistic_gd d=10": ("relativistic_gd", 10.0),
        "hamiltonian_descent": ("hamiltonian_descent", 0.0),
        "adam (eps = lr)": ("adam", 0.0),
    }
    out = {}
    for label, (method, extra) in variants.items():

        def run(eps, method=method, extra=extra):
            opt = METHODS[method](eps, jnp.asarray(mu), jnp.asarray(extra))
            run = h.train_steps(lambda x, _: f(x), opt, steps=steps, record=False)
            return f(run(x0, opt.init(x0))[0])

        finals = np.asarray(jax.jit(jax.vmap(run))(jnp.asarray(eps_values))) - problem["f_star"]
        stable = np.isfinite(finals) & (finals < f0)
        converged = np.isfinite(finals) & (finals <= 1e-6 * f0)
        out[label] = dict(
            final=np.where(np.isfinite(finals), finals, np.inf).tolist(),
            largest_stable_eps=_unbroken(eps_values, stable),
            largest_converging_eps=_unbroken(eps_values, converged),
            stable_again_above=int(stable[np.argmin(stable) :].sum()) if not stable.all() else 0,
        )
    return dict(problem=problem["name"], steps=steps, mu=mu, eps=list(map(float, eps_values)),
                f0=f0, methods=out)  # fmt: skip


# --- item 3: overhead ---------------------------------------------------------------------


def _separable_cases(n: int, steps: int):
    """A problem whose gradient is one cheap elementwise pass, so the optimiser's own work
    dominates the step: f(x) = sum(x^2/2 + cos x), n parameters (float32)."""
    x0 = jnp.linspace(-1.0, 1.0, n, dtype=F32)

    def grad(x):
        return x - jnp.sin(x)

    cases = {}
    for method in METHODS:
        opt = METHODS[method](1e-3, 0.9, 1.0)

        def run(x, st, opt=opt):
            def body(carry, _):
                x, st = carry
                u, st = opt.update(grad(x), st, x)
                return (optax.apply_updates(x, u), st), None

            return jax.lax.scan(body, (x, st), length=steps)[0]

        state = opt.init(x0)
        compiled, _ = h.compile_fn(run, x0, state)
        cases[method] = (compiled, (x0, state))
    return cases


def _overhead(quick: bool):
    """us per step (best round) and the median over rounds of each round's ratio to
    `sgd+momentum` (paired: a slow spell of the machine hits both sides of a ratio)."""
    rows, ratios = {}, {}
    n, steps = (1 << 18, 50) if quick else (1 << 22, 50)
    rounds = 3 if quick else 15
    for label, cases, k in [
        (f"separable, {n} float32 parameters", _separable_cases(n, steps), steps),
        ("digits MLP training step (64-128-128-10, batch 128)", _mlp_step_cases(200), 200),
    ]:
        t = h.time_interleaved(cases, rounds)
        base = np.asarray(t["sgd+momentum"].times)
        rows[label] = {m: v.best / k * 1e6 for m, v in t.items()}
        ratios[label] = {m: float(np.median(np.asarray(v.times) / base)) for m, v in t.items()}
    return rows, ratios


# --- the suite ------------------------------------------------------------------------------


def run(*, quick: bool) -> dict:
    """Run the suite; print tables and floors; write JSON and PNGs under results/."""
    h.header("conformal", quick)
    problems = [_quadratic(), _rosenbrock(), _logistic()]
    steps = 4000 if quick else 20_000
    mlp_steps = 300 if quick else 2000
    progress = h.Progress(len(problems) * len(METHODS) + len(METHODS) + 3 + 1, "conformal")
    races = []
    for problem in problems:
        row = dict(problem=problem["name"], tol=problem["tol"], steps=steps, methods={})
        for method in METHODS:
            start = time.perf_counter()
            r = _race(problem, method, steps, quick)
            r["grid_wall_s"] = time.perf_counter() - start
            row["methods"][method] = r
            progress.update(f"{problem['name'][:12]} {method}")
        # wall time to the tolerance: iterations x the seconds per step of the best setting
        cases = {m: _step_time(problem, m, row["methods"][m]["setting"]) for m in METHODS}
        timings = h.time_interleaved({m: (c, a) for m, (c, a, _) in cases.items()}, 3)
        for m, (_, _, n) in cases.items():
            r = row["methods"][m]
            r["us_per_step"] = timings[m].best / n * 1e6
            r["wall_to_tol_ms"] = (
                None if r["iterations"] is None else r["iterations"] * r["us_per_step"] / 1e3
            )
        races.append(row)
    mlp = {}
    for method in METHODS:
        mlp[method] = _mlp_race(method, mlp_steps, quick)
        progress.update(f"mlp {method}")
    stab_eps = np.geomspace(1e-5, 1e-2, 16 if quick else 31)
    stability = [_stability(problems[0], 2000, stab_eps)]
    progress.update("stability quadratic")
    stability.append(_stability(problems[1], 5000, np.geomspace(1e-5, 3e-2, 16 if quick else 31)))
    progress.update("stability rosenbrock")
    overhead, ratios = _overhead(quick)
    progress.update("overhead")
    progress.close()

    report.print_tables(races, mlp, stability, overhead, ratios)
    floors = []
    for label, us in overhead.items():
        for m in OURS:
            floors.append(
                h.Floor(
                    f"(3) {label}: {m} step / optax.sgd(momentum) step (median paired ratio)",
                    ratios[label][m],
                    _OVERHEAD_FLOOR,
                    f"best {us[m]:.1f} vs {us['sgd+momentum']:.1f} us/step",
                )
            )
    results = dict(
        races=races,
        mlp=mlp,
        stability=stability,
        overhead_us_per_step=overhead,
        overhead_median_paired_ratio=ratios,
    )
    return h.finish(
        "conformal",
        quick,
        results,
        floors,
        lambda suffix: report.write_plots(races, stability, overhead, suffix),
        notes=dict(
            parameters="every method in (eps, mu): gradient step and momentum factor; "
            "conformal_momentum h = sqrt(eps), gamma = -ln(mu)/h; relativistic_gd by "
            "franca_parameters(eps, mu, delta) ('extra' = delta); hamiltonian_descent with the "
            "relativistic kinetic energy and (1 + gamma eps)^-1 = mu; adam: eps = learning rate",
            best="fewest iterations to the tolerance over the grid, else the lowest final gap",
            wall_to_tol="iterations x best-of-rounds seconds per step of the compiled loop "
            "without recording f",
            stability="stable: f(x_T) finite and below f(x_0) after `steps` steps; "
            "converging: f(x_T) - f* <= 1e-6 (f(x_0) - f*); both the end of the first "
            "unbroken range of eps that pass; stable_again_above: grid points past a failure "
            "that pass again",
            dtype="float64, the MLP and the overhead problems float32",
        ),
    )
