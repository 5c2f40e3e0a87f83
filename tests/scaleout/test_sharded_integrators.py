"""structjax's integrators on sharded inputs (issue 16), against one device, in float64.

On 8 forced host devices (`_subprocess.py`), each case jitted once with its inputs sharded
over a 1-D mesh and once with them on one device:

- **ensembles** (64 members, the batch axis sharded): `vmap` of `solve_fixed` over initial
  states (`McAte4` on a 16-particle FPU chain) and over a parameter (the chain's coupling,
  through `args`, `VelocityVerlet`); `vmap` of `diffrax.diffeqsolve` with a structjax
  splitting (`McAte4`, constant steps) and with `Tsit5` under a `PIDController`;
- **one large system** sharded along its particles: a 4096-particle FPU chain
  (`VelocityVerlet`, 100 steps) and 512 gravitating bodies in 3-D (all-pairs forces);
- **the reversible adjoint** sharded: `jax.grad` through `solve_fixed(adjoint="reversible")`
  on the sharded chain and on the sharded ensemble;
- **issue 17's adjoints** on a batch of 64 sharded 8 ways through a shared neural field
  (replicated 16 x 16 weights): `solve_fixed(adjoint="symplectic")` with `Dopri5`,
  `diffeqsolve` with `SymplecticAdjoint` (`Tsit5`), and `ReversibleRK(Tsit5)` under
  `adjoint="reversible"`, each against one device and against autodiff.

Measured (jax 0.10 on CPU): every sharded result equals one device's to rounding (relative
difference 0, and 4e-17 for the N-body sum); every output keeps its input's sharding; the
`solve_fixed` ensembles and their reversible gradients compile with no collective at all;
the 4096-particle chain exchanges one neighbour per device (`collective-permute` of f64[1])
and all-reduces pairs of f64[1] (the wall springs); the N-body step all-gathers the
positions (f64[512,3], inherent to all-pairs forces) and all-reduces the forces; diffrax's
`diffeqsolve` adds one all-reduce of one member's saved output (f64[1,16], whatever the
ensemble size: the `throw=True` result check, gone with `throw=False`) and, adaptive, the
while loop's scalar predicates. The reversible gradient of the sharded chain equals
autodiff's to 5e-18 relative. The batch adjoints equal one device's and autodiff's, keep
the batch's cotangent sharded and only all-reduce the weights' cotangent.

Two defects this test found, fixed: `equinox.error_if(x, ...)` routes `x` through a
`lax.cond` whose error branch is a host callback, which made XLA all-gather every guarded
state and hand it back replicated (`structjax._guards.attach` now puts the check on a
boolean scalar and multiplies it into the value as 1); and `problems.fpu`'s potential
padded the chain with its walls by `concatenate`, which all-gathered the state every force
evaluation (it now slices).
"""

import pytest

from ._subprocess import measured_once, size

SCRIPT = r"""
import json, sys, time
import diffrax, jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import structjax.integrators as si, structjax.problems as sp

assert len(jax.devices()) == 8 and jnp.zeros(()).dtype == jnp.float64
t0 = time.perf_counter()
mesh = Mesh(np.array(jax.devices()), ("d",))
ONE = jax.devices()[0]


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def case(fn, args, specs, moved=True):
    '''fn(*args) with args sharded by specs, against fn on one device (and, for a solve,
    how far the state moved from where it started).'''
    sharded = [jax.device_put(a, NamedSharding(mesh, s)) for a, s in zip(args, specs)]
    one = [jax.device_put(a, ONE) for a in args]
    f = jax.jit(fn)
    hlo = f.lower(*sharded).compile().as_text()
    a, b = f(*sharded), f(*one)
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return dict(
        err=max(rel(x, y) for x, y in zip(la, lb)),
        moved=min(rel(y.reshape(np.shape(x0)), x0) for y, x0 in zip(lb, args)) if moved
        else None,
        size=max(float(np.linalg.norm(np.asarray(y))) for y in lb),
        out_specs=[str(x.sharding.spec) for x in la],
        collectives=collectives(hlo),
    )


out = {}
# --- ensembles over initial conditions: FPU chain of 16, 64 initial states sharded ----------
pb = sp.fpu(particles=16, beta=1.0, amplitude=1.0)
B = 64
scale = jnp.linspace(0.5, 1.5, B)[:, None]
q0s, p0s = scale * pb.y0[0], 0.1 * scale * jnp.cos(jnp.arange(16.0))
ens = P("d", None)


def fixed(q, p):
    return jax.vmap(lambda q, p: si.solve_fixed(pb.terms, si.McAte4(), (q, p), dt=0.05,
                                                num_steps=200).y1)(q, p)


out["ensemble/solve_fixed"] = case(fixed, (q0s, p0s), (ens, ens))


def dfx_structjax(q, p):
    def one(q, p):
        return diffrax.diffeqsolve(pb.terms, si.McAte4(), 0.0, 10.0, 0.05, (q, p),
                                   max_steps=400).ys
    return jax.vmap(one)(q, p)


out["ensemble/diffeqsolve_splitting"] = case(dfx_structjax, (q0s, p0s), (ens, ens))


def dfx_adaptive(q, p):
    def one(q, p):
        return diffrax.diffeqsolve(pb.ode_term, diffrax.Tsit5(), 0.0, 10.0, 0.05,
            (q, p), stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-8),
            max_steps=4096).ys
    return jax.vmap(one)(q, p)


out["ensemble/diffeqsolve_adaptive"] = case(dfx_adaptive, (q0s, p0s), (ens, ens))


# --- ensemble over a parameter: the FPU coupling beta, sharded --------------------------------
def fpu_v(q, beta):
    z = jnp.zeros(1, q.dtype)
    d = jnp.diff(jnp.concatenate([z, q, z]))
    return jnp.sum(0.5 * d**2 + 0.25 * beta * d**4)


terms_b = si.separable_terms(lambda p, a: 0.5 * jnp.sum(p**2), fpu_v)
betas = jnp.linspace(0.0, 2.0, B)


def over_beta(beta):
    return jax.vmap(lambda b: si.solve_fixed(terms_b, si.VelocityVerlet(), (pb.y0[0], pb.y0[1]),
                                             dt=0.05, num_steps=200, args=b).y1)(beta)


out["ensemble/parameters"] = case(over_beta, (betas,), (P("d"),), moved=False)

# --- one large system sharded along its particles ---------------------------------------------
N = 4096
big = sp.fpu(particles=N, beta=1.0, amplitude=1.0)
qb, pbig = big.y0[0], 0.01 * jnp.sin(jnp.arange(N, dtype=jnp.float64))


def chain(q, p):
    return si.solve_fixed(big.terms, si.VelocityVerlet(), (q, p), dt=0.05, num_steps=100).y1


out["particles/fpu"] = case(chain, (qb, pbig), (P("d"), P("d")))

# Gravitational N-body, 512 bodies in 3D, sharded along bodies (all-pairs forces).
M = 512
kx = jax.random.split(jax.random.key(0), 2)
xn = jax.random.normal(kx[0], (M, 3))
vn = 0.1 * jax.random.normal(kx[1], (M, 3))


def grav(x, args):
    d = x[:, None, :] - x[None, :, :]
    r2 = jnp.sum(d**2, -1) + 0.01  # Plummer softening
    return -0.5 * jnp.sum(jnp.where(jnp.eye(M, dtype=bool), 0.0, 1 / jnp.sqrt(r2))) / M


nb_terms = si.separable_terms(lambda v, a: 0.5 * jnp.sum(v**2), grav)


def nbody(x, v):
    return si.solve_fixed(nb_terms, si.VelocityVerlet(), (x, v), dt=0.01, num_steps=20).y1


out["particles/nbody"] = case(nbody, (xn, vn), (P("d", None), P("d", None)))


# --- the reversible adjoint, sharded -------------------------------------------------------------
def grad_of(adjoint):
    def loss(q, p):
        q1, p1 = si.solve_fixed(big.terms, si.McAte4(), (q, p), dt=0.05, num_steps=100,
                                adjoint=adjoint).y1
        return jnp.sum(q1**2) + 0.5 * jnp.sum(p1 * jnp.cos(q1))
    return jax.grad(loss, argnums=(0, 1))


out["adjoint/reversible_particles"] = case(grad_of("reversible"), (qb, pbig), (P("d"), P("d")),
                                          moved=False)
ga = jax.jit(grad_of("autodiff"))(qb, pbig)
gr = jax.jit(grad_of("reversible"))(jax.device_put(qb, NamedSharding(mesh, P("d"))),
                                     jax.device_put(pbig, NamedSharding(mesh, P("d"))))
out["adjoint/reversible_particles"]["vs_autodiff"] = max(rel(a, b) for a, b in zip(gr, ga))


def ens_grad(q, p):
    def loss(q, p):
        q1, p1 = si.solve_fixed(pb.terms, si.VelocityVerlet(), (q, p), dt=0.05, num_steps=200,
                                adjoint="reversible").y1
        return jnp.sum(q1**2 - p1**2)
    return jax.vmap(jax.grad(loss, argnums=(0, 1)))(q, p)


out["adjoint/reversible_ensemble"] = case(ens_grad, (q0s, p0s), (ens, ens), moved=False)


# --- issue 17's adjoints on a sharded batch through a shared (replicated) vector field -------
W = 0.4 * jax.random.normal(jax.random.key(3), (16, 16))
neural = diffrax.ODETerm(lambda t, y, w: jnp.tanh(w @ y) - 0.1 * y)
ys0 = jnp.cos(jnp.arange(B * 16.0).reshape(B, 16))


def batch_grad(solve):
    def loss(w, ys):
        return jnp.sum(jax.vmap(lambda y: jnp.sum(solve(w, y) ** 2))(ys))
    return jax.grad(loss, argnums=(0, 1))


def fixed_with(solver, adjoint, **kw):
    return lambda w, y: si.solve_fixed(neural, solver, y, dt=0.05, num_steps=40, args=w,
                                       adjoint=adjoint, **kw).y1


def dfx_with(adjoint):
    return lambda w, y: diffrax.diffeqsolve(neural, diffrax.Tsit5(), 0.0, 2.0, 0.05, y, w,
                                            adjoint=adjoint, max_steps=64).ys[-1]


ADJ = {
    "adjoint/symplectic_fixed": fixed_with(diffrax.Dopri5(), "symplectic"),
    "adjoint/symplectic_diffeqsolve": dfx_with(si.SymplecticAdjoint()),
    "adjoint/reversible_rk": fixed_with(si.ReversibleRK(diffrax.Tsit5()), "reversible"),
}
REF = {
    "adjoint/symplectic_fixed": fixed_with(diffrax.Dopri5(), "autodiff"),
    "adjoint/symplectic_diffeqsolve": dfx_with(diffrax.RecursiveCheckpointAdjoint()),
    "adjoint/reversible_rk": fixed_with(si.ReversibleRK(diffrax.Tsit5()), "autodiff"),
}
for name, solve in ADJ.items():
    out[name] = case(batch_grad(solve), (W, ys0), (P(), ens), moved=False)
    ref = jax.jit(batch_grad(REF[name]))(W, ys0)
    got = jax.jit(batch_grad(solve))(jax.device_put(W, NamedSharding(mesh, P())),
                                      jax.device_put(ys0, NamedSharding(mesh, ens)))
    out[name]["vs_autodiff"] = max(rel(a, b) for a, b in zip(got, ref))
out["_seconds"] = time.perf_counter() - t0
print("JSON" + json.dumps(out))
"""

ENSEMBLES = ["solve_fixed", "diffeqsolve_splitting", "diffeqsolve_adaptive", "parameters"]
CASES = [f"ensemble/{e}" for e in ENSEMBLES] + [
    "particles/fpu",
    "particles/nbody",
    "adjoint/reversible_particles",
    "adjoint/reversible_ensemble",
]
BATCH_ADJOINTS = ["adjoint/symplectic_fixed", "adjoint/symplectic_diffeqsolve",
                  "adjoint/reversible_rk"]  # fmt: skip
# The inputs' specs, as `str(PartitionSpec)` prints them.
SPECS = {
    "ensemble/solve_fixed": ["P('d', None)"] * 2,
    "adjoint/reversible_ensemble": ["P('d', None)"] * 2,
    "particles/nbody": ["P('d', None)"] * 2,
}


@pytest.fixture(scope="module")
def measured(tmp_path_factory, worker_id):
    return measured_once(SCRIPT, tmp_path_factory, worker_id, x64=True)


@pytest.mark.parametrize("case", CASES)
def test_sharded_matches_one_device(measured, case):
    r = measured[case]
    assert r["err"] <= 1e-13, r
    assert r["size"] > 1.0, r  # a nontrivial result
    if r["moved"] is not None:
        assert r["moved"] > 1e-3, r  # the solve did move the state


@pytest.mark.parametrize("case", CASES)
def test_outputs_keep_the_inputs_sharding(measured, case):
    """Sharded along the batch or the particles in, sharded the same way out (a guarded
    state once came back replicated: see the module docstring)."""
    r = measured[case]
    want = SPECS.get(case)
    if want is None:  # 1-D inputs sharded over "d"
        assert all(s in ("P('d',)", "P('d', None)") for s in r["out_specs"]), r["out_specs"]
        assert all(s.startswith("P('d'") for s in r["out_specs"]), r["out_specs"]
    else:
        assert r["out_specs"] == want, r["out_specs"]


@pytest.mark.parametrize(
    "case", ["ensemble/solve_fixed", "ensemble/parameters", "adjoint/reversible_ensemble"]
)
def test_solve_fixed_ensembles_need_no_collective(measured, case):
    assert measured[case]["collectives"] == [], measured[case]["collectives"]


@pytest.mark.parametrize(
    "case", ["ensemble/diffeqsolve_splitting", "ensemble/diffeqsolve_adaptive"]
)
def test_diffeqsolve_ensembles_reduce_one_members_output_at_most(measured, case):
    """Only all-reduces, none larger than one member's saved state (16 + 16 numbers): the
    communication does not grow with the ensemble."""
    found = measured[case]["collectives"]
    assert {kind for kind, _ in found} <= {"all-reduce"}, found
    assert all(size(s) <= 16 for _, shapes in found for s in shapes), found


@pytest.mark.parametrize("case", ["particles/fpu", "adjoint/reversible_particles"])
def test_sharded_chain_exchanges_neighbours_only(measured, case):
    """The 4096-particle chain on 8 devices: halo exchanges and scalar reductions, no
    all-gather of the 512-particle shards."""
    found = measured[case]["collectives"]
    assert {kind for kind, _ in found} <= {"collective-permute", "all-reduce"}, found
    assert any(kind == "collective-permute" for kind, _ in found), found
    assert all(size(s) <= 1 for _, shapes in found for s in shapes), found


def test_nbody_gathers_positions_only(measured):
    """All-pairs forces need every position: the gathers are of the positions (512 x 3),
    never of more."""
    found = measured["particles/nbody"]["collectives"]
    assert any(kind == "all-gather" for kind, _ in found), found
    assert all(size(s) <= 512 * 3 for _, shapes in found for s in shapes), found


def test_reversible_adjoint_sharded_equals_autodiff(measured):
    assert measured["adjoint/reversible_particles"]["vs_autodiff"] <= 1e-10


@pytest.mark.parametrize("case", BATCH_ADJOINTS)
def test_batch_adjoints_sharded(measured, case):
    """The symplectic adjoint (`solve_fixed` and `SymplecticAdjoint`) and `ReversibleRK`'s
    reversible adjoint over a batch of 64 sharded 8 ways, the vector field's weights
    replicated: the gradients equal one device's and autodiff's, the batch's cotangent
    stays sharded, the weights' stays replicated, and the only communication is the
    all-reduce of the weights' cotangent (16 x 16), never a gather of the batch."""
    r = measured[case]
    assert r["err"] <= 1e-13, r
    assert r["vs_autodiff"] <= 1e-10, r
    assert r["size"] > 1.0, r
    assert r["out_specs"][1] in ("P('d',)", "P('d', None)"), r["out_specs"]
    assert r["out_specs"][0] in ("P()", "P(None, None)"), r["out_specs"]
    found = r["collectives"]
    assert {kind for kind, _ in found} <= {"all-reduce"}, found
    assert all(size(s) <= 256 for _, shapes in found for s in shapes), found
