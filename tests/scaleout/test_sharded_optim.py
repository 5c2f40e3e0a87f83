"""Every structjax optimiser on sharded parameters (issue 16): the two layouts of large models.

- **rows**: one 512 x 16 Stiefel weight with its rows sharded over 8 devices
  (`NamedSharding(mesh, P("d", None))`, fully-sharded data parallel);
- **tree**: a dict of eight weights (Stiefel, Sphere, Euclidean) on a 2 x 4 mesh, each sharded
  its own way (rows over "a", over "b", over both, columns over "b", replicated).

Four jitted steps (`opt.update` + `optax.apply_updates`) on the sharded parameters against
the same steps on one device, in float32: relative error <= 1e-5, and the output shardings
equal the input shardings. The compiled HLO of the sharded rows step is searched for its
collectives: a Stiefel step all-reduces p x p Gram matrices (and scalars) and never
all-gathers the n x p weight.

Measured (jax on CPU, 8 forced host devices):

- rows, `riemannian_*`, the chain of the `riemannian_*` blocks, the conformal optimisers:
  only all-reduces of f32[16,16] (and scalars); no all-gather. Errors 1e-7 to 2e-6.
- rows, `cayley_sgd` / `cayley_adam`: only the Gram all-reduces too. (Before the fix in
  `structjax.manifolds._stiefel._cholesky_qr` the retraction's CholeskyQR round solved
  `solve_triangular(R, A^T)` with the n-axis of the right-hand side sharded, which XLA's SPMD
  partitioner does not split: one all-gather f32[16,512] of the whole weight per step; it
  now forms the p x p inverse of R and multiplies, and this test keeps it so.)
- tree, `riemannian_sgd` / `riemannian_adam` / `cayley_*` with their default `batch=True`:
  the numbers match, but the batching of leaves of one manifold and shape (`jnp.stack`,
  `_step.py`) gives the stacked group one sharding, which its leaves' outputs take: `s_b` and
  `s_rep` came back sharded like `s_a` (and `u_rep` like `u_b`), and the stack all-gathered
  the three 64 x 8 weights. With `batch=False` (the argument this measurement led to) every
  leaf keeps its sharding and nothing is gathered; the tree tests of shardings and
  collectives run them so, and the stacked run is kept for its numbers ("tree_stacked").
  The unbatched chain and the conformal optimisers keep every sharding as they are.

The sharded work runs in one subprocess: the device count must be set before JAX starts.
"""

import pytest

from ._subprocess import measured_once, size

N, P = 512, 16
ROWS_ONLY_GRAM = [
    "riemannian_sgd",
    "riemannian_adam",
    "riemannian_chain",
    "conformal_symplectic_momentum",
    "hamiltonian_descent",
    "relativistic_gd",
]
CAYLEY = ["cayley_sgd", "cayley_adam"]
BATCHED = ["riemannian_sgd", "riemannian_adam", *CAYLEY]
OPTIMISERS = ROWS_ONLY_GRAM + CAYLEY

SCRIPT = r"""
import json, os, sys, time
import jax, jax.numpy as jnp, numpy as np, optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import structjax.manifolds as sm, structjax.optim as so

assert len(jax.devices()) == 8, jax.devices()
t0 = time.perf_counter()
N, Pc, STEPS = 512, 16, 4
def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def run(opt, params, grad_fn):
    step = jax.jit(lambda p, s, g: (lambda u, s2: (optax.apply_updates(p, u), s2))(
        *opt.update(g, s, p)))
    gfn = jax.jit(grad_fn)
    state = opt.init(params)
    hlo = step.lower(params, state, gfn(params)).compile().as_text()
    for _ in range(STEPS):
        params, state = step(params, state, gfn(params))
    return params, hlo


def case(name, opt, params, shardings, grad_fn):
    sharded = {k: jax.device_put(v, shardings[k]) for k, v in params.items()}
    one = {k: jax.device_put(v, jax.devices()[0]) for k, v in params.items()}
    a, hlo = run(opt, sharded, grad_fn)
    b, _ = run(opt, one, grad_fn)
    return dict(
        err=max(rel(a[k], b[k]) for k in params),
        moved=float(max(rel(b[k], params[k]) for k in params)),
        same_sharding={k: bool(a[k].sharding.is_equivalent_to(sharded[k].sharding, a[k].ndim))
                       for k in params},
        out_specs={k: str(getattr(a[k].sharding, "spec", a[k].sharding)) for k in params},
        collectives=collectives(hlo),
    )


key = jax.random.key(0)
k1, k2, k3 = jax.random.split(key, 3)
f32 = jnp.float32
# Layout 1: one n x p Stiefel weight, rows over 8 devices (FSDP).
mesh1 = Mesh(np.array(jax.devices()), ("d",))
st = sm.Stiefel(N, Pc)
w0 = st.random_point(k1, dtype=f32)
c = jax.random.normal(k2, (Pc, Pc), f32); c = (c + c.T) / 2
t = 0.1 * jax.random.normal(k3, (N, Pc), f32)
p1 = {"w": w0}
sh1 = {"w": NamedSharding(mesh1, P("d", None))}
grad1 = lambda p: {"w": p["w"] @ c - t}  # row-local: no collective of its own

# Layout 2: eight weights on a 2 x 4 mesh, each sharded its own way.
mesh2 = Mesh(np.array(jax.devices()).reshape(2, 4), ("a", "b"))
ks = jax.random.split(jax.random.key(1), 16)
s64 = sm.Stiefel(64, 8)
p2 = {
    "s_a": s64.random_point(ks[0], dtype=f32),
    "s_b": s64.random_point(ks[1], dtype=f32),
    "s_rep": s64.random_point(ks[2], dtype=f32),
    "s_ab": sm.Stiefel(128, 8).random_point(ks[3], dtype=f32),
    "u_b": sm.Sphere(32).random_point(ks[4], dtype=f32),
    "u_rep": sm.Sphere(32).random_point(ks[5], dtype=f32),
    "e_b": jax.random.normal(ks[6], (16, 8), f32),
    "e_a": jax.random.normal(ks[7], (16,), f32),
}
specs2 = {"s_a": P("a", None), "s_b": P("b", None), "s_rep": P(), "s_ab": P(("a", "b"), None),
          "u_b": P("b"), "u_rep": P(), "e_b": P(None, "b"), "e_a": P("a")}
sh2 = {k: NamedSharding(mesh2, v) for k, v in specs2.items()}
m2 = {"s_a": s64, "s_b": s64, "s_rep": s64, "s_ab": sm.Stiefel(128, 8), "u_b": sm.Sphere(32),
      "u_rep": sm.Sphere(32), "e_b": None, "e_a": None}
targets2 = {k: jax.random.normal(ks[8 + i], v.shape, f32) for i, (k, v) in enumerate(p2.items())}
grad2 = lambda p: {k: 1.5 * p[k] - targets2[k] for k in p}  # elementwise: no collective
# The Cayley optimisers take Stiefel-type leaves (and Euclidean ones) only.
cay = [k for k in p2 if not k.startswith("u_")]

OPTS = {
    "riemannian_sgd": lambda m, **kw: so.riemannian_sgd(0.05, momentum=0.9, manifolds=m, **kw),
    "riemannian_adam": lambda m, **kw: so.riemannian_adam(0.05, manifolds=m, **kw),
    "riemannian_chain": lambda m: optax.chain(
        so.riemannian_gradient(m), so.scale_by_riemannian_momentum(0.9, manifolds=m),
        optax.scale(-0.05), so.retract(m)),
    "cayley_sgd": lambda m, **kw: so.cayley_sgd(0.05, manifolds=m, **kw),
    "cayley_adam": lambda m, **kw: so.cayley_adam(0.05, manifolds=m, **kw),
    "conformal_symplectic_momentum": lambda m: so.conformal_symplectic_momentum(
        0.05, damping=1.0, manifolds=m),
    "hamiltonian_descent": lambda m: so.hamiltonian_descent(0.05, damping=1.0, manifolds=m),
    "relativistic_gd": lambda m: so.relativistic_gd(0.05, damping=1.0, manifolds=m),
}
BATCHED = ["riemannian_sgd", "riemannian_adam", "cayley_sgd", "cayley_adam"]
only = sys.argv[1:] or list(OPTS)
out = {}
for name in only:
    make = OPTS[name]
    out[name + "/rows"] = case(name, make({"w": st}), p1, sh1, grad1)
    keys = cay if name.startswith("cayley") else list(p2)
    sub = lambda d: {k: d[k] for k in keys}
    if name in BATCHED:  # leaves sharded each its own way: step them apart
        out[name + "/tree"] = case(name, make(sub(m2), batch=False), sub(p2), sub(sh2), grad2)
        out[name + "/tree_stacked"] = case(name, make(sub(m2)), sub(p2), sub(sh2), grad2)
    else:
        out[name + "/tree"] = case(name, make(sub(m2)), sub(p2), sub(sh2), grad2)
    print(name, f"{time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
out["_n_p"] = [N, Pc]
out["_seconds"] = time.perf_counter() - t0
print("JSON" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def measured(tmp_path_factory, worker_id):
    return measured_once(SCRIPT, tmp_path_factory, worker_id)


@pytest.mark.parametrize("layout", ["rows", "tree"])
@pytest.mark.parametrize("opt", OPTIMISERS)
def test_sharded_matches_one_device(measured, opt, layout):
    r = measured[f"{opt}/{layout}"]
    assert r["moved"] > 1e-2, r  # the steps do move the parameters
    assert r["err"] <= 1e-5, r


@pytest.mark.parametrize("opt", BATCHED)
def test_stacked_tree_matches_one_device(measured, opt):
    """The default `batch=True` on the tree layout: a gather, but the same numbers."""
    r = measured[f"{opt}/tree_stacked"]
    assert r["moved"] > 1e-2 and r["err"] <= 1e-5, r


@pytest.mark.parametrize("opt", OPTIMISERS)
def test_rows_keep_their_sharding(measured, opt):
    r = measured[f"{opt}/rows"]
    assert all(r["same_sharding"].values()), r["out_specs"]


@pytest.mark.parametrize("opt", OPTIMISERS)
def test_tree_keeps_its_shardings(measured, opt):
    r = measured[f"{opt}/tree"]
    assert all(r["same_sharding"].values()), r["out_specs"]


@pytest.mark.parametrize("opt", OPTIMISERS)
def test_rows_step_all_reduces_grams_and_gathers_no_weight(measured, opt):
    """The row-sharded Stiefel step: all-reduces of p x p Gram matrices (or smaller: norms,
    flags), nothing else, and above all no all-gather of the n x p weight."""
    found = measured[f"{opt}/rows"]["collectives"]
    reduces = [s for kind, shapes in found if kind == "all-reduce" for s in shapes]
    assert any(size(s) == P * P for s in reduces), found
    assert all(size(s) <= P * P for s in reduces), found
    gathers = [s for kind, shapes in found if kind != "all-reduce" for s in shapes]
    assert not [s for s in gathers if size(s) >= N * P], found
    assert not gathers, found


@pytest.mark.parametrize("opt", OPTIMISERS)
def test_tree_step_gathers_no_weight(measured, opt):
    """On the 2 x 4 mesh no leaf is all-gathered whole or in part (the smallest leaf has 16
    elements on a device; what may be gathered is a handful of norms)."""
    found = measured[f"{opt}/tree"]["collectives"]
    big = [[kind, s] for kind, shapes in found if kind != "all-reduce" for s in shapes
           if size(s) >= 16]  # fmt: skip
    assert not big, found
