"""Many leaves: `riemannian_adam` against `optax.adam` on a pytree of 200 mixed-manifold
leaves (compile seconds and step milliseconds). Not collected by pytest; run it as
`python -m tests.optim._leaves_probe [n_leaves]`.

The tree mixes Stiefel(64, 16), Sphere(32) (single points and batches of 4), SPD(8) and
Euclidean leaves of a few shapes, in float32 (the dtype models train in).
"""

import sys
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import optax

import structjax.manifolds as sm
import structjax.optim as so


def tree(n_leaves: int = 200, dtype=jnp.float32):
    """`(params, manifolds)`: `n_leaves` leaves cycling through the kinds above."""
    kinds = [
        (sm.Stiefel(64, 16), ()),
        (sm.Sphere(32), ()),
        (sm.Sphere(32), (4,)),
        (sm.SymmetricPositiveDefinite(8), ()),
        (None, (64,)),
        (None, (32, 16)),
    ]
    params, manifolds = {}, {}
    for i in range(n_leaves):
        m, batch = kinds[i % len(kinds)]
        key = jr.PRNGKey(i)
        name = f"w{i:03d}"
        if m is None:
            params[name] = jr.normal(key, batch, dtype)
        else:
            params[name] = m.random_point(key, batch, dtype)
        manifolds[name] = m
    return params, manifolds


def loss(params):
    return sum(jnp.sum(jnp.sin(x)) for x in jax.tree_util.tree_leaves(params))


def measure(opt, params, steps: int = 50):
    """Seconds to compile one jitted train step, and milliseconds per step after."""
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        updates, state = opt.update(jax.grad(loss)(params), state, params)
        return optax.apply_updates(params, updates), state

    t = time.perf_counter()
    compiled = step.lower(params, state).compile()
    compile_s = time.perf_counter() - t
    params, state = jax.block_until_ready(compiled(params, state))
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(steps):
            params, state = compiled(params, state)
        jax.block_until_ready(params)
        best = min(best, (time.perf_counter() - t) / steps)
    return compile_s, 1e3 * best


def main(n_leaves: int = 200):
    params, manifolds = tree(n_leaves)
    rows = {
        "optax.adam": optax.adam(1e-3),
        "riemannian_adam": so.riemannian_adam(1e-3, manifolds=manifolds),
        "riemannian_adam(checks=False)": so.riemannian_adam(
            1e-3, manifolds=manifolds, checks=False
        ),  # fmt: skip
    }
    results = {name: measure(opt, params) for name, opt in rows.items()}
    base_c, base_s = results["optax.adam"]
    print(f"{n_leaves} leaves, {jax.devices()[0].platform}")
    for name, (c, s) in results.items():
        print(f"  {name:32s} compile {c:7.2f} s ({c / base_c:4.2f}x)  "
              f"step {s:8.3f} ms ({s / base_s:4.2f}x)")  # fmt: skip
    return results


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
