"""Every structjax optimiser's guards: refusals eagerly and inside `jax.jit` (off-manifold
starting points, hyperparameters traced, scheduled and injected), dtypes (integer and complex
refused, 16-bit floats kept on their manifolds), empty trees, `Product` points, aliasing,
recompiles, NaN steps under `optax.apply_if_finite`."""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import optax
import pytest

import structjax.manifolds as sm
import structjax.optim as so
from structjax._guards import point_tolerance

from ..helpers import assert_refused, compilations
from .loop import ALL_OPTIMISERS, CODE_PATHS, cayley_only

SPHERE = sm.Sphere(4)
STIEFEL = sm.Stiefel(5, 2)
NAN = float("nan")


def _manifold(name):
    return STIEFEL if cayley_only(name) else SPHERE


def _point(m, key=0, dtype=None):
    return m.random_point(jr.PRNGKey(key), (), dtype)


def _grad(x):
    return jtu.tree_map(lambda a: jnp.full_like(a, 0.5) + a, x)


def _one_step(opt):
    """init then one update, as a jitted train step would do it: the new params."""

    def step(x):
        state = opt.init(x)
        updates, _ = opt.update(_grad(x), state, x)
        return optax.apply_updates(x, updates)

    return step


# --- the starting point --------------------------------------------------------------------

# `init`'s refusal; in a chain, the manifold's own refusal in a later method may come first
_OFF = r"(\.init` needs `params`|retract\(x, v\)` needs `x`) (on|orthonormal)"


@pytest.mark.parametrize("name", ALL_OPTIMISERS)
def test_init_refuses_an_off_manifold_point_inside_a_jitted_step(name):
    m = _manifold(name)
    bad = 1.5 * _point(m)
    assert_refused(_one_step(ALL_OPTIMISERS[name](m)), bad, match=_OFF)
    # the opt-out (the manifold's own, of its methods' checks, too)
    unchecked = sm.Stiefel(5, 2, checks=False) if m is STIEFEL else sm.Sphere(4, checks=False)
    x = jax.jit(_one_step(ALL_OPTIMISERS[name](unchecked, checks=False)))(bad)
    assert bool(jnp.all(jnp.isfinite(x)))


def test_riemannian_gradient_init_refuses_off_manifold_points():
    opt = so.riemannian_gradient({"a": SPHERE, "b": None})
    bad = {"a": jnp.array([2.0, 0.0, 0.0, 0.0]), "b": jnp.zeros(2)}
    assert_refused(_one_step(optax.chain(opt, optax.sgd(0.1))), bad, match=r"params\['a'\]")


# --- hyperparameters, when built, traced, scheduled and injected ---------------------------

S, ST = SPHERE, STIEFEL
HYPER = {
    "sgd lr nan": (lambda v: so.riemannian_sgd(v, manifolds=S), NAN, "learning_rate finite"),
    "sgd lr < 0": (lambda v: so.riemannian_sgd(v, manifolds=S), -0.1, "learning_rate finite"),
    "sgd momentum 1": (lambda v: so.riemannian_sgd(0.1, v, manifolds=S), 1.0, "momentum in"),
    "sgd momentum nan": (lambda v: so.riemannian_sgd(0.1, v, manifolds=S), NAN, "momentum in"),
    "adam b1 1": (lambda v: so.riemannian_adam(0.1, b1=v, manifolds=S), 1.0, r"b1 in \[0, 1\)"),
    "adam b2 < 0": (lambda v: so.riemannian_adam(0.1, b2=v, manifolds=S), -0.5, "b2 in"),
    "adam eps nan": (lambda v: so.riemannian_adam(0.1, eps=v, manifolds=S), NAN, "eps finite"),
    "adam lr inf": (lambda v: so.riemannian_adam(v, manifolds=S), math.inf, "learning_rate"),
    "cayley_sgd q 0": (lambda v: so.cayley_sgd(0.1, q=v, manifolds=ST), 0.0, r"q in \(0, 1\)"),
    "cayley_adam q > 1": (lambda v: so.cayley_adam(0.1, q=v, manifolds=ST), 1.5, "q in"),
    "cayley_sgd momentum": (lambda v: so.cayley_sgd(0.1, v, manifolds=ST), 1.2, "momentum"),
    "csm damping < 0": (
        lambda v: so.conformal_symplectic_momentum(0.1, v, manifolds=S),
        -1.0,
        "damping >= 0",
    ),
    "csm damping nan": (lambda v: so.conformal_symplectic_momentum(0.1, v), NAN, "damping"),
    "csm mass 0": (lambda v: so.conformal_symplectic_momentum(0.1, 1.0, v), 0.0, "mass pos"),
    "csm lr 0": (lambda v: so.conformal_symplectic_momentum(v, 1.0), 0.0, "learning_rate pos"),
    "hd damping < 0": (lambda v: so.hamiltonian_descent(0.1, v, manifolds=S), -2.0, "damping"),
    "hd lr nan": (lambda v: so.hamiltonian_descent(v, 1.0), NAN, "learning_rate positive"),
    "hd kinetic mass": (
        lambda v: so.hamiltonian_descent(0.1, 1.0, so.relativistic_kinetic(v)),
        -1.0,
        "mass",
    ),
    "hd power a": (
        lambda v: so.hamiltonian_descent(0.1, 1.0, so.power_kinetic(v, 2.0)),
        0.5,
        "a finite and >= 1",
    ),  # fmt: skip
    "rgd c 0": (lambda v: so.relativistic_gd(0.1, 1.0, speed_of_light=v), 0.0, "speed_of_light"),
    "rgd c < 0": (
        lambda v: so.relativistic_gd(0.1, 1.0, speed_of_light=v, manifolds=S),
        -1.0,
        "speed_of",
    ),
    "rgd alpha": (lambda v: so.relativistic_gd(0.1, 1.0, alpha=v), 1.5, r"alpha in \[0, 1\]"),
    "rgd mass": (lambda v: so.relativistic_gd(0.1, 1.0, mass=v), NAN, "mass positive"),
    "rgd damping": (lambda v: so.relativistic_gd(0.1, v), -0.1, "damping"),
    # the building blocks
    "momentum block": (
        lambda v: optax.chain(
            so.riemannian_gradient(S), so.scale_by_riemannian_momentum(v, manifolds=S)
        ),
        1.0,
        "momentum in",
    ),  # fmt: skip
    "adam block": (
        lambda v: optax.chain(
            so.riemannian_gradient(S), so.scale_by_riemannian_adam(v, manifolds=S)
        ),
        -0.1,
        "b1 in",
    ),  # fmt: skip
    "cayley bound block": (lambda v: so.scale_by_cayley_bound(v, manifolds=ST), 0.0, "q in"),
    "conformal euler block": (lambda v: so.scale_by_conformal_euler(0.1, v), -1.0, "damping"),
    "relativistic block": (
        lambda v: so.scale_by_relativistic(0.1, 1.0, speed_of_light=v),
        0.0,
        "speed_of_light",
    ),
}


@pytest.mark.parametrize("case", HYPER)
def test_hyperparameters_refused_eagerly_and_traced(case):
    make, bad, match = HYPER[case]
    x = _point(ST if "cayley" in case else S)

    def step(v):
        return _one_step(make(v))(x)

    assert_refused(step, bad, match=match)


# one optimiser per code path of the learning rate: the batched step, conformal Euler, RGD
@pytest.mark.parametrize("name", ["riemannian_adam", "hamiltonian_descent", "relativistic_gd"])
def test_schedule_values_are_checked_at_run_time(name):
    m = _manifold(name)
    x = _point(m)
    # fine at step 0, NaN from step 1 on (a schedule gone wrong)
    opt = ALL_OPTIMISERS[name](m, lr=lambda count: jnp.where(count >= 1, NAN, 0.05))

    def two_steps(x):
        state = opt.init(x)
        for _ in range(2):
            updates, state = opt.update(_grad(x), state, x)
            x = optax.apply_updates(x, updates)
        return x

    assert_refused(two_steps, x, match="learning_rate \\(the schedule's value\\)")


INJECTED = {
    "riemannian_sgd": (
        so.riemannian_sgd,
        dict(learning_rate=0.1, momentum=0.5),
        S,
        "momentum",
        1.0,
        "momentum in",
    ),  # fmt: skip
    "riemannian_adam": (so.riemannian_adam, dict(learning_rate=0.1, b1=0.9), S, "b1", 1.0, "b1"),
    "riemannian_adam lr": (
        so.riemannian_adam,
        dict(learning_rate=0.1),
        S,
        "learning_rate",
        NAN,
        "learning_rate finite",
    ),  # fmt: skip
    "cayley_sgd": (so.cayley_sgd, dict(learning_rate=0.1, q=0.5), ST, "q", 2.0, "q in"),
    "cayley_adam": (so.cayley_adam, dict(learning_rate=0.1, b2=0.99), ST, "b2", -1.0, "b2 in"),
    "conformal_symplectic_momentum": (
        so.conformal_symplectic_momentum,
        dict(learning_rate=0.1, damping=1.0),
        S,
        "damping",
        -1.0,
        "damping >= 0",
    ),  # fmt: skip
    "hamiltonian_descent": (
        so.hamiltonian_descent,
        dict(learning_rate=0.1, damping=1.0),
        S,
        "learning_rate",
        -0.1,
        "learning_rate positive",
    ),  # fmt: skip
    "relativistic_gd": (
        so.relativistic_gd,
        dict(learning_rate=0.1, damping=1.0, speed_of_light=2.0),
        S,
        "speed_of_light",
        0.0,
        "speed_of_light positive",
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", INJECTED)
def test_injected_hyperparameters_are_checked(case):
    factory, kwargs, m, key, bad, match = INJECTED[case]
    static = ("iterations",) if "cayley" in case else ()  # a Python int: the loop's length
    opt = optax.inject_hyperparams(factory, static_args=static)(manifolds=m, **kwargs)
    x = _point(m)
    state = opt.init(x)
    good = jax.jit(lambda s: opt.update(_grad(x), s, x)[0])
    assert bool(jnp.all(jnp.isfinite(good(state))))
    state.hyperparams[key] = jnp.asarray(bad, state.hyperparams[key].dtype)
    assert_refused(lambda s: opt.update(_grad(x), s, x)[0], state, match=match)


# --- dtypes --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_OPTIMISERS)
def test_integer_and_complex_params_are_refused(name):
    m = _manifold(name)
    x = _point(m)
    opt = ALL_OPTIMISERS[name](m)
    assert_refused(opt.init, x.astype(jnp.int32), match="real floating-point `params`")
    assert_refused(opt.init, x.astype(jnp.complex128), match="complex array")
    # and complex gradients at a real point
    assert_refused(lambda g: opt.update(g, opt.init(x), x)[0], x.astype(jnp.complex128),
                   match="real floating-point `updates`")  # fmt: skip


# 16-bit parameters: every manifold (riemannian_adam), every optimiser (a sphere, a Stiefel
# matrix and a Euclidean leaf; Stiefel-type leaves for the Cayley ones), 10^3 steps in one
# compiled scan, stay on their manifolds to the precision of their dtype.
EVERY_MANIFOLD = {
    "sphere": sm.Sphere(8),
    "stiefel": sm.Stiefel(6, 3),
    "orthogonal": sm.Orthogonal(3),
    "special_orthogonal": sm.SpecialOrthogonal(3),
    "grassmann": sm.Grassmann(6, 2),
    "spd": sm.SymmetricPositiveDefinite(3),
    "poincare": sm.PoincareBall(4),
    "lorentz": sm.Lorentz(4),
    "euclidean": sm.Euclidean((3,)),
    "product": sm.Product((sm.Sphere(3), sm.Stiefel(4, 2))),
    "none": None,
}


def _tree16(names, dtype):
    params, manifolds = {}, {}
    for k, name in enumerate(names):
        m = EVERY_MANIFOLD[name]
        x = jr.normal(jr.PRNGKey(k), (3,)) if m is None else _point(m, k, jnp.float32)
        params[name] = jtu.tree_map(lambda a: a.astype(dtype), x)
        manifolds[name] = m
    return params, manifolds


def _drift(opt, params, manifolds, steps=1000):
    """The parameters after `steps` steps, and each leaf's constraint error (in float32)."""
    w = jtu.tree_map(lambda a: jr.normal(jr.PRNGKey(7), a.shape, jnp.float32), params)

    def loss(p):
        terms = jtu.tree_map(lambda a, b: jnp.sum(jnp.sin(3 * a.astype(jnp.float32)) * b), p, w)
        return sum(jtu.tree_leaves(terms))

    def errors(p):
        def err(m, x):
            if m is None:
                return jnp.zeros((), jnp.float32)
            x32 = jtu.tree_map(lambda a: a.astype(jnp.float32), x)
            return jnp.max(m.constraint_error(x32))

        return {k: err(manifolds[k], p[k]) for k in p}

    def body(carry, _):
        p, s = carry
        g = jax.grad(loss)(p)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    # (the error of the last point: a retraction's error does not build up, it is reset at
    # every step, so the last point is as far off as any)
    (p, _), _ = jax.lax.scan(body, (params, opt.init(params)), None, length=steps)
    return p, errors(p)


def _assert_held(params, p, errs, manifolds):
    for k in params:
        for a, b in zip(jtu.tree_leaves(params[k]), jtu.tree_leaves(p[k])):
            assert b.dtype == a.dtype, k
            assert bool(jnp.all(jnp.isfinite(b.astype(jnp.float32)))), k
        m = manifolds[k]
        if m is None:
            continue
        leaves = jtu.tree_leaves(params[k])
        size = max(int(np.prod(jnp.shape(a))) for a in leaves)
        tol = point_tolerance(leaves[0].dtype, size)
        assert float(errs[k]) <= tol, (k, float(errs[k]), tol)


def test_16_bit_riemannian_adam_on_every_manifold():
    """float16 and bfloat16 alternate over the manifolds (one compiled program); both dtypes
    meet the sphere and Stiefel in `test_16_bit_every_optimiser`."""
    names = [k for k in EVERY_MANIFOLD if k != "product"]  # (a Product steps as its factors)
    p16, m16 = _tree16(names[0::2], jnp.float16)
    pb, mb = _tree16(names[1::2], jnp.bfloat16)
    params, manifolds = {**p16, **pb}, {**m16, **mb}
    p, errs = jax.jit(lambda x: _drift(so.riemannian_adam(1e-2, manifolds=manifolds), x,
                                       manifolds))(params)  # fmt: skip
    _assert_held(params, p, errs, manifolds)


def test_16_bit_every_optimiser():
    """Every optimiser, float16 and bfloat16 leaves side by side, in one compiled program."""
    runs = {}
    for name, make in ALL_OPTIMISERS.items():
        kinds = ["stiefel", "none"] if cayley_only(name) else ["sphere", "none"]
        p16, m16 = _tree16(kinds, jnp.float16)
        pb, mb = _tree16(kinds, jnp.bfloat16)
        params = {**{k + "16": v for k, v in p16.items()}, **{k + "b": v for k, v in pb.items()}}
        manifolds = {**{k + "16": v for k, v in m16.items()},
                     **{k + "b": v for k, v in mb.items()}}  # fmt: skip
        runs[name] = (make(manifolds, lr=1e-2), params, manifolds)

    @jax.jit
    def all_runs(params):
        return {n: _drift(opt, params[n], ms) for n, (opt, _, ms) in runs.items()}

    out = all_runs({n: r[1] for n, r in runs.items()})
    for name, (p, errs) in out.items():
        _, params, manifolds = runs[name]
        _assert_held(params, p, errs, manifolds)


# --- empty trees, Product points, aliasing -------------------------------------------------


@pytest.mark.parametrize("name", ALL_OPTIMISERS)
def test_empty_trees(name):
    opt = ALL_OPTIMISERS[name](None)
    for empty in ({}, ()):
        for run in (lambda f: f, jax.jit):
            state = run(opt.init)(empty)
            updates, _ = run(opt.update)(empty, state, empty)
            assert updates == empty


# the batched step, its Cayley form (which swaps the factors' retraction) and a chain
@pytest.mark.parametrize("name", ["riemannian_adam", "cayley_adam", "relativistic_gd"])
def test_product_points(name):
    """A `Product` leaf takes a tuple of arrays, alone or inside a tree, and steps as the
    tuple of its factors does."""
    factors = (sm.Stiefel(5, 2), sm.Orthogonal(3)) if cayley_only(name) else (SPHERE, STIEFEL)
    product = sm.Product(factors)
    x = product.random_point(jr.PRNGKey(3))
    make = ALL_OPTIMISERS[name]

    def grad(p):  # (a zero gradient on the Euclidean leaf: the conformal optimisers couple
        # their leaves through the total kinetic energy)
        return {"p": _grad(p["p"]), "b": jnp.zeros(2)} if isinstance(p, dict) else _grad(p)

    @jax.jit
    def steps(x):
        out = []
        for ms, params in [(product, x), (factors, x), ({"p": product, "b": None},
                                                         {"p": x, "b": jnp.ones(2)})]:  # fmt: skip
            opt, p = make(ms), params
            state = opt.init(p)
            for _ in range(2):
                u, state = opt.update(grad(p), state, p)
                p = optax.apply_updates(p, u)
            out.append(p)
        return out

    a, b, c = steps(x)
    for u, v, w in zip(jtu.tree_leaves(a), jtu.tree_leaves(b), jtu.tree_leaves(c["p"])):
        assert np.array_equal(u, v) and np.array_equal(u, w)
    assert float(jnp.max(product.constraint_error(a))) < 1e-12
    assert float(jnp.max(jnp.abs(a[0] - x[0]))) > 1e-3  # it did move


@pytest.mark.parametrize("name", ALL_OPTIMISERS)
def test_state_does_not_alias_the_callers_arrays(name):
    m = _manifold(name)
    x = np.array(_point(m))
    opt = ALL_OPTIMISERS[name](m)
    state = opt.init(x)
    updates, state = opt.update(np.array(_grad(x)), state, x)
    before = [np.array(s) for s in jtu.tree_leaves(state)]
    x[...] = 99.0  # the caller writes into its array
    after = [np.array(s) for s in jtu.tree_leaves(state)]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


# --- eager calls compile once; NaN steps are skipped ---------------------------------------


@pytest.mark.parametrize("name", ALL_OPTIMISERS)
def test_repeated_eager_updates_compile_nothing(name):
    m = _manifold(name)
    x = _point(m)
    opt = ALL_OPTIMISERS[name](m)
    state = opt.init(x)
    for _ in range(2):  # warm up
        updates, state = opt.update(_grad(x), state, x)
    before = compilations()
    for _ in range(2):
        updates, state = opt.update(_grad(x), state, x)
        x = optax.apply_updates(x, updates)
    jax.block_until_ready(x)
    assert compilations() == before


@pytest.mark.parametrize("name", CODE_PATHS)
def test_apply_if_finite_skips_a_nan_step(name):
    m = _manifold(name)
    x0 = _point(m)
    make = ALL_OPTIMISERS[name]
    grads = [_grad(x0), jnp.full_like(x0, NAN), 0.5 * _grad(x0)]

    @jax.jit
    def run(x0):
        opt = optax.apply_if_finite(make(m), max_consecutive_errors=3)
        x, state, seen = x0, opt.init(x0), []
        for g in grads:
            u, new = opt.update(g, state, x)
            seen.append((u, state.inner_state, new.inner_state))
            x, state = optax.apply_updates(x, u), new
        ref = make(m)  # the same run without the NaN step
        y, s = x0, ref.init(x0)
        for g in (grads[0], grads[2]):
            u, s = ref.update(g, s, y)
            y = optax.apply_updates(y, u)
        return x, state.inner_state, y, s, seen, state.total_notfinite

    x, inner, y, s, seen, skipped = run(x0)
    u_nan, before, after = seen[1]
    assert int(skipped) == 1
    assert float(jnp.max(jnp.abs(u_nan))) == 0.0
    for a, b in zip(jtu.tree_leaves(before), jtu.tree_leaves(after)):
        assert np.array_equal(a, b)  # the state is not poisoned
    assert np.array_equal(x, y)
    for a, b in zip(jtu.tree_leaves(inner), jtu.tree_leaves(s)):
        assert np.array_equal(a, b)
    assert bool(jnp.all(jnp.isfinite(x)))


def test_repeated_eager_updates_compile_nothing_with_polar_and_cayley_retractions():
    """The retractions that once recompiled per eager call (the polar one among them)."""
    for retraction in ("polar", "cayley"):
        m = sm.Stiefel(5, 2, retraction)
        x = _point(m)
        opt = so.riemannian_adam(0.02, manifolds=m)
        state = opt.init(x)
        for _ in range(2):
            updates, state = opt.update(_grad(x), state, x)
        before = compilations()
        updates, state = opt.update(_grad(x), state, x)
        jax.block_until_ready(updates)
        assert compilations() == before, retraction
