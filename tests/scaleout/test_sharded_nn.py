"""A data-parallel training step of structjax networks on 8 devices (issue 16), in float32.

The batch (64 examples) sharded over a 1-D mesh of 8 forced host devices, the parameters
replicated, three jitted steps of `value_and_grad` of a mean-squared loss over `vmap` of the
model plus the optimiser, against the same steps on one device:

- `Reversible`: four `revnet_block`s on 8 features (the reversible backward pass), `optax.adam`;
- an MLP of three `OrthogonalLinear` layers (Stiefel weights, `Constrained` leaves) trained
  with `riemannian_adam(manifolds=manifolds_of(params))`;
- `CNF` (FFJORD, exact trace, through `solve_fixed(adjoint="symplectic")` and its batching
  rule), the squared negative log-likelihood of a shifted Gaussian, `optax.adam`;
- `EMLP` for SO(3), two vectors to one (learning the cross product), `optax.sgd` with
  momentum. (Adam is avoided here on purpose: a few EMLP weights get gradients of ~1e-12 that
  are zero in exact arithmetic, and Adam's normalised step turns their rounding, which
  depends on the order of the sharded reduction, into +-lr moves; SGD leaves them at ~1e-12.)

Measured (jax 0.10 on CPU): parameters equal one device's to 4e-8 (Reversible), 9e-8
(OrthogonalLinear MLP, still orthonormal to 2.4e-7) and 1.5e-7 (EMLP) relative, losses to
3e-7; the parameters stay replicated; the only collectives are the all-reduces of the
gradients (one tuple per step, or per block inside `Reversible`'s backward scan) and of the
scalar loss: nothing is all-gathered, no activations move.
"""

import pytest

from ._subprocess import measured_once, size

SCRIPT = r"""
import json, time
import equinox as eqx, jax, jax.numpy as jnp, numpy as np, optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import structjax.equivariant as se, structjax.manifolds as sm, structjax.nn as snn
import structjax.optim as so

assert len(jax.devices()) == 8
t0 = time.perf_counter()
mesh = Mesh(np.array(jax.devices()), ("d",))
ONE = jax.devices()[0]
STEPS, B = 3, 64
keys = jax.random.split(jax.random.key(0), 8)


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def train(model, opt, x, y, put_batch, put_params):
    params, static = eqx.partition(model, eqx.is_inexact_array)
    params = jax.tree.map(put_params, params)
    state = opt.init(params)

    def loss(p, x, y):
        pred = jax.vmap(eqx.combine(p, static))(x)
        return jnp.mean((pred - y) ** 2)

    @jax.jit
    def step(p, s, x, y):
        value, g = jax.value_and_grad(loss)(p, x, y)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, value

    x, y = put_batch(x), put_batch(y)
    hlo = step.lower(params, state, x, y).compile().as_text()
    twice = [put_batch(jnp.concatenate([t, t])) for t in (x, y)]
    hlo2 = step.lower(params, state, *twice).compile().as_text()
    losses = []
    for _ in range(STEPS):
        params, state, value = step(params, state, x, y)
        losses.append(float(value))
    return params, losses, (hlo, hlo2)


def case(name, model, opt, x, y, check=None):
    batch = NamedSharding(mesh, P("d", *([None] * (x.ndim - 1))))
    rep = NamedSharding(mesh, P())
    a, la, hlo = train(model, opt, x, y, lambda t: jax.device_put(t, batch),
                       lambda t: jax.device_put(t, rep))
    b, lb, _ = train(model, opt, x, y, lambda t: jax.device_put(t, ONE),
                     lambda t: jax.device_put(t, ONE))
    p0 = eqx.filter(model, eqx.is_inexact_array)
    pa, pb_, p0 = jax.tree.leaves(a), jax.tree.leaves(b), jax.tree.leaves(p0)
    return dict(
        err=max(rel(u, v) for u, v in zip(pa, pb_)),
        loss_err=max(abs(u - v) / abs(v) for u, v in zip(la, lb)),
        losses=lb,
        moved=max(float(np.max(np.abs(np.asarray(v) - np.asarray(w)))) for v, w in zip(pb_, p0)),
        replicated=all(str(u.sharding.spec) == "P()" for u in pa),
        collectives=collectives(hlo[0]),
        collectives_twice_the_batch=collectives(hlo[1]),
        n_params=int(sum(np.size(u) for u in pa)),
        extra=check(a) if check else None,
    )


out = {}
# Reversible: four revnet blocks on 8 features.
rev = snn.Reversible(lambda k: snn.revnet_block(8, width=16, key=k), depth=4, key=keys[0])
x8 = jax.random.normal(keys[1], (B, 8))
y8 = jnp.tanh(x8[:, ::-1])
out["Reversible"] = case("Reversible", rev, optax.adam(1e-2), x8, y8)


# An OrthogonalLinear MLP (Stiefel weights) trained with riemannian_adam.
class OrthoMLP(eqx.Module):
    layers: list

    def __init__(self, key):
        k = jax.random.split(key, 3)
        self.layers = [snn.OrthogonalLinear(8, 32, key=k[0]),
                       snn.OrthogonalLinear(32, 32, key=k[1]),
                       snn.OrthogonalLinear(32, 8, key=k[2])]

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = jax.nn.gelu(layer(x))
        return self.layers[-1](x)


mlp = OrthoMLP(keys[2])
ms = sm.manifolds_of(eqx.filter(mlp, eqx.is_inexact_array))


def on_stiefel(params):
    errs = [float(jnp.max(jnp.abs(u.value.T @ u.value - jnp.eye(u.value.shape[1]))))
            if u.value.shape[0] >= u.value.shape[1] else
            float(jnp.max(jnp.abs(u.value @ u.value.T - jnp.eye(u.value.shape[0]))))
            for u in jax.tree.leaves(params, is_leaf=lambda v: isinstance(v, sm.Constrained))
            if isinstance(u, sm.Constrained)]
    return max(errs)


out["OrthogonalLinear MLP"] = case("OrthogonalLinear MLP", mlp,
                                   so.riemannian_adam(1e-2, manifolds=ms), x8, y8,
                                   check=on_stiefel)

# EMLP: SO(3), two vectors in, one vector out (the cross product).
G = se.SO(3)
emlp = se.EMLP(2 * se.V(G), se.V(G), hidden=16, num_layers=1, key=keys[3])
v6 = jax.random.normal(keys[4], (B, 6))
cross = jnp.cross(v6[:, :3], v6[:, 3:])
out["EMLP"] = case("EMLP", emlp, optax.sgd(1e-2, momentum=0.9), v6, cross)


# CNF (FFJORD, exact trace, the symplectic adjoint's batching rule under the sharded batch):
# the model returns each example's negative log-likelihood, the target is 0.
class NLL(eqx.Module):
    cnf: snn.CNF

    def __call__(self, x):
        return -self.cnf.log_prob(x)[None]


cnf = NLL(snn.CNF(2, width=16, depth=1, num_steps=6, key=keys[5]))
x2 = jax.random.normal(keys[6], (B, 2)) * jnp.asarray([1.0, 0.3]) + 0.5
out["CNF"] = case("CNF", cnf, optax.adam(1e-2), x2, jnp.zeros((B, 1)))
out["_seconds"] = time.perf_counter() - t0
print("JSON" + json.dumps(out))
"""

MODELS = ["Reversible", "OrthogonalLinear MLP", "EMLP", "CNF"]


@pytest.fixture(scope="module")
def measured(tmp_path_factory, worker_id):
    return measured_once(SCRIPT, tmp_path_factory, worker_id)


@pytest.mark.parametrize("model", MODELS)
def test_data_parallel_step_matches_one_device(measured, model):
    r = measured[model]
    assert r["moved"] > 1e-3, r  # the steps train the parameters
    assert r["losses"][-1] < r["losses"][0], r
    assert r["err"] <= 1e-5 and r["loss_err"] <= 1e-5, r


@pytest.mark.parametrize("model", MODELS)
def test_parameters_stay_replicated(measured, model):
    assert measured[model]["replicated"]


@pytest.mark.parametrize("model", MODELS)
def test_only_the_gradients_are_all_reduced(measured, model):
    """Data parallelism's one collective: all-reduces (of the gradients and the loss), never
    an all-gather of the batch or of activations, and the same collectives for twice the
    batch (communication does not grow with the data). `Reversible` and the MLP reduce at
    most their parameters' size; the CNF reduces the weights' cotangent of each stage's VJP
    inside the symplectic adjoint's backward scan (measured 1167 numbers a step for 98
    weights: 6 Tsit5 stages, field and trace terms), whatever the batch; EMLP reduces the
    gradients of its dense weights (19 x 33 and smaller: XLA reduces before projecting onto
    the 47 equivariant-basis coefficients)."""
    r = measured[model]
    found = r["collectives"]
    assert found and {kind for kind, _ in found} == {"all-reduce"}, found
    assert r["collectives_twice_the_batch"] == found
    total = sum(size(s) for _, shapes in found for s in shapes)
    bound = 19 * 33 + 5 + 9 + 2 + 3 * 17 + 1 if model == "EMLP" else r["n_params"] + len(found)
    if model == "CNF":  # the partner step's VJPs, reduced inside the backward scan: per
        bound = 2 * 6 * r["n_params"] + len(found)  # stage (6, Tsit5), field and trace terms
    assert total <= bound, (total, r["n_params"], found)


def test_orthogonal_weights_stay_orthonormal(measured):
    assert measured["OrthogonalLinear MLP"]["extra"] <= 1e-5
