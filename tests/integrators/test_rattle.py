"""RATTLE: position and hidden velocity constraints to rounding over 10^5 steps, order 2,
symmetry, pytrees, jit/vmap/grad, and clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest

import structjax.integrators as si
from structjax.check import constraint_violation, convergence_order, energy_error

from ..helpers import assert_refused

GRAVITY = 9.81
PENDULUM = si.separable_terms(lambda p, a: 0.5 * p @ p, lambda q, a: GRAVITY * q[2])


def _sphere(q, args):
    return jnp.array([q @ q - 1.0])


Q0 = jnp.array([np.sin(1.0), 0.0, -np.cos(1.0)])
P0 = jnp.array([0.0, 1.5, 0.0])


def _violations(g, qs, ps):
    return jax.vmap(lambda q, p: jnp.stack(constraint_violation(lambda q: g(q, None), q, p)))(
        qs, ps
    )


def test_spherical_pendulum_stays_on_the_constraints_for_1e5_steps():
    out = jax.jit(
        lambda y: si.solve_fixed(
            PENDULUM, si.Rattle(_sphere), y, dt=0.01, num_steps=100_000, save_every=500
        )  # fmt: skip
    )((Q0, P0))
    qs, ps = out.ys
    assert float(jnp.max(_violations(_sphere, qs, ps))) < 1e-12
    err = energy_error(lambda q, p: 0.5 * p @ p + GRAVITY * q[2], (qs, ps))
    assert float(err.max_error) < 1e-3  # bounded: O(h^2), no drift
    assert abs(float(err.drift)) < 1e-4
    # angular momentum about the vertical axis is a symmetry of the problem: kept too
    lz = qs[:, 0] * ps[:, 1] - qs[:, 1] * ps[:, 0]
    assert float(jnp.max(jnp.abs(lz - (Q0[0] * P0[1] - Q0[1] * P0[0])))) < 1e-11


def test_order_two_and_symmetric():
    solver = si.Rattle(_sphere)
    run = jax.jit(lambda dt, n: si.solve_fixed(PENDULUM, solver, (Q0, P0), dt=dt,
                                               num_steps=n).y1, static_argnums=1)  # fmt: skip
    reference = run(1 / 2560, 2560)
    order = convergence_order(lambda dt: run(dt, round(1 / dt)), [1 / 40, 1 / 80, 1 / 160],
                              reference)  # fmt: skip
    assert abs(order - 2) < 0.3, order
    y1 = solver.one_step(PENDULUM, 0.0, 0.05, (Q0, P0))
    back = solver.one_step(PENDULUM, 0.05, -0.05, y1)
    assert float(jnp.max(jnp.abs(back[0] - Q0))) < 1e-12
    assert float(jnp.max(jnp.abs(back[1] - P0))) < 1e-12


def test_chain_of_rigid_links_pytree_state():
    # Four links of unit length hanging from the origin, in the plane; q a dict of arrays.
    n = 4

    def links(q, args):
        x = jnp.concatenate([jnp.zeros((1, 2)), q["x"]])
        return jnp.sum((x[1:] - x[:-1]) ** 2, axis=-1) - 1.0

    angles = jnp.linspace(0.3, 1.2, n)
    x0 = jnp.cumsum(jnp.stack([jnp.sin(angles), -jnp.cos(angles)], -1), axis=0)
    terms = si.separable_terms(
        lambda p, a: 0.5 * jnp.sum(p["x"] ** 2), lambda q, a: GRAVITY * jnp.sum(q["x"][:, 1])
    )
    y0 = ({"x": x0}, {"x": jnp.zeros((n, 2))})
    out = si.solve_fixed(terms, si.Rattle(links), y0, dt=0.005, num_steps=20_000,
                         save_every=200)  # fmt: skip
    viol = jax.vmap(lambda q, p: jnp.stack(constraint_violation(lambda q: links(q, None), q, p)))(
        {"x": out.ys[0]["x"]}, {"x": out.ys[1]["x"]}
    )
    assert float(jnp.max(viol)) < 1e-12
    assert float(jnp.min(out.ys[0]["x"][:, -1, 1])) < -1.0  # it moved: not a trivial run


def test_jit_vmap_grad():
    solver = si.Rattle(_sphere)

    def height(v):
        p0 = jnp.array([0.0, v, 0.0])
        return si.solve_fixed(PENDULUM, solver, (Q0, p0), dt=0.01, num_steps=100).y1[0][2]

    g = jax.grad(height)(1.5)
    fd = (height(1.5 + 1e-6) - height(1.5 - 1e-6)) / 2e-6
    assert float(g) == pytest.approx(float(fd), rel=1e-5)
    batched = jax.vmap(height)(jnp.array([1.0, 1.5]))
    assert float(batched[1]) == pytest.approx(float(height(1.5)), rel=1e-12)


def _solve(solver, **kw):
    kw = dict(dict(dt=0.01, num_steps=2), **kw)
    return lambda y: si.solve_fixed(PENDULUM, solver, y, **kw).y1


def test_bad_input():
    # the initial-state check: a ValueError from an eager `init`, a run-time error under jit
    solver = si.Rattle(_sphere)
    runs = (_solve(solver), jax.jit(_solve(solver)))  # the compiled solve, eager or in a jit
    for y in ((2 * Q0, P0), (Q0, Q0)):  # off the sphere; a velocity not tangent to it
        assert_refused(lambda y: solver.init(PENDULUM, 0.0, 0.01, y, None), y,
                       match="`Rattle` needs `y0=.*on the constraint manifold")  # fmt: skip
        for run in runs:
            with pytest.raises(RuntimeError, match="off the constraint manifold"):
                jax.block_until_ready(run(y))
    # a stage that does not converge: refused at once eagerly, at run time under jit
    assert_refused(_solve(si.Rattle(_sphere, max_steps=1), dt=0.2, num_steps=3), (Q0, P0),
                   match="a step failed")  # fmt: skip
    # dependent constraints: the multiplier solves are singular, an error and never NaNs
    twice = si.Rattle(lambda q, a: jnp.concatenate([_sphere(q, a), 2 * _sphere(q, a)]))
    assert_refused(_solve(twice), (Q0, P0), match="a step failed")
    with pytest.raises(TypeError, match="constraint"):
        si.Rattle(jnp.ones(1))
    with pytest.raises(ValueError, match=r"`Rattle\(max_steps=0\)` needs a Python int >= 1"):
        si.Rattle(_sphere, max_steps=0)
    with pytest.raises(TypeError, match="root_finder"):
        si.Rattle(_sphere, root_finder=optx.FixedPointIteration(1e-10, 1e-10))
