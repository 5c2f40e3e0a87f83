"""Every method under jit, vmap and grad: the transformed results agree with the plain ones,
and a second call does not retrace."""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import structjax.integrators as si

from ..helpers import METHODS

TERMS = si.separable_terms(
    lambda p, a: 0.5 * jnp.sum(p**2), lambda q, a: -a * jnp.sum(jnp.cos(q)) + 0.1 * jnp.sum(q**4)
)
Y0 = (jnp.array([0.4, -0.7]), jnp.array([0.2, 0.1]))


def _final(solver, y0, g):
    return si.solve_fixed(TERMS, solver, y0, dt=0.1, num_steps=12, args=g).y1


@pytest.mark.parametrize("make", METHODS.values(), ids=METHODS.keys())
def test_jit_vmap_grad_and_no_retrace(make):
    solver = make()
    plain = _final(solver, Y0, 1.2)

    traced = eqx.debug.assert_max_traces(lambda y0, g: _final(solver, y0, g), max_traces=1)
    jitted = jax.jit(traced)
    for a, b in zip(jax.tree_util.tree_leaves(jitted(Y0, 1.2)), jax.tree_util.tree_leaves(plain)):
        assert jnp.allclose(a, b, rtol=1e-13, atol=1e-13)
    jitted(jax.tree_util.tree_map(lambda x: 0.9 * x, Y0), 0.8)  # new values: no retrace

    gs = jnp.array([0.8, 1.2, 1.6])
    batch = jax.vmap(lambda g: _final(solver, Y0, g))(gs)
    for i, g in enumerate(gs):
        single = _final(solver, Y0, g)
        for a, b in zip(jax.tree_util.tree_leaves(batch), jax.tree_util.tree_leaves(single)):
            assert jnp.allclose(a[i], b, rtol=1e-13, atol=1e-13)

    def loss(g):
        q, p = _final(solver, Y0, g)
        return jnp.sum(q**2) + jnp.sum(p)

    grad = jax.grad(loss)(1.2)
    eps = 1e-6
    fd = (loss(1.2 + eps) - loss(1.2 - eps)) / (2 * eps)
    assert abs(grad - fd) < 1e-7 * max(1.0, abs(fd)), (grad, fd)
