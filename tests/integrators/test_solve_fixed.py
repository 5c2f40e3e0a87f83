"""The lean fixed-step driver and its reversible adjoint."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import structjax.integrators as si

from ..helpers import NEWTON, Y0, tree_allclose


def test_generic_diffrax_solver_matches_diffeqsolve():
    """Any diffrax solver runs in `solve_fixed` (here Tsit5 on the joint system)."""
    term = diffrax.ODETerm(lambda t, y, a: (NEWTON[0].vf(t, y[1], a), NEWTON[1].vf(t, y[0], a)))
    sol = diffrax.diffeqsolve(term, diffrax.Tsit5(), 0.0, 1.0, 0.05, Y0)
    fixed = si.solve_fixed(term, diffrax.Tsit5(), Y0, dt=0.05, num_steps=20)
    assert tree_allclose(jax.tree_util.tree_map(lambda y: y[-1], sol.ys), fixed.y1)


def test_save_every_and_times():
    sol = si.solve_fixed(
        NEWTON, si.VelocityVerlet(), Y0, t0=1.0, dt=0.1, num_steps=30, save_every=10
    )
    assert np.allclose(sol.ts, [1.0, 2.0, 3.0, 4.0])
    assert float(sol.t1) == pytest.approx(4.0)
    assert tree_allclose(jax.tree_util.tree_map(lambda y: y[0], sol.ys), Y0)
    assert tree_allclose(jax.tree_util.tree_map(lambda y: y[-1], sol.ys), sol.y1)


class MLPPotential(eqx.Module):
    """A learned potential: the reversible adjoint must differentiate its weights too."""

    mlp: eqx.nn.MLP

    def __init__(self, key):
        self.mlp = eqx.nn.MLP(2, "scalar", 16, 2, activation=jnp.tanh, key=key)

    def __call__(self, q, args):
        return self.mlp(q) + 0.5 * jnp.sum(q**2)


def _loss(pot, y0, scale, dt, adjoint, save_every):
    terms = si.separable_terms(lambda p, a: 0.5 * a * jnp.sum(p**2), pot)
    sol = si.solve_fixed(
        terms,
        si.KahanLi6(),
        y0,
        dt=dt,
        num_steps=200,
        args=scale,
        adjoint=adjoint,
        save_every=save_every,
    )
    out = jnp.sum(sol.y1[0] ** 2) + jnp.sum(jnp.sin(sol.y1[1]))
    if save_every is not None:
        out = out + jnp.sum(sol.ys[0] ** 3)
    return out


@pytest.mark.parametrize("save_every", [None, 20])
def test_reversible_adjoint_matches_autodiff(getkey, save_every):
    pot = MLPPotential(getkey())
    y0 = (jnp.array([0.3, -0.4]), jnp.array([0.2, 0.1]))
    dt = jnp.array(0.02)

    def grads(adjoint):
        f = eqx.filter_grad(lambda x: _loss(x[0], x[1], x[2], x[3], adjoint, save_every))
        return f((pot, y0, jnp.array(1.1), dt))

    g_auto, g_rev = grads("autodiff"), grads("reversible")
    leaves_a = jax.tree_util.tree_leaves(eqx.filter(g_auto, eqx.is_inexact_array))
    leaves_r = jax.tree_util.tree_leaves(eqx.filter(g_rev, eqx.is_inexact_array))
    assert len(leaves_a) == len(leaves_r) > 4
    for a, r in zip(leaves_a, leaves_r):
        scale = max(float(jnp.max(jnp.abs(a))), 1e-3)
        assert float(jnp.max(jnp.abs(a - r))) < 1e-8 * scale


def _temp_bytes(adjoint, num_steps):
    terms = si.separable_terms(lambda p, a: 0.5 * jnp.sum(p**2), lambda q, a: jnp.sum(jnp.cosh(q)))
    y0 = (jnp.ones(256), jnp.zeros(256))

    def loss(y0):
        sol = si.solve_fixed(
            terms, si.VelocityVerlet(), y0, dt=0.01, num_steps=num_steps, adjoint=adjoint
        )
        return jnp.sum(sol.y1[0])

    compiled = jax.jit(jax.grad(loss)).lower(y0).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def test_reversible_adjoint_memory_is_flat_in_steps():
    rev = [_temp_bytes("reversible", n) for n in (100, 1000)]
    auto = [_temp_bytes("autodiff", n) for n in (100, 1000)]
    assert rev[1] <= 1.1 * rev[0] + 4096, rev
    assert auto[1] > 5 * auto[0], auto  # what the reversible adjoint avoids


def test_no_retrace_and_jit_vmap():
    calls = []

    @eqx.debug.assert_max_traces(max_traces=1)
    def run(y0, dt):
        calls.append(1)
        return si.solve_fixed(NEWTON, si.SofSpa10(), y0, dt=dt, num_steps=10).y1

    jrun = jax.jit(run)
    jrun(Y0, 0.1)
    jrun(jax.tree_util.tree_map(lambda x: 0.5 * x, Y0), 0.2)
    assert len(calls) == 1
    # vmap over a batch of initial conditions equals the loop
    batch = jax.tree_util.tree_map(lambda x: jnp.stack([x, 0.5 * x, -x]), Y0)
    b = jax.vmap(lambda y: si.solve_fixed(NEWTON, si.SofSpa10(), y, dt=0.1, num_steps=10).y1)(batch)
    for i in range(3):
        yi = jax.tree_util.tree_map(lambda x: x[i], batch)
        assert tree_allclose(
            jax.tree_util.tree_map(lambda x: x[i], b),
            si.solve_fixed(NEWTON, si.SofSpa10(), yi, dt=0.1, num_steps=10).y1,
            rtol=1e-13,
            atol=1e-13,
        )


def test_repeated_unjitted_calls_compile_once():
    """`solve_fixed` is jitted inside: new values of y0 and dt reuse the compiled loop."""
    solver = si.McAte5()
    si.solve_fixed(NEWTON, solver, Y0, dt=0.1, num_steps=7)
    size = si._solve_fixed._solve._cached._cache_size()
    si.solve_fixed(
        NEWTON, solver, jax.tree_util.tree_map(lambda x: 2 * x, Y0), dt=0.05, num_steps=7
    )
    assert si._solve_fixed._solve._cached._cache_size() == size


def test_float32():
    y32 = jax.tree_util.tree_map(lambda x: x.astype(jnp.float32), Y0)
    sol = si.solve_fixed(
        NEWTON, si.BlanesMoan6(), y32, t0=jnp.float32(0), dt=jnp.float32(0.1), num_steps=20
    )
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(sol.y1))
    ref = si.solve_fixed(NEWTON, si.BlanesMoan6(), Y0, dt=0.1, num_steps=20)
    for a, b in zip(jax.tree_util.tree_leaves(sol.y1), jax.tree_util.tree_leaves(ref.y1)):
        assert np.allclose(np.asarray(a, np.float64), b, atol=1e-5)
    # a weakly typed dt traced by jit (`jnp.asarray(0.1)`) takes the state's precision too
    run = jax.jit(lambda dt: si.solve_fixed(NEWTON, si.BlanesMoan6(), y32, dt=dt, num_steps=20))
    traced = run(jnp.asarray(0.1))
    assert traced.t1.dtype == jnp.float32
    assert tree_allclose(traced.y1, sol.y1, rtol=1e-6, atol=1e-6)


def test_random_initial_conditions_energy(getkey):
    """Compositions keep energy on random states: a smoke check over keys."""
    for _ in range(3):
        q = jr.normal(getkey(), (2,))
        y0 = ({"a": q, "b": q[:1]}, {"a": -q, "b": q[1:]})
        sol = si.solve_fixed(NEWTON, si.KahanLi8(), y0, dt=0.05, num_steps=200)
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves(sol.y1))


FORCED = (
    diffrax.ODETerm(lambda t, p, args: p),
    diffrax.ODETerm(lambda t, q, args: -(q**3) + args * jnp.cos(1.3 * t)),
)


@pytest.mark.parametrize("cls", [si.VelocityVerlet, si.McAte42, si.KahanLi8, si.SymplecticEuler])
@pytest.mark.parametrize("save_every", [None, 1, 5])
def test_time_dependent_force_matches_diffeqsolve(cls, save_every):
    """Non-autonomous terms: the merged-kick loop keeps every kick at its own time."""
    y0 = (jnp.array([0.3, 1.0]), jnp.array([0.0, -0.5]))
    fixed = si.solve_fixed(
        FORCED, cls(), y0, t0=0.5, dt=0.05, num_steps=40, args=0.7, save_every=save_every
    )
    sol = diffrax.diffeqsolve(
        FORCED,
        cls(),
        0.5,
        2.5,
        0.05,
        y0,
        args=0.7,
        saveat=diffrax.SaveAt(ts=0.5 + 0.05 * jnp.arange(0.0, 41.0, save_every or 40)),
    )
    ys = fixed.ys if save_every else jax.tree_util.tree_map(lambda y: y[None], fixed.y1)
    ref = sol.ys if save_every else jax.tree_util.tree_map(lambda y: y[-1:], sol.ys)
    assert tree_allclose(ys, ref, rtol=1e-12, atol=1e-12)


def test_time_dependent_force_order():
    """Kicks at the right times: the forced problem keeps the method's order."""
    y0 = (jnp.array([0.3]), jnp.array([0.1]))
    ref = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, a: (FORCED[0].vf(t, y[1], a), FORCED[1].vf(t, y[0], a))),
        diffrax.Dopri8(),
        0.0,
        2.0,
        0.01,
        y0,
        args=0.7,
        stepsize_controller=diffrax.PIDController(rtol=1e-14, atol=1e-14),
    ).ys
    ref = jax.tree_util.tree_map(lambda y: y[-1], ref)
    from structjax.check import convergence_order

    for cls, ns in [(si.McAte42, [10, 20, 40]), (si.BlanesMoan6General, [6, 10, 16])]:
        order = convergence_order(
            lambda dt: (
                si.solve_fixed(FORCED, cls(), y0, dt=dt, num_steps=round(2 / dt), args=0.7).y1
            ),
            [2 / n for n in ns],
            ref,
        )
        assert abs(order - cls.tableau.order) < 0.3, (cls, order)


def test_reversible_adjoint_with_time_dependent_force_and_dt():
    y0 = (jnp.array([0.3, 1.0]), jnp.array([0.0, -0.5]))

    def loss(x, adjoint):
        a, dt = x
        sol = si.solve_fixed(
            FORCED, si.Yoshida6(), y0, t0=0.2, dt=dt, num_steps=100, args=a, adjoint=adjoint
        )
        return jnp.sum(sol.y1[0] ** 2 + sol.y1[1])

    x = (jnp.array(0.7), jnp.array(0.03))
    ga, gr = jax.grad(loss)(x, "autodiff"), jax.grad(loss)(x, "reversible")
    for a, r in zip(ga, gr):
        assert abs(float(a - r)) < 1e-8 * max(1.0, abs(float(a)))
