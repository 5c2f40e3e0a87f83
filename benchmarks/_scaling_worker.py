"""One device count of the scaling suite: `python -m benchmarks._scaling_worker N [--quick]`.

Run by `benchmarks.scaling` in a fresh process with
`XLA_FLAGS=--xla_force_host_platform_device_count=N` (the device count is fixed when JAX's
backend starts, so each count needs its own process). It measures, on a 1-D mesh of the N
devices, in float32:

1. `riemannian_adam` on one n x p Stiefel weight with its rows sharded (`P("d", None)`): a
   jitted step (`opt.update` + `optax.apply_updates`), and the same step compiled at n / 4
   (collectives only), to see whether the bytes moved depend on n;
2. an ensemble: `jax.vmap` of `solve_fixed(VelocityVerlet)` on an FPU-beta chain over a batch
   of initial conditions sharded over the devices (and, collectives only, the same with
   `checks=False`).

For each: compile time, median time of the compiled call (`_harness.time_call`), the
collectives of the compiled HLO (kind, result shapes, bytes per device), and the largest
relative error of the sharded result against the same computation on one device. The result
is printed as one line `JSON{...}` on stdout.
"""

import re
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import structjax.integrators as si
import structjax.manifolds as sm
import structjax.optim as so

from . import _harness as h

F32 = jnp.float32
KINDS = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
# `%x = f32[64,64]{1,0} all-reduce(...)`, or a tuple result `(f32[..], f32[..]) all-reduce(`;
# the async form `all-reduce-start(` counts once (its `-done` is not matched).
_OP = re.compile(r"=\s*(\([^=]*?\)|\S+)\s+(" + "|".join(KINDS) + r")(?:-start)?\(")
_SHAPE = re.compile(r"\b([a-z]+[0-9]*)\[([0-9,]*)\]")
_BYTES = dict(pred=1, s8=1, u8=1, s16=2, u16=2, f16=2, bf16=2, s32=4, u32=4, f32=4, s64=8,
              u64=8, f64=8, c64=8, c128=16)  # fmt: skip


_COMP = re.compile(r"^(?:ENTRY\s+)?%([\w.\-]+)\s*\(")
_CALLED = re.compile(
    r"(?:calls|to_apply|body|condition|true_computation|false_computation)=%([\w.\-]+)"
)
_BRANCHES = re.compile(r"(?:true_computation|false_computation)=%([\w.\-]+)")
_BRANCH_LIST = re.compile(r"branch_computations=\{([^}]*)\}")
_OP_NAME = re.compile(r'op_name="([^"]*)"')


def _branch_computations(text: str) -> set[str]:
    """The computations run only when a `conditional` takes their branch (and what they
    call)."""
    calls: dict[str, set[str]] = {}
    branches: set[str] = set()
    current = None
    for line in text.splitlines():
        mo = _COMP.match(line)
        if mo:
            current = mo.group(1)
            calls[current] = set()
            continue
        if current is None:
            continue
        refs = set(_CALLED.findall(line))
        for lst in _BRANCH_LIST.findall(line):
            refs |= {r.strip().lstrip("%") for r in lst.split(",") if r.strip()}
        calls[current] |= refs
        if " conditional(" in line:
            branches |= set(_BRANCHES.findall(line))
            for lst in _BRANCH_LIST.findall(line):
                branches |= {r.strip().lstrip("%") for r in lst.split(",") if r.strip()}
    todo, closed = list(branches), set()
    while todo:
        name = todo.pop()
        if name not in closed:
            closed.add(name)
            todo.extend(calls.get(name, ()))
    return closed


def collectives(text: str) -> list[dict]:
    """The collectives of compiled HLO text: kind, result shapes (`"f32[64,64]"`), the bytes
    of the result on one device (the sum over a tuple result), whether it sits inside a
    branch of a `conditional` (run only when that branch is taken), and its op name."""
    in_branch = _branch_computations(text)
    found, current = [], None
    for line in text.splitlines():
        comp = _COMP.match(line)
        if comp:
            current = comp.group(1)
            continue
        mo = _OP.search(line)
        if mo is None:
            continue
        shapes, nbytes = [], 0
        for dtype, dims in _SHAPE.findall(mo.group(1)):
            size = int(np.prod([int(d) for d in dims.split(",") if d], dtype=np.int64))
            shapes.append(f"{dtype}[{dims}]")
            nbytes += size * _BYTES.get(dtype, 4)
        name = _OP_NAME.search(line)
        found.append(dict(kind=mo.group(2), shapes=shapes, bytes=nbytes,
                          in_branch=current in in_branch,
                          op_name=name.group(1)[-120:] if name else None))  # fmt: skip
    return found


def summary(found: list[dict]) -> dict:
    """Counts by kind and bytes: of every collective (`all_*`), and of those on the
    unconditional path (not inside a branch of a `conditional`), which run on every call."""
    path = [c for c in found if not c["in_branch"]]
    return dict(
        counts={k: sum(c["kind"] == k for c in path) for k in KINDS},
        total=len(path),
        bytes=sum(c["bytes"] for c in path),
        largest_bytes=max((c["bytes"] for c in path), default=0),
        all_total=len(found),
        all_bytes=sum(c["bytes"] for c in found),
        ops=found,
    )


def rel_err(a, b) -> float:
    """max over leaves of max|a - b| / max|b|."""
    errs = [
        float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
        / max(float(np.max(np.abs(np.asarray(y, np.float64)))), 1e-30)
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))
    ]
    return max(errs)


def _measure(fn, sharded_args, one_args, budget_s: float, max_calls: int) -> dict:
    compiled, compile_s = h.compile_fn(fn, *sharded_args)
    out, timing = h.time_call(compiled, *sharded_args, budget_s=budget_s, max_calls=max_calls)
    ref = jax.jit(fn)(*one_args)
    return dict(
        compile_s=compile_s,
        median_s=timing.median,
        best_s=timing.best,
        calls=len(timing.times),
        rel_err=rel_err(out, ref),
        collectives=summary(collectives(compiled.as_text())),
    ), out


# --- 1. the Stiefel step --------------------------------------------------------------------


def _stiefel_case(n: int, p: int, mesh: Mesh):
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    w = sm.Stiefel(n, p).random_point(k1, dtype=F32)
    c = jax.random.normal(k2, (p, p), F32)
    g = w @ (c + c.T) / 2 - 0.1 * jax.random.normal(k3, (n, p), F32)
    opt = so.riemannian_adam(1e-2, manifolds={"w": sm.Stiefel(n, p)})

    def step(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    rows = NamedSharding(mesh, P("d", None))
    params, grads = {"w": jax.device_put(w, rows)}, {"w": jax.device_put(g, rows)}
    state = opt.init(params)
    one = jax.devices()[0]
    one_args = jax.device_put(({"w": w}, opt.init({"w": w}), {"w": g}), one)
    return step, (params, state, grads), one_args


def stiefel(n: int, p: int, mesh: Mesh, budget_s: float, max_calls: int) -> dict:
    step, args, one_args = _stiefel_case(n, p, mesh)
    out, result = _measure(step, args, one_args, budget_s, max_calls)
    out["n"], out["p"] = n, p
    out["out_spec"] = str(result[0]["w"].sharding.spec)
    out["moved"] = rel_err(result[0]["w"], jax.device_get(args[0]["w"]))
    small_step, small_args, _ = _stiefel_case(n // 4, p, mesh)
    small = jax.jit(small_step).lower(*small_args).compile().as_text()
    out["collectives_n_over_4"] = summary(collectives(small))
    return out


# --- 2. the ensemble ------------------------------------------------------------------------


def _fpu_terms():
    def kinetic(p, args):
        return 0.5 * jnp.sum(p**2)

    def potential(q, args):  # FPU-beta chain, fixed ends
        d = jnp.diff(jnp.concatenate([jnp.zeros(1, q.dtype), q, jnp.zeros(1, q.dtype)]))
        return jnp.sum(0.5 * d**2 + 0.25 * d**4)

    return si.separable_terms(kinetic, potential)


def ensemble(batch: int, dof: int, steps: int, mesh: Mesh, budget_s: float, max_calls: int):
    terms, solver = _fpu_terms(), si.VelocityVerlet()
    x = jnp.linspace(0.0, 1.0, dof + 2, dtype=F32)[1:-1]
    amp = jnp.linspace(0.2, 1.2, batch, dtype=F32)[:, None]
    q0 = amp * jnp.sin(jnp.pi * x)[None, :]
    p0 = 0.1 * amp * jnp.sin(2 * jnp.pi * x)[None, :]

    def solve(q0, p0, checks=True):
        def one(y0):
            return si.solve_fixed(terms, solver, y0, dt=0.02, num_steps=steps, checks=checks).y1

        return jax.vmap(one)((q0, p0))

    rows = NamedSharding(mesh, P("d", None))
    args = (jax.device_put(q0, rows), jax.device_put(p0, rows))
    out, result = _measure(solve, args, jax.device_put((q0, p0), jax.devices()[0]), budget_s,
                           max_calls)  # fmt: skip
    out.update(batch=batch, dof=dof, steps=steps, out_spec=str(result[0].sharding.spec))
    out["median_per_step_s"] = out["median_s"] / steps
    unchecked = jax.jit(lambda q, p: solve(q, p, checks=False)).lower(*args).compile()
    out["collectives_checks_false"] = summary(collectives(unchecked.as_text()))
    return out


def main(argv: list[str]) -> None:
    count, quick = int(argv[0]), "--quick" in argv
    devices = jax.devices()
    assert len(devices) == count, (count, devices)
    mesh = Mesh(np.array(devices), ("d",))
    start = time.perf_counter()
    n, p = (2048, 32) if quick else (8192, 64)
    batch, dof, steps = (64, 32, 500) if quick else (4096, 64, 1000)
    budget, calls = (0.3, 10) if quick else (6.0, 500)
    out = dict(devices=count, platform=devices[0].platform)
    out["stiefel"] = stiefel(n, p, mesh, budget, calls)
    out["ensemble"] = ensemble(batch, dof, steps, mesh, budget, calls)
    out["seconds"] = time.perf_counter() - start
    import json

    print("JSON" + json.dumps(h.jsonable(out)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
