"""The conformance suite: every layer in `cases.CASES` is checked for the structure it
promises, for jit/vmap/grad, for not retracing, and in float32."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest

import structjax.check as check

from ..helpers import compilations, tree_max_abs_diff
from .cases import (
    BIJECTIONS,
    CASES,
    LIPSCHITZ,
    SYMPLECTIC,
    apply,
    build,
    lipschitz_bound,
    to_float32 as f32,
)

BIJECTIVE = [c for c in CASES if c.bijection]


@pytest.mark.parametrize("case", BIJECTIVE, ids=repr)
def test_inverse_is_exact(case, getkey):
    layer = build(case, getkey())
    for i in range(3):
        if i == 1:  # eager calls again, same shapes: nothing new to compile
            compiled = compilations()
        x = case.example(getkey())
        assert float(check.inversion_error(layer.forward, layer.inverse, x)) < 1e-10
        assert float(check.inversion_error(layer.inverse, layer.forward, x)) < 1e-10
    assert compilations() == compiled, "a repeated eager forward/inverse compiled again"


@pytest.mark.parametrize("case", BIJECTIVE, ids=repr)
def test_log_det_matches_the_jacobian(case, getkey):
    layer = build(case, getkey())
    x = case.example(getkey())

    def fwd_ld(x):
        return layer.forward_and_log_det(x)[1]

    def inv_ld(y):
        return layer.inverse_and_log_det(y)[1]

    assert float(check.log_det_error(layer.forward, fwd_ld, x)) < 1e-8
    assert float(check.log_det_error(layer.inverse, inv_ld, x)) < 1e-8
    # and the two directions agree: log|det J_{f^-1}(f(x))| = -log|det J_f(x)|
    y, ld = layer.forward_and_log_det(x)
    assert abs(float(ld + layer.inverse_and_log_det(y)[1])) < 1e-10


@pytest.mark.parametrize("case", SYMPLECTIC, ids=repr)
def test_symplectic(case, getkey):
    layer = build(case, getkey())
    for _ in range(2):
        q, p = case.example(getkey())
        err = check.symplecticity_error(lambda q, p: apply(case, layer, (q, p)), q, p)
        assert float(err) < 1e-12


@pytest.mark.parametrize("case", SYMPLECTIC, ids=repr)
def test_symplectic_maps_are_not_trivial(case, getkey):
    # A symplecticity test of the identity would pass: the maps must move phase space.
    layer = build(case, getkey())
    y = case.example(getkey())
    assert float(tree_max_abs_diff(apply(case, layer, y), y)) > 1e-3


@pytest.mark.parametrize("case", LIPSCHITZ, ids=repr)
def test_declared_lipschitz_bound_holds(case, getkey):
    layer = build(case, getkey())
    bound = lipschitz_bound(layer)
    x = case.example(getkey())
    found = float(check.lipschitz_lower_bound(layer, x, getkey(), num_starts=4, steps=100))
    assert found <= bound * (1 + 1e-9)
    assert found > 0.5 * bound  # the layers are not trivially contracting
    # and on pairs of points, the definition itself
    x2 = case.example(getkey())
    ratio = jnp.linalg.norm((layer(x) - layer(x2)).ravel()) / jnp.linalg.norm((x - x2).ravel())
    assert float(ratio) <= bound * (1 + 1e-9)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_jit_vmap_grad_no_retrace(case, getkey):
    layer = build(case, getkey())
    xs = jax.vmap(case.example)(jax.random.split(getkey(), 4))

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def batched(layer, xs):
        return jax.vmap(lambda x: apply(case, layer, x))(xs)

    out = batched(layer, xs)
    batched(layer, jtu.tree_map(lambda a: a + 1.0, xs))  # new values, no retrace
    pairs = [jtu.tree_map(lambda a: a[i], (xs, out)) for i in range(4)]
    for i, (xi, yi) in enumerate(pairs):
        if i == 1:  # the second eager call with identical shapes compiles nothing
            compiled = compilations()
        assert float(tree_max_abs_diff(apply(case, layer, xi), yi)) < 1e-12
    assert compilations() == compiled, "a repeated eager call compiled a new XLA program"

    def loss(layer_and_xs):
        layer, xs = layer_and_xs
        out = jax.vmap(lambda x: apply(case, layer, x))(xs)
        return sum(jnp.sum(jnp.sin(a)) for a in jtu.tree_leaves(out))

    grads = eqx.filter_jit(eqx.filter_grad(loss))((layer, xs))
    for part in grads:  # the parameters' gradient (if any) and the inputs'
        leaves = jtu.tree_leaves(eqx.filter(part, eqx.is_inexact_array))
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
        assert not leaves or max(float(jnp.max(jnp.abs(g))) for g in leaves) > 0


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_float32(case, getkey):
    layer64 = build(case, getkey())
    x64 = case.example(getkey())
    layer, x = f32(layer64), f32(x64)
    y = apply(case, layer, x)
    assert all(a.dtype == jnp.float32 for a in jtu.tree_leaves(y))
    y64 = apply(case, layer64, x64)
    scale = max(1.0, float(tree_max_abs_diff(y64, jtu.tree_map(jnp.zeros_like, y64))))
    assert float(tree_max_abs_diff(y, y64)) < 1e-4 * scale
    if case.bijection:
        assert float(check.inversion_error(layer.forward, layer.inverse, x)) < 2e-5
    if case.symplectic:
        err = check.symplecticity_error(lambda q, p: apply(case, layer, (q, p)), *x)
        assert float(err) < 1e-5


def test_every_public_layer_is_in_the_conformance_list():
    import structjax.nn as snn

    names = " ".join(c.name for c in CASES)
    skip = {"AbstractBijection", "AbstractSympNet", "Chain", "Invert", "HamiltonianResNet"}
    for name in snn.__all__ if hasattr(snn, "__all__") else dir(snn):
        obj = getattr(snn, name)
        if name.startswith("_") or name in skip or not callable(obj):
            continue
        assert name in names, f"{name} is public but not in tests/nn/cases.py"


def test_bijection_lists_are_disjoint_and_complete():
    assert len({c.name for c in CASES}) == len(CASES)
    assert all(c.bijection for c in BIJECTIONS)
    assert np.all([c.lipschitz for c in LIPSCHITZ])
