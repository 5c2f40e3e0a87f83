"""nn suite: structjax.nn's structured layers against the unstructured networks a user would
otherwise train, each pair in the same run.

`python -m benchmarks nn [--quick]`. In one run:

1. **Memory and time against depth** (8 ... 256 blocks): a `Reversible` stack of RevNet
   blocks (`revnet_block`) and of `VerletBlock`s, `memory="reversible"` against the same
   network with `memory="stored"` (plain autodiff through the scan). Memory is XLA's own
   account of the compiled gradient function (`jax.jit(grad).lower(...).compile()
   .memory_analysis()`): `temp` is the activation/scratch memory, `argument`/`output` the
   parameters and their gradients (the same for all variants). The reversible stack is run
   two ways: as documented, one example per call batched with `jax.vmap` ("reversible
   (vmap)"), and with the whole batch inside each block (a `_Batched` wrapper, so the batch
   goes through one `custom_vjp`: "reversible (batch in block)"). Times are best-of-rounds
   of the compiled gradient, interleaved; ratios are per-round ratios to "stored", median.
   The gradient of each reversible variant is compared with "stored" in float64.
2. **Learned dynamics** (Greydanus, Dzamba & Yosinski 2019): mass-spring, ideal pendulum and
   the two-body problem in relative coordinates (Kepler, near-circular orbits). Training data
   are trajectories by `BlanesMoan6` through `solve_fixed` (step 0.01, sampled every 0.1), with
   the true time derivatives and the one-step pairs (y_n, y_{n+1}); no noise. Contenders:
   a `SeparableHamiltonianNet` and a `HamiltonianNet` (HNNs) and a plain MLP vector field fit
   to the derivatives; a `GSympNet` and a residual MLP map fit to the pairs. Each is rolled
   out for 10^4 steps of 0.1 (quick: 10^3) from held-out initial conditions: the HNNs with
   their symplectic integrators (`VelocityVerlet`, `GeneralizedLeapfrog`) and with diffrax's
   Tsit5 at the same fixed step (the MLP field's integrator), the maps by iteration. The
   measure is the relative error of the TRUE Hamiltonian, max_t |H(y_t) - H(y_0)| / |H(y_0)|
   and its final value; the exact Hamiltonian's own rollouts (Verlet, Tsit5) give the
   integrators' share. `check.symplecticity_error` certifies the trained maps.
3. **Density estimation** on scikit-learn's `make_moons` and `make_circles` (standardised,
   75/25 split): RealNVP (`AffineCoupling`), NICE (`AdditiveCoupling`, volume preserving,
   with and without a diagonal scale), a `SymplecticFlow` (volume preserving) and an i-ResNet
   (`Invert(InvertibleResidual)`) and a continuous normalising flow (`CNF`, FFJORD, exact
   trace, trained through `solve_fixed(adjoint="symplectic")`; its inversion and log-det
   hold to the solver's accuracy, so it is left out of the exactness floors), by maximum
   likelihood with a standard-normal base; against
   scikit-learn's Gaussian KDE (bandwidth by cross-validation) and the base alone. Reported:
   test log-likelihood (nats per sample) and the certificates `check.inversion_error` and
   `check.log_det_error` of the trained flows.
4. **Certified robustness** on scikit-learn's `load_digits` (scaled to [0, 1]): 1-Lipschitz
   networks (`AOLLinear` and `OrthogonalLinear` on the Stiefel manifold, `GroupSort`) trained
   with a margin-aware cross-entropy, against a plain ReLU MLP of the same widths: clean test
   accuracy and certified robust accuracy at L2 radius eps (a point is certified when its
   logit margin exceeds sqrt(2) L eps, Tsuzuku, Sato & Sugiyama 2018, L the product of the
   layers' declared `lipschitz_bound`s; for the MLP the product of its spectral norms), and
   `check.lipschitz_lower_bound` of each trained network against its bound.

Floors are reported PASS or MISS, never enforced. Training runs in float32 (one
`lax.scan` of optax steps inside one jit); certificates and rollouts in float64 on copies of
the trained weights.
"""

import time
from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import structjax.integrators as si
import structjax.nn as snn
import structjax.optim as so
from structjax import check
from structjax.manifolds import manifolds_of

from . import _harness as h, _nn_report as report

F32, F64 = jnp.float32, jnp.float64
_MEMORY_FLOOR = 1.5  # reversible temp memory at the largest depth / at the smallest
_TIME_FLOOR = 2.5  # reversible gradient time / stored gradient time, at the largest depth
_MAX_TEMP_BYTES = 2 * 2**30  # compile, but do not run, a gradient that needs more scratch


def _fit(model, loss: Callable, steps: int, lr: float, batches=None, optimiser=None):
    """`h.train` in float32 (one jit), Adam or `optimiser(schedule)` on a cosine schedule;
    `batches` (leading axis = steps) or None (full batch)."""
    schedule = h.cosine(lr, steps)
    opt = optax.adam(schedule) if optimiser is None else optimiser(schedule)
    return h.train(h.cast(model, F32), loss, opt, batches, steps=steps)


# --- 1. reversible stacks: memory and time against depth --------------------------------------


class _Batched(snn.AbstractBijection):
    """A block applied to a whole batch (leading axis) at once; log-determinants summed. In a
    `Reversible` stack it puts the batch inside the `custom_vjp`, so the backward pass
    contracts parameter cotangents over the batch block by block."""

    block: snn.AbstractBijection

    def forward_and_log_det(self, x):
        y, ld = jax.vmap(self.block.forward_and_log_det)(x)
        return y, jnp.sum(ld)

    def inverse_and_log_det(self, y):
        x, ld = jax.vmap(self.block.inverse_and_log_det)(y)
        return x, jnp.sum(ld)


_VARIANTS = ("stored", "reversible (vmap)", "reversible (batch in block)")


def _stack(kind: str, variant: str, depth: int, dim: int, width: int, dtype):
    if kind == "revnet":

        def block(k):
            return snn.revnet_block(dim, width, key=k)

    else:  # (q, p) of dim/2 each: the same state size

        def block(k):
            return snn.VerletBlock(dim // 2, width, key=k)

    make = (lambda k: _Batched(block(k))) if variant.endswith("(batch in block)") else block
    memory = "stored" if variant == "stored" else "reversible"
    # the same key for every variant: the same weights
    return h.cast(snn.Reversible(make, depth, memory, key=jax.random.key(0)), dtype)


def _grad_fn(kind: str, variant: str, static):
    batched = variant.endswith("(batch in block)")

    def loss(params, x):
        model = eqx.combine(params, static)
        apply = model if batched else jax.vmap(model)
        y = apply(x) if kind == "revnet" else apply(tuple(jnp.split(x, 2, axis=-1)))
        flat = y if kind == "revnet" else jnp.concatenate(y, axis=-1)
        return jnp.mean(jnp.sum(flat**2, axis=-1))

    return jax.grad(loss)


def _compile_grad(kind, variant, depth, batch, dim, width, dtype):
    model = _stack(kind, variant, depth, dim, width, dtype)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    x = jax.random.normal(jax.random.key(1), (batch, dim), dtype)
    compiled, compile_s = h.compile_fn(_grad_fn(kind, variant, static), params, x)
    mem = compiled.memory_analysis()
    memory = dict(
        temp_bytes=int(mem.temp_size_in_bytes),
        argument_bytes=int(mem.argument_size_in_bytes),
        output_bytes=int(mem.output_size_in_bytes),
    )
    return compiled, (params, x), memory, compile_s


def _agreement(kind, depth, dim, width, variants, batch=32) -> dict:
    """max |g_reversible - g_stored| in float64, each reversible variant, and max |g_stored|."""
    grads = {}
    x = jax.random.normal(jax.random.key(2), (batch, dim), F64)
    for variant in variants:
        model = _stack(kind, variant, depth, dim, width, F64)
        params, static = eqx.partition(model, eqx.is_inexact_array)
        g = jax.jit(_grad_fn(kind, variant, static))(params, x)
        # the batch-in-block variant has one more level (`.block`) in its tree: compare leaves
        grads[variant] = jax.tree_util.tree_leaves(g)
    ref = grads["stored"]
    scale = max(float(jnp.max(jnp.abs(a))) for a in ref)
    out = dict(max_abs_grad=scale)
    for variant in variants[1:]:
        out[variant] = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(grads[variant], ref))
    return out


def _memory_vs_depth(quick: bool, progress) -> dict:
    if quick:  # the documented usage only
        kinds, depths, batch, dim, width, rounds = ("revnet",), (8, 64, 256), 256, 32, 32, 3
        variants = _VARIANTS[:2]
    else:
        kinds, depths = ("revnet", "verlet"), (8, 16, 32, 64, 128, 256)
        batch, dim, width, rounds, variants = 512, 32, 64, 5, _VARIANTS
    results = dict(batch=batch, dim=dim, width=width, depths=list(depths), dtype="float32",
                   variants=list(variants), kinds={})  # fmt: skip
    for kind in kinds:
        rows = []
        for depth in depths:
            row = dict(depth=depth, variants={})
            cases = {}
            for variant in variants:
                compiled, args, memory, compile_s = _compile_grad(
                    kind, variant, depth, batch, dim, width, F32
                )
                row["variants"][variant] = dict(memory, compile_s=compile_s, ran=True)
                if memory["temp_bytes"] > _MAX_TEMP_BYTES:
                    row["variants"][variant]["ran"] = False
                else:
                    cases[variant] = (compiled, args)
            timings = h.time_interleaved(cases, rounds)
            base = np.asarray(timings["stored"].times)
            for variant, t in timings.items():
                row["variants"][variant].update(
                    best_s=t.best,
                    median_s=t.median,
                    ratio_to_stored=float(np.median(np.asarray(t.times) / base)),
                )
            rows.append(row)
            progress.update(f"{kind} depth {depth}")
        results["kinds"][kind] = rows
    # gradient agreement in float64 (a small batch: it checks the arithmetic, not speed)
    check_depths = depths[-1:] if quick else depths
    agreement = {}
    for kind in kinds:
        agreement[kind] = {d: _agreement(kind, d, dim, width, variants) for d in check_depths}
        progress.update(f"{kind} gradient check")
    results["agreement_float64"] = agreement
    return results


def _memory_floors(mem: dict) -> list[h.Floor]:
    floors = []
    lo, hi = mem["depths"][0], mem["depths"][-1]
    for kind, rows in mem["kinds"].items():
        first, last = rows[0]["variants"], rows[-1]["variants"]
        for variant in mem["variants"][1:]:
            growth = last[variant]["temp_bytes"] / max(first[variant]["temp_bytes"], 1)
            floors.append(
                h.Floor(
                    f"(1) {kind}, {variant}: temp memory at depth {hi} / at depth {lo}",
                    growth,
                    _MEMORY_FLOOR,
                    f"{last[variant]['temp_bytes'] / 2**20:.1f} MiB vs "
                    f"{first[variant]['temp_bytes'] / 2**20:.1f} MiB "
                    f"(stored: {last['stored']['temp_bytes'] / 2**20:.1f} MiB at depth {hi})",
                )
            )
            v = last[variant]
            ratio = v.get("ratio_to_stored")
            detail = (
                f"{v['best_s'] * 1e3:.1f} ms vs {last['stored']['best_s'] * 1e3:.1f} ms (best)"
                if v["ran"]
                else f"not run: its compiled gradient needs {v['temp_bytes'] / 2**30:.1f} GiB "
                f"of scratch (limit {_MAX_TEMP_BYTES / 2**30:g} GiB)"
            )
            floors.append(
                h.Floor(
                    f"(1) {kind}, {variant}: gradient time / stored at depth {hi} "
                    "(median paired ratio)",
                    ratio,
                    _TIME_FLOOR,
                    detail,
                )
            )
    return floors


# --- 2. learned dynamics --------------------------------------------------------------------


def _kinetic(p, args=None):
    return 0.5 * jnp.sum(p**2)


def _spring(q, args=None):
    return 0.5 * jnp.sum(q**2)


def _pendulum(q, args=None):
    return jnp.sum(1.0 - jnp.cos(q))


def _kepler(q, args=None):
    return -1.0 / jnp.sqrt(jnp.sum(q**2))


def _ring(rng, n, r_lo, r_hi):
    """(q, p) on circles of radius in [r_lo, r_hi] of the (q, p) plane, uniform phase."""
    r, th = rng.uniform(r_lo, r_hi, n), rng.uniform(0, 2 * np.pi, n)
    return (r * np.cos(th))[:, None], (r * np.sin(th))[:, None]


def _orbits(rng, n, spread):
    """Kepler orbits of radius in [0.85, 1.15], speed (1 + d) times the circular one,
    |d| <= spread, at a uniform angle, anticlockwise."""
    r, phi = rng.uniform(0.85, 1.15, n), rng.uniform(0, 2 * np.pi, n)
    v = np.sqrt(1 / r) * (1 + rng.uniform(-spread, spread, n))
    q = np.stack([r * np.cos(phi), r * np.sin(phi)], 1)
    return q, np.stack([-v * np.sin(phi), v * np.cos(phi)], 1)


SYSTEMS = {
    "mass-spring": dict(
        dim=1, potential=_spring, title="mass-spring, H = p^2/2 + q^2/2",
        train=lambda rng, n: _ring(rng, n, 0.2, 1.2), test=lambda rng, n: _ring(rng, n, 0.3, 1.1),
    ),
    "pendulum": dict(
        dim=1, potential=_pendulum, title="pendulum, H = p^2/2 + (1 - cos q)",
        train=lambda rng, n: _ring(rng, n, 0.3, 1.6), test=lambda rng, n: _ring(rng, n, 0.4, 1.5),
    ),
    "two-body": dict(
        dim=2, potential=_kepler, title="two-body (relative), H = |p|^2/2 - 1/|q|",
        train=lambda rng, n: _orbits(rng, n, 0.1), test=lambda rng, n: _orbits(rng, n, 0.05),
    ),
}  # fmt: skip
_DT = 0.1  # the rollout step and the spacing of the training samples

# model -> how it is rolled out
_ROLLOUTS = {
    "exact H, VelocityVerlet": "reference",
    "exact H, Tsit5": "reference",
    "HNN separable, VelocityVerlet": "hnn",
    "HNN separable, Tsit5": "hnn",
    "HNN general, GeneralizedLeapfrog": "hnn",
    "MLP field, Tsit5": "baseline",
    "GSympNet map": "map",
    "MLP map (residual)": "baseline",
}


def _dynamics_data(system, ntraj: int, samples: int, seed: int = 0):
    dim, potential = system["dim"], system["potential"]
    terms = si.separable_terms(_kinetic, potential)
    q0, p0 = system["train"](np.random.default_rng(seed), ntraj)

    @jax.jit
    @jax.vmap
    def trajectory(q, p):
        sol = si.solve_fixed(terms, si.BlanesMoan6(), (q, p), dt=_DT / 10,
                             num_steps=samples * 10, save_every=10)  # fmt: skip
        return jnp.concatenate(sol.ys, axis=-1)

    ys = trajectory(jnp.asarray(q0), jnp.asarray(p0))  # (ntraj, samples + 1, 2 dim)
    x = ys.reshape(-1, 2 * dim)
    dx = jax.vmap(lambda y: jnp.concatenate([y[dim:], -jax.grad(potential)(y[:dim])]))(x)
    pairs = (ys[:, :-1].reshape(-1, 2 * dim), ys[:, 1:].reshape(-1, 2 * dim))
    return x.astype(F32), dx.astype(F32), tuple(a.astype(F32) for a in pairs)


class _MLPField(eqx.Module):
    """A plain MLP vector field on y = (q, p)."""

    mlp: eqx.nn.MLP
    dim: int = eqx.field(static=True)

    def __call__(self, y):
        out = self.mlp(jnp.concatenate(y))
        return out[: self.dim], out[self.dim :]


class _MLPMap(eqx.Module):
    """A residual one-step map y + dt * MLP(y) on y = (q, p)."""

    mlp: eqx.nn.MLP
    dim: int = eqx.field(static=True)

    def __call__(self, y):
        z = jnp.concatenate(y)
        z = z + _DT * self.mlp(z)
        return z[: self.dim], z[self.dim :]


def _train_dynamics(system, data, width: int, steps: int, models: tuple[str, ...]):
    dim = system["dim"]
    x, dx, (a, b) = data
    keys = jax.random.split(jax.random.key(0), 4)

    def derivative_loss(m, _):
        pred = jax.vmap(lambda y: jnp.concatenate(m((y[:dim], y[dim:]))))(x)
        return jnp.mean((pred - dx) ** 2)

    def map_loss(m, _):
        pred = jax.vmap(lambda y: jnp.concatenate(m((y[:dim], y[dim:]))))(a)
        return jnp.mean((pred - b) ** 2)

    candidates = {
        "HNN separable": (lambda: snn.SeparableHamiltonianNet(dim, width, key=keys[0]),
                          derivative_loss),
        "HNN general": (lambda: snn.HamiltonianNet(dim, width, key=keys[1]), derivative_loss),
        "MLP field": (lambda: _MLPField(eqx.nn.MLP(2 * dim, 2 * dim, width, 2, jnp.tanh,
                                                   key=keys[2]), dim), derivative_loss),
        "GSympNet map": (lambda: snn.GSympNet(dim, layers=6, width=width, key=keys[3]), map_loss),
        "MLP map (residual)": (lambda: _MLPMap(eqx.nn.MLP(2 * dim, 2 * dim, width, 2, jnp.tanh,
                                                          key=keys[2]), dim), map_loss),
    }  # fmt: skip
    trained = {}
    for name in models:
        make, loss = candidates[name]
        model, losses, wall = _fit(make(), loss, steps, 3e-3)
        trained[name] = dict(model=h.cast(model, F64), final_loss=float(losses[-1]), train_s=wall)
    return trained


def _iterate(step: Callable, num_steps: int):
    def rollout(q, p):
        def body(y, _):
            y = step(y)
            return y, y

        _, ys = jax.lax.scan(body, (q, p), length=num_steps)
        return jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), (q, p), ys)

    return rollout


def _field_rollout(field: Callable, solver, num_steps: int):
    term = diffrax.ODETerm(lambda t, y, args: field(y))

    def rollout(q, p):
        return si.solve_fixed(term, solver, (q, p), dt=_DT, num_steps=num_steps, save_every=1).ys

    return rollout


def _rollout_fns(system, trained, num_steps: int) -> dict[str, Callable]:
    terms = si.separable_terms(_kinetic, system["potential"])
    fns = {
        "exact H, VelocityVerlet": lambda q, p: (
            si.solve_fixed(
                terms, si.VelocityVerlet(), (q, p), dt=_DT, num_steps=num_steps, save_every=1
            ).ys
        ),
        "exact H, Tsit5": _field_rollout(
            lambda y: (y[1], -jax.grad(system["potential"])(y[0])), diffrax.Tsit5(), num_steps
        ),
    }
    if "HNN separable" in trained:
        hnn = trained["HNN separable"]["model"]
        fns["HNN separable, VelocityVerlet"] = lambda q, p: hnn.rollout((q, p), _DT, num_steps).ys
        fns["HNN separable, Tsit5"] = _field_rollout(hnn, diffrax.Tsit5(), num_steps)
    if "HNN general" in trained:
        ghnn = trained["HNN general"]["model"]
        fns["HNN general, GeneralizedLeapfrog"] = lambda q, p: (
            ghnn.rollout((q, p), _DT, num_steps).ys
        )
    if "MLP field" in trained:
        fns["MLP field, Tsit5"] = _field_rollout(trained["MLP field"]["model"], diffrax.Tsit5(),
                                                 num_steps)  # fmt: skip
    for name in ("GSympNet map", "MLP map (residual)"):
        if name in trained:
            fns[name] = _iterate(trained[name]["model"], num_steps)
    return fns


def _sig(values, digits: int = 3) -> list:
    """Numbers rounded to `digits` significant digits (curves kept in the JSON)."""
    return [float(f"{v:.{digits}g}") for v in np.ravel(values)]


def _curve_points(num_steps: int, points: int = 150) -> np.ndarray:
    """Step indices at which curves are kept: log-spaced, 0 and the last included."""
    idx = np.unique(np.round(np.geomspace(1, num_steps + 1, points)).astype(int) - 1)
    return np.union1d(idx, [num_steps])


def _energy_errors(system, q0, p0, rollouts: dict[str, Callable], num_steps: int) -> dict:
    """Every rollout from every initial condition, in one jit: the relative error of the
    true H along each, summarised."""
    potential = system["potential"]

    def hamiltonian(q, p):
        return _kinetic(p) + potential(q)

    def rel_errors(q, p):
        out = {}
        for label, rollout in rollouts.items():
            qs, ps = rollout(q, p)
            energy = jax.vmap(hamiltonian)(qs, ps)
            drift = check.energy_error(hamiltonian, (qs, ps)).drift
            out[label] = (jnp.abs(energy - energy[0]) / jnp.abs(energy[0]), drift)
        return out

    start = time.perf_counter()
    results = jax.block_until_ready(jax.jit(jax.vmap(rel_errors))(q0, p0))
    wall = time.perf_counter() - start
    idx = _curve_points(num_steps)
    summary = {}
    for label in rollouts:  # (a dict comes back from jit with its keys sorted)
        rel, drift = results[label]
        rel = np.asarray(rel)
        rel = np.where(np.isfinite(rel), rel, np.inf)  # an orbit that escaped or blew up
        max_err, final = rel.max(axis=1), rel[:, -1]
        summary[label] = dict(
            max_error_median=float(np.median(max_err)),
            max_error_worst=float(np.max(max_err)),
            final_error_median=float(np.median(final)),
            max_error_per_ic=max_err.tolist(),
            final_error_per_ic=final.tolist(),
            drift_median=float(np.median(np.asarray(drift))),
            curve_steps=idx.tolist(),
            curve_median=_sig(np.median(rel[:, idx], axis=0)),
            curve_per_ic=[_sig(c) for c in rel[:, idx]],
            kind=_ROLLOUTS[label],
        )
    return summary, wall


def _symplecticity(models: dict, dim: int, x) -> dict[str, float]:
    """max over 8 training states of `check.symplecticity_error` of each one-step map."""
    pts = x[:: max(1, x.shape[0] // 8)][:8].astype(F64)

    def errors(y):
        return {
            name: check.symplecticity_error(lambda q, p, m=m: m((q, p)), y[:dim], y[dim:])
            for name, m in models.items()
        }

    out = jax.jit(jax.vmap(errors))(pts)
    return {name: float(jnp.max(v)) for name, v in out.items()}


def _dynamics(quick: bool, progress) -> dict:
    if quick:
        ntraj, samples, width, steps, num_steps, n_test = 16, 64, 32, 2000, 1000, 4
        models = ("HNN separable", "MLP field", "GSympNet map", "MLP map (residual)")
    else:
        ntraj, samples, width, steps, num_steps, n_test = 32, 64, 64, 4000, 10_000, 8
        models = ("HNN separable", "HNN general", "MLP field", "GSympNet map",
                  "MLP map (residual)")  # fmt: skip
    out = dict(dt=_DT, num_steps=num_steps, train_trajectories=ntraj,
               samples_per_trajectory=samples, width=width, train_steps=steps, learning_rate=3e-3,
               held_out=n_test, systems={})  # fmt: skip
    for name, system in SYSTEMS.items():
        data = _dynamics_data(system, ntraj, samples)
        trained = _train_dynamics(system, data, width, steps, models)
        progress.update(f"{name} training")
        q0, p0 = (jnp.asarray(a) for a in system["test"](np.random.default_rng(1), n_test))
        h0 = jax.vmap(lambda q, p: _kinetic(p) + system["potential"](q))(q0, p0)
        fns = _rollout_fns(system, trained, num_steps)
        rollouts, rollout_wall = _energy_errors(system, q0, p0, fns, num_steps)
        maps = {m: trained[m]["model"] for m in ("GSympNet map", "MLP map (residual)")}
        sympl = _symplecticity(maps, system["dim"], data[2][0])
        out["systems"][name] = dict(
            title=system["title"],
            dim=system["dim"],
            train_points=int(data[0].shape[0]),
            initial_energies=np.asarray(h0).tolist(),
            training={
                m: dict(final_loss=t["final_loss"], train_s=t["train_s"])
                for m, t in trained.items()
            },  # fmt: skip
            rollouts=rollouts,
            rollouts_wall_s=rollout_wall,
            symplecticity_error=sympl,
        )
        progress.update(f"{name} rollouts")
    return out


def _dynamics_floors(dyn: dict, quick: bool) -> list[h.Floor]:
    floors = []
    pairs = [("HNN separable, VelocityVerlet", "MLP field, Tsit5")]
    if not quick:  # the quick run's 2000 training steps leave the GSympNet under-trained
        pairs.append(("GSympNet map", "MLP map (residual)"))
    for name, s in dyn["systems"].items():
        r = s["rollouts"]
        for ours, theirs in pairs:
            a, b = r[ours]["max_error_median"], r[theirs]["max_error_median"]
            floors.append(
                h.Floor(
                    f"(2) {name}: max energy error, {ours} / {theirs} (median over ICs)",
                    a / b if b > 0 else None,
                    1.0,
                    f"{a:.2e} vs {b:.2e} over {dyn['num_steps']} steps",
                )
            )
    return floors


# --- 3. density estimation ------------------------------------------------------------------


class _Scale(snn.AbstractBijection):
    """A diagonal scaling y = x * exp(s): the last layer of NICE (Dinh, Krueger & Bengio 2015,
    Sec. 3.3). structjax has none; written here for the comparison."""

    log_scale: jax.Array

    def forward_and_log_det(self, x):
        return x * jnp.exp(self.log_scale), jnp.sum(self.log_scale)

    def inverse_and_log_det(self, y):
        return y * jnp.exp(-self.log_scale), -jnp.sum(self.log_scale)


def _density_data(name: str, n: int):
    from sklearn.datasets import make_circles, make_moons

    if name == "moons":
        x, _ = make_moons(n, noise=0.05, random_state=0)
    else:
        x, _ = make_circles(n, noise=0.05, factor=0.5, random_state=0)
    x_tr, x_te = x[: 3 * n // 4], x[3 * n // 4 :]
    mean, std = x_tr.mean(0), x_tr.std(0)
    return (x_tr - mean) / std, (x_te - mean) / std


def _flows(blocks: int, width: int, iresnet_blocks: int, iresnet_width: int):
    k = jax.random.split(jax.random.key(0), 5)
    ka, kn, kg, ki = (jax.random.split(kk, max(blocks, iresnet_blocks)) for kk in k[:4])

    def nice():
        return [snn.AdditiveCoupling(2, width, flip=bool(i % 2), key=kn[i]) for i in range(blocks)]

    return {
        "RealNVP": lambda: snn.Chain(
            [snn.AffineCoupling(2, width, flip=bool(i % 2), key=ka[i]) for i in range(blocks)]
        ),
        "NICE (volume preserving)": lambda: snn.Chain(nice()),
        "NICE + scale": lambda: snn.Chain(nice() + [_Scale(jnp.zeros(2))]),
        "SymplecticFlow (GSympNet)": lambda: snn.SymplecticFlow(
            snn.GSympNet(1, layers=2 * blocks, width=width, key=kg[0]), 2
        ),
        "i-ResNet": lambda: snn.Chain(
            [
                snn.Invert(snn.InvertibleResidual(2, iresnet_width, 0.9, key=ki[i]))
                for i in range(iresnet_blocks)
            ]  # fmt: skip
        ),
        # FFJORD (issue 17): its forward maps data to the base, so inverted to this convention;
        # exact trace, 8 Tsit5 steps, trained through the symplectic adjoint
        CNF: lambda: snn.Invert(snn.CNF(2, width=width, depth=2, num_steps=8, key=k[4])),
    }


CNF = "CNF (FFJORD, symplectic adjoint)"
# Inversion and log-determinant hold to the ODE solver's accuracy only, not exactly.
_INEXACT_FLOWS = (CNF,)


def _log_prob(flow, x):
    z, ld = flow.inverse_and_log_det(x)
    return jnp.sum(jax.scipy.stats.norm.logpdf(z)) + ld


def _flow_certificates(flow, x, grid=None):
    """In one jit: the mean test log-likelihood, the max inversion error over `x` (data ->
    latent -> data); with `grid`, also the max log-det error over 32 test points (data ->
    latent, the direction the likelihood uses) and the log-density on the grid."""

    def inv_err(x):
        return check.inversion_error(flow.inverse, flow.forward, x)

    def ld_err(x):
        return check.log_det_error(flow.inverse, lambda y: flow.inverse_and_log_det(y)[1], x)

    def log_prob(x):
        return _log_prob(flow, x)

    @jax.jit
    def run(x, grid):
        out = (jnp.mean(jax.vmap(log_prob)(x)), jnp.max(jax.vmap(inv_err)(x)))
        if grid is None:
            return out
        return out + (jnp.max(jax.vmap(ld_err)(x[:32])), jax.vmap(log_prob)(grid))

    out = run(x, grid)
    return tuple(float(v) for v in out[:3]) + tuple(np.asarray(v) for v in out[3:])


def _kde(x_tr, x_te) -> dict:
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KernelDensity

    start = time.perf_counter()
    grid = GridSearchCV(KernelDensity(), {"bandwidth": np.geomspace(0.02, 0.5, 12)}, cv=5)
    grid.fit(x_tr)
    kde = grid.best_estimator_
    return dict(test_ll=float(np.mean(kde.score_samples(x_te))), model=kde,
                train_s=time.perf_counter() - start, bandwidth=float(kde.bandwidth))  # fmt: skip


def _density(quick: bool, progress) -> dict:
    if quick:
        n, blocks, width, steps, ib, iw, isteps = 2000, 4, 32, 500, 4, 32, 300
        datasets = ("moons",)
    else:
        n, blocks, width, steps, ib, iw, isteps = 4000, 8, 64, 4000, 16, 32, 2000
        datasets = ("moons", "circles")
    batch, grid_n = 256, 120 if not quick else 60
    out = dict(samples=n, batch=batch, coupling_blocks=blocks, width=width, steps=steps,
               iresnet_blocks=ib, iresnet_width=iw, iresnet_steps=isteps, datasets={})  # fmt: skip
    lim = 2.6
    gx = np.linspace(-lim, lim, grid_n)
    grid = np.stack(np.meshgrid(gx, gx), -1).reshape(-1, 2)
    for ds in datasets:
        x_tr, x_te = _density_data(ds, n)
        xtr32, xte32, xte64 = jnp.asarray(x_tr, F32), jnp.asarray(x_te, F32), jnp.asarray(x_te)
        idx = jnp.asarray(np.random.default_rng(0).integers(0, len(x_tr), (steps, batch)))
        rows = {}
        kde = _kde(x_tr, x_te)
        rows["KDE (scikit-learn, CV bandwidth)"] = dict(
            test_ll=kde["test_ll"], train_s=kde["train_s"], bandwidth=kde["bandwidth"],
            density=np.exp(kde["model"].score_samples(grid)).reshape(grid_n, grid_n).tolist(),
        )  # fmt: skip
        base = jax.scipy.stats.norm.logpdf(xte64).sum(-1)
        rows["standard normal (no flow)"] = dict(test_ll=float(jnp.mean(base)))
        for name, make in _flows(blocks, width, ib, iw).items():
            iresnet = name == "i-ResNet"
            nsteps = isteps if iresnet else steps

            def loss(flow, i):
                return -jnp.mean(jax.vmap(lambda x: _log_prob(flow, x))(xtr32[i]))

            flow, losses, wall = _fit(make(), loss, nsteps, 1e-2 if iresnet else 3e-3, idx[:nsteps])
            f64 = h.cast(flow, F64)
            ll32, inv32 = _flow_certificates(flow, xte32)
            ll64, inv64, ld64, dens = _flow_certificates(f64, xte64, jnp.asarray(grid))
            row = dict(
                test_ll=ll32,
                test_ll_float64=ll64,
                final_train_nll=float(losses[-1]),
                train_s=wall,
                steps=nsteps,
                inversion_error_float32=inv32,
                inversion_error_float64=inv64,
                log_det_error_float64=ld64,
                density=np.exp(dens).reshape(grid_n, grid_n).tolist(),
            )
            if iresnet:
                row["log_det_truncation_bound_per_block"] = f64.bijections[
                    0
                ].bijection.log_det_truncation_bound
            rows[name] = row
            progress.update(f"{ds} {name}")
        out["datasets"][ds] = dict(
            train=len(x_tr), test=len(x_te), flows=rows, grid=gx.tolist(),
            data_sample=x_te[:400].tolist(),
        )  # fmt: skip
    return out


def _density_floors(dens: dict) -> list[h.Floor]:
    floors = []
    for ds, d in dens["datasets"].items():
        exact = {n: r for n, r in d["flows"].items() if n not in _INEXACT_FLOWS}
        worst = max(
            (r["inversion_error_float64"], n) for n, r in exact.items()
            if "inversion_error_float64" in r
        )  # fmt: skip
        floors.append(h.Floor(f"(3) {ds}: max inversion error of the exact flows, float64",
                              worst[0], 1e-10, f"worst: {worst[1]} (CNF's to its solver "
                              "accuracy, reported in its row)"))  # fmt: skip
        worst = max(
            (r["log_det_error_float64"], n) for n, r in exact.items()
            if "log_det_error_float64" in r
        )  # fmt: skip
        floors.append(h.Floor(f"(3) {ds}: max log-det error of the exact flows, float64",
                              worst[0], 1e-8, f"worst: {worst[1]}"))  # fmt: skip
    return floors


# --- 4. certified robustness on digits --------------------------------------------------------


class _Sequential(eqx.Module):
    layers: tuple

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    @property
    def lipschitz_bound(self) -> float:
        bound = 1.0
        for layer in self.layers:
            bound *= layer.lipschitz_bound
        return bound


_EPS_TABLE = (0.1, 0.3, 0.5, 1.0)
_EPS_CURVE = tuple(np.round(np.linspace(0.0, 1.5, 31), 3))
_OFFSET, _TEMPERATURE = 1.0, 4.0  # margin-aware loss: CE(T (z - offset * onehot(y)))


def _lipschitz_nets(width: int, quick: bool):
    k = jax.random.split(jax.random.key(0), 3)

    def orthogonal():
        return _Sequential((
            snn.OrthogonalLinear(64, width, key=k[0]), snn.GroupSort(),
            snn.OrthogonalLinear(width, width, key=k[1]), snn.GroupSort(),
            snn.OrthogonalLinear(width, 10, key=k[2]),
        ))  # fmt: skip

    def aol():
        return _Sequential((
            snn.AOLLinear(64, width, key=k[0]), snn.GroupSort(),
            snn.AOLLinear(width, width, key=k[1]), snn.GroupSort(),
            snn.AOLLinear(width, 10, key=k[2]),
        ))  # fmt: skip

    def riemannian(schedule):  # the manifolds are those of the parameters
        return lambda params: so.riemannian_adam(schedule, manifolds=manifolds_of(params))

    # (make, optimiser, learning rate); the rates picked once by hand from {1e-3, 3e-3, 1e-2,
    # 3e-2} (the MLP's: 3e-3, as everywhere in this suite)
    nets = {"AOL + GroupSort": (aol, None, 1e-2)}
    if not quick:
        nets["Orthogonal (Stiefel) + GroupSort"] = (orthogonal, riemannian, 3e-2)
    return nets


def _margin_ce(logits, y):
    onehot = jax.nn.one_hot(y, 10, dtype=logits.dtype)
    return optax.softmax_cross_entropy(_TEMPERATURE * (logits - _OFFSET * onehot), onehot)


def _certified(model, x, y, bound: float) -> dict:
    logits = jax.jit(jax.vmap(model))(x)
    top2 = jnp.sort(logits, axis=-1)[:, -2:]
    correct = jnp.argmax(logits, -1) == y
    margin = top2[:, 1] - top2[:, 0]
    curve = [float(jnp.mean(correct & (margin > np.sqrt(2) * bound * e))) for e in _EPS_CURVE]
    return dict(
        clean_accuracy=float(jnp.mean(correct)),
        certified={
            e: float(jnp.mean(correct & (margin > np.sqrt(2) * bound * e))) for e in _EPS_TABLE
        },  # fmt: skip
        certified_curve=curve,
        median_margin=float(jnp.median(margin)),
    )


def _lipschitz(quick: bool, progress) -> dict:
    width, steps = (128, 500) if quick else (256, 3000)
    (x_tr, y_tr), (x_te, y_te) = h.digits()  # scaled to [0, 1], 75/25
    batch = 128
    idx = jnp.asarray(np.random.default_rng(0).integers(0, x_tr.shape[0], (steps, batch)))
    out = dict(width=width, steps=steps, batch=batch, eps=list(_EPS_TABLE),
               eps_curve=list(_EPS_CURVE), offset=_OFFSET, temperature=_TEMPERATURE,
               nets={})  # fmt: skip
    key = jax.random.key(7)
    x0 = x_te[0].astype(F64)
    for name, (make, optimiser, lr) in _lipschitz_nets(width, quick).items():

        def loss(m, i):
            return jnp.mean(_margin_ce(jax.vmap(m)(x_tr[i]), y_tr[i]))

        model, _, wall = _fit(make(), loss, steps, lr, idx, optimiser)
        bound = model.lipschitz_bound
        row = dict(_certified(model, x_te, y_te, bound), declared_bound=bound, train_s=wall,
                   learning_rate=lr)  # fmt: skip
        lower = check.lipschitz_lower_bound(h.cast(model, F64), x0, key)
        row["lipschitz_lower_bound"] = float(lower)
        out["nets"][name] = row
        progress.update(f"digits {name}")

    def ce(m, i):
        return jnp.mean(
            optax.softmax_cross_entropy_with_integer_labels(jax.vmap(m)(x_tr[i]), y_tr[i])
        )

    mlp = eqx.nn.MLP(64, 10, width, 2, jax.nn.relu, key=jax.random.key(0))
    mlp, _, wall = _fit(mlp, ce, steps, 3e-3, idx)
    # ReLU is 1-Lipschitz: the product of the weights' spectral norms bounds the network
    bound = float(np.prod([np.linalg.norm(np.asarray(lyr.weight, np.float64), 2)
                           for lyr in mlp.layers]))  # fmt: skip
    row = dict(_certified(mlp, x_te, y_te, bound), declared_bound=bound, train_s=wall,
               learning_rate=3e-3)  # fmt: skip
    row["lipschitz_lower_bound"] = float(check.lipschitz_lower_bound(h.cast(mlp, F64), x0, key))
    out["nets"]["MLP (ReLU, cross-entropy)"] = row
    progress.update("digits MLP")
    return out


def _lipschitz_floors(lip: dict) -> list[h.Floor]:
    return [
        h.Floor(
            f"(4) {name}: check.lipschitz_lower_bound / declared bound",
            r["lipschitz_lower_bound"] / r["declared_bound"],
            1.0,
            f"{r['lipschitz_lower_bound']:.4f} vs {r['declared_bound']:.4g}",
        )
        for name, r in lip["nets"].items()
    ]


# --- the suite ------------------------------------------------------------------------------


def _without_densities(results: dict) -> dict:
    """A copy of `results` without the density grids (only the plots need them)."""
    density = dict(results["density"])
    density["datasets"] = {
        ds: dict(d, flows={n: {k: v for k, v in r.items() if k != "density"}
                           for n, r in d["flows"].items()})
        for ds, d in density["datasets"].items()
    }  # fmt: skip
    return dict(results, density=density)


def run(*, quick: bool) -> dict:
    """Run the suite; print tables and floors; write JSON and PNGs under results/."""
    h.header("nn", quick)
    n_mem = (3 if quick else 12) + (1 if quick else 2)
    n_dyn = 2 * len(SYSTEMS)
    n_dens = (1 if quick else 2) * 5
    progress = h.Progress(n_mem + n_dyn + n_dens + (2 if quick else 3), "nn")
    walls = {}
    start = time.perf_counter()
    memory = _memory_vs_depth(quick, progress)
    walls["memory"] = time.perf_counter() - start
    start = time.perf_counter()
    dynamics = _dynamics(quick, progress)
    walls["dynamics"] = time.perf_counter() - start
    start = time.perf_counter()
    density = _density(quick, progress)
    walls["density"] = time.perf_counter() - start
    start = time.perf_counter()
    lipschitz = _lipschitz(quick, progress)
    walls["lipschitz"] = time.perf_counter() - start
    progress.close()

    report.print_tables(memory, dynamics, density, lipschitz)
    floors = (
        _memory_floors(memory)
        + _dynamics_floors(dynamics, quick)
        + _density_floors(density)
        + _lipschitz_floors(lipschitz)
    )
    return h.finish(
        "nn",
        quick,
        dict(
            section_wall_s=walls,
            memory=memory,
            dynamics=dynamics,
            density=density,
            lipschitz=lipschitz,
        ),
        floors,
        lambda suffix: report.write_plots(memory, dynamics, density, lipschitz, suffix),
        to_json=_without_densities,
        notes=dict(
            memory="XLA memory_analysis of the compiled gradient (float32): temp = scratch "
            "(activations), argument = parameters + batch, output = gradients. 'reversible "
            "(vmap)': jax.vmap over Reversible (one example per call, the documented usage); "
            "'reversible (batch in block)': each block wrapped to take the whole batch, one "
            "custom_vjp for the batch. A variant whose temp exceeds "
            f"{_MAX_TEMP_BYTES / 2**30:g} GiB is compiled but not run. Times: best of "
            "interleaved rounds; ratio: median over rounds of the per-round ratio to stored.",
            dynamics="trained in float32 (Adam, cosine schedule, full batch), rolled out in "
            "float64; energy error of the true Hamiltonian, relative to |H(y_0)|; medians over "
            "the held-out initial conditions; inf = the rollout blew up (non-finite H)",
            density="trained in float32 (Adam, minibatch 256); test log-likelihood in nats "
            "per sample; inversion error max over the test set (data -> latent -> data); "
            "log-det error max over 32 test points, data -> latent, against slogdet of "
            "jax.jacfwd; NICE + scale adds a diagonal scaling bijection written in the suite",
            lipschitz="digits scaled to [0, 1]; certified at eps when correct and "
            "margin > sqrt(2) L eps; L = product of declared lipschitz_bound (1-Lipschitz "
            "nets) or of spectral norms (MLP); lipschitz_lower_bound around the first test "
            "point (8 starts, spread 1)",
        ),
    )
