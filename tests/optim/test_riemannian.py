"""Riemannian SGD and Adam: known optima, optax conformance, dtypes, errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import structjax.manifolds as sm
import structjax.optim as so

from .loop import run

OPTIMISERS = {
    "sgd": lambda m, lr=0.02: so.riemannian_sgd(lr, manifolds=m),
    "momentum": lambda m, lr=0.02: so.riemannian_sgd(lr, momentum=0.9, manifolds=m),
    "nesterov": lambda m, lr=0.02: so.riemannian_sgd(lr, momentum=0.9, nesterov=True, manifolds=m),
    "adam": lambda m, lr=0.05: so.riemannian_adam(lr, manifolds=m),
    "amsgrad": lambda m, lr=0.05: so.riemannian_adam(lr, amsgrad=True, manifolds=m),
}


_run = run


def _symmetric(key, n):
    a = jr.normal(key, (n, n))
    return a + a.T


@pytest.mark.parametrize("name", OPTIMISERS)
def test_rayleigh_quotient_on_the_sphere(name, getkey):
    """min x^T A x on the sphere is the smallest eigenvalue, at its eigenvector."""
    sphere = sm.Sphere(10)
    a = _symmetric(getkey(), 10)
    x, _ = _run(OPTIMISERS[name](sphere), lambda x: x @ a @ x, sphere.random_point(getkey()), 3000)
    w, v = jnp.linalg.eigh(a)
    assert float(x @ a @ x) == pytest.approx(float(w[0]), abs=1e-8)
    assert float(jnp.abs(x @ v[:, 0])) == pytest.approx(1.0, abs=1e-6)
    assert float(sphere.constraint_error(x)) < 1e-14


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (so.riemannian_sgd(0.1), optax.sgd(0.1)),
        (so.riemannian_sgd(0.1, momentum=0.8), optax.sgd(0.1, momentum=0.8)),
        (so.riemannian_sgd(0.1, momentum=0.8, nesterov=True), optax.sgd(0.1, 0.8, nesterov=True)),
        (so.riemannian_adam(0.1), optax.adam(0.1)),
        (so.riemannian_adam(0.1, amsgrad=True), optax.amsgrad(0.1)),
    ],
)
def test_euclidean_leaves_are_plain_optax(ours, theirs, getkey):
    params = {"w": jr.normal(getkey(), (3, 4)), "b": jr.normal(getkey(), (4,))}

    def f(p):
        return jnp.sum(jnp.sin(p["w"] @ p["b"])) + jnp.sum(p["b"] ** 4)

    a, _ = _run(ours, f, params, 50)
    with jax.numpy_dtype_promotion("standard"):  # optax's adam mixes int and float
        b, _ = _run(theirs, f, params, 50)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        assert np.allclose(x, y, rtol=1e-12, atol=1e-12)


@jax.numpy_dtype_promotion("standard")  # optax's schedules and inject_hyperparams mix dtypes
def test_mixed_pytree_chain_schedule_inject_hyperparams(getkey):
    """A dict of a sphere leaf and a Euclidean leaf; clipping and weight decay chained in
    front; a schedule; inject_hyperparams; state dtypes and shapes stable; no retrace."""
    sphere = sm.Sphere(6)
    params = {"u": sphere.random_point(getkey(), (2,)), "b": jnp.zeros(3)}
    manifolds = {"u": sphere, "b": None}
    schedule = optax.cosine_decay_schedule(0.05, 500)
    opt = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.add_decayed_weights(1e-3),
        optax.inject_hyperparams(so.riemannian_adam)(learning_rate=schedule, manifolds=manifolds),
    )
    target = sphere.random_point(getkey(), (2,))

    def f(p):
        return -jnp.sum(p["u"] * target) + jnp.sum((p["b"] - 1.0) ** 2)

    state = opt.init(params)
    shapes = jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), state)

    @jax.jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def step(params, state):
        updates, state = opt.update(jax.grad(f)(params), state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(500):
        params, state = step(params, state)
    assert jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), state) == shapes
    assert np.allclose(params["u"], target, atol=1e-3)
    assert float(jnp.max(sphere.constraint_error(params["u"]))) < 1e-14


def test_float32_stays_on_the_manifold_over_1e4_steps(getkey):
    sphere = sm.Sphere(32)
    a = _symmetric(getkey(), 32).astype(jnp.float32)
    x0 = sphere.random_point(getkey(), (8,), jnp.float32)
    for opt in (so.riemannian_adam(0.01, manifolds=sphere),
                so.riemannian_sgd(0.01, momentum=0.9, manifolds=sphere)):  # fmt: skip
        x, state = _run(opt, lambda x: jnp.sum((x @ a) * x), x0, 10_000)
        assert x.dtype == jnp.float32
        assert all(s.dtype != jnp.float64 for s in jax.tree_util.tree_leaves(state))
        assert float(jnp.max(sphere.constraint_error(x))) < 1e-5


class Model(eqx.Module):
    """An equinox model with one constrained weight and one free weight."""

    direction: sm.Constrained
    scale: jax.Array

    def __init__(self, key):
        sphere = sm.Sphere(4)
        self.direction = sm.Constrained(sphere.random_point(key), sphere)
        self.scale = jnp.array(0.5)

    def __call__(self, x):
        return self.scale * (self.direction.value @ x)


def test_equinox_model_with_constrained_leaf(getkey):
    model = Model(getkey())
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt = so.riemannian_adam(0.05, manifolds=sm.manifolds_of(params))
    xs = jr.normal(getkey(), (64, 4))
    true = jnp.array([0.0, 0.6, 0.8, 0.0])
    ys = 2.0 * xs @ true

    def loss(params):
        m = eqx.combine(params, static)
        return jnp.mean((jax.vmap(m)(xs) - ys) ** 2)

    params, _ = _run(opt, loss, params, 1500)
    assert np.allclose(params.direction.value, true, atol=1e-4)
    assert float(params.scale) == pytest.approx(2.0, abs=1e-3)


def test_bad_input(getkey):
    sphere = sm.Sphere(3)
    with pytest.raises(ValueError, match="init` needs `params` on the sphere"):
        so.riemannian_adam(0.1, manifolds=sphere).init(jnp.array([1.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="structure of the parameters"):
        so.riemannian_sgd(0.1, manifolds={"a": sphere}).init({"a": sphere.random_point(getkey()),
                                                               "b": jnp.zeros(2)})  # fmt: skip
    with pytest.raises(ValueError, match="trailing shape"):
        so.riemannian_sgd(0.1, manifolds=sphere).init(jnp.ones((2, 4)) / 2)
    with pytest.raises(ValueError, match=r"needs momentum in \[0, 1\), got momentum=-0.5"):
        so.riemannian_sgd(0.1, momentum=-0.5, manifolds=sphere)
    with pytest.raises(ValueError, match=r"needs b1 in \[0, 1\), got b1=1.5"):
        so.riemannian_adam(0.1, b1=1.5, manifolds=sphere)


@pytest.mark.parametrize(
    "make",
    [
        lambda m, **kw: so.riemannian_sgd(0.05, momentum=0.9, manifolds=m, **kw),
        lambda m, **kw: so.riemannian_adam(0.05, amsgrad=True, manifolds=m, **kw),
        lambda m, **kw: so.cayley_sgd(0.05, manifolds=m, **kw),
        lambda m, **kw: so.cayley_adam(0.05, manifolds=m, **kw),
    ],
    ids=["riemannian_sgd", "riemannian_adam", "cayley_sgd", "cayley_adam"],
)
def test_batch_false_steps_each_leaf_alone_to_the_same_numbers(make, getkey):
    """`batch=False` (for leaves sharded each its own way) keeps one group per leaf and gives
    the batched step's numbers; a non-bool `batch` is refused, naming the call."""
    st = sm.Stiefel(6, 2)
    ms = {"a": st, "b": st, "c": st, "e": None}
    p = {"a": st.random_point(getkey()), "b": st.random_point(getkey()),
         "c": st.random_point(getkey()), "e": jr.normal(getkey(), (3,))}  # fmt: skip
    target = jax.tree.map(lambda x: jr.normal(getkey(), x.shape), p)
    grad = jax.jit(jax.grad(lambda q: sum(jnp.sum((q[k] - target[k]) ** 2) for k in q)))
    out = []
    for batch in (True, False):
        opt, q = make(ms, batch=batch), p
        state, step = opt.init(q), jax.jit(opt.update)
        for _ in range(5):
            u, state = step(grad(q), state, q)
            q = optax.apply_updates(q, u)
        out.append((q, state))
    (qb, sb), (qa, sa) = out
    assert len(sb.mu) == 2 and len(sa.mu) == 4  # one Stiefel stack + e, against four groups
    assert all(s is None for s in sa.slots)
    for k in p:
        np.testing.assert_allclose(qa[k], qb[k], rtol=1e-12, atol=1e-13)
        assert float(jnp.abs(qa[k] - p[k]).max()) > 1e-2
        if k != "e":
            assert float(st.constraint_error(qa[k])) < 1e-12
    with pytest.raises(Exception, match="batch"):
        make(ms, batch=1)
