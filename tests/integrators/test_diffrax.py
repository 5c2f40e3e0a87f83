"""The solvers inside `diffrax.diffeqsolve`: step-size controllers, SaveAt, dense output,
jit/vmap/grad, pytrees, float32, and no retracing."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import structjax.integrators as si

from ..helpers import METHODS, NEWTON, Y0, tree_allclose, tree_max_abs_diff

PARAMS = dict(argvalues=METHODS.values(), ids=METHODS.keys())


def _solve(solver, **kw):
    kw.setdefault("dt0", 0.1)
    return diffrax.diffeqsolve(NEWTON, solver, 0.0, 2.0, y0=Y0, **kw)


@pytest.mark.parametrize("make", **PARAMS)
def test_diffeqsolve_matches_solve_fixed(make):
    """diffrax's loop and the lean driver take the same steps to rounding."""
    solver = make()
    sol = _solve(solver)
    fixed = si.solve_fixed(NEWTON, solver, Y0, dt=0.1, num_steps=20)
    last = jax.tree_util.tree_map(lambda y: y[-1], sol.ys)
    assert tree_allclose(last, fixed.y1, rtol=1e-13, atol=1e-13)


def test_step_to_matches_constant_step():
    ts = jnp.linspace(0.0, 2.0, 21)
    a = _solve(si.KahanLi6(), dt0=None, stepsize_controller=diffrax.StepTo(ts))
    b = _solve(si.KahanLi6())
    assert tree_allclose(a.ys, b.ys, rtol=1e-13, atol=1e-13)


def test_saveat_variants():
    solver = si.McAte42()
    ts = jnp.linspace(0.0, 2.0, 11)
    every = _solve(solver, saveat=diffrax.SaveAt(steps=True))
    assert every.ys[0]["a"].shape == (4096, 2)  # diffrax pads to max_steps
    assert int(every.stats["num_steps"]) == 20
    ends = _solve(solver, saveat=diffrax.SaveAt(t0=True, t1=True))
    assert tree_allclose(jax.tree_util.tree_map(lambda y: y[0], ends.ys), Y0)
    at = _solve(solver, saveat=diffrax.SaveAt(ts=ts))
    # ts on step boundaries: the saved states are the steps themselves.
    fixed = si.solve_fixed(NEWTON, solver, Y0, dt=0.1, num_steps=20, save_every=2)
    assert tree_allclose(at.ys, fixed.ys, rtol=1e-12, atol=1e-12)


def test_dense_output_is_third_order_hermite():
    """Between steps the cubic Hermite interpolant: error O(h^4) for an accurate method."""
    ref = _solve(si.KahanLi8(), dt0=0.01, saveat=diffrax.SaveAt(ts=jnp.array([1.05])))
    errs = []
    hs = [0.1, 0.05, 0.025]
    for h in hs:
        sol = _solve(si.KahanLi8(), dt0=h, saveat=diffrax.SaveAt(dense=True))
        y = sol.evaluate(1.0 + h / 2)
        r = _solve(si.KahanLi8(), dt0=0.001, saveat=diffrax.SaveAt(ts=jnp.array([1.0 + h / 2])))
        errs.append(tree_max_abs_diff(y, jax.tree_util.tree_map(lambda x: x[0], r.ys)))
    del ref
    slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    assert 3.7 < slope < 4.5, (slope, errs)


# The dense output's slopes at the steps (forward and reverse time, complex states, pytree
# controls) are checked for every solver in test_diffrax_conformance.py.


def test_jit_vmap_over_initial_conditions_and_parameters():
    terms = si.separable_terms(
        lambda p, a: 0.5 * jnp.sum(p**2), lambda q, a: -a * jnp.sum(jnp.cos(q))
    )
    solver = si.BlanesMoan4()

    def final(q0, g):
        sol = diffrax.diffeqsolve(terms, solver, 0.0, 1.0, 0.05, (q0, jnp.zeros_like(q0)), args=g)
        return sol.ys[0][-1]

    q0s = jnp.linspace(0.1, 1.0, 5)[:, None] * jnp.ones((5, 3))
    gs = jnp.linspace(0.5, 2.0, 5)
    batched = jax.jit(jax.vmap(final))(q0s, gs)
    looped = jnp.stack([final(q, g) for q, g in zip(q0s, gs)])
    assert np.allclose(batched, looped, rtol=1e-13, atol=1e-13)


def test_grad_through_diffeqsolve_matches_finite_differences():
    terms = si.separable_terms(
        lambda p, a: 0.5 * jnp.sum(p**2), lambda q, a: -a * jnp.sum(jnp.cos(q))
    )

    def loss(g):
        y0 = (jnp.array([0.4, 0.9]), jnp.array([0.0, 0.1]))
        sol = diffrax.diffeqsolve(terms, si.Yoshida6(), 0.0, 1.0, 0.05, y0, args=g)
        return jnp.sum(sol.ys[0][-1] ** 2)

    g = jax.grad(loss)(1.3)
    eps = 1e-6
    fd = (loss(1.3 + eps) - loss(1.3 - eps)) / (2 * eps)
    assert abs(g - fd) < 1e-8 * max(1.0, abs(fd))


def test_no_retrace_on_second_call():
    @eqx.debug.assert_max_traces(max_traces=1)
    def run(y0, dt):
        return diffrax.diffeqsolve(NEWTON, si.KahanLi8(), 0.0, 1.0, dt, y0).ys

    run = jax.jit(run)
    run(Y0, 0.1)
    run(jax.tree_util.tree_map(lambda x: 2 * x, Y0), 0.05)


def test_float32_stays_float32():
    y32 = jax.tree_util.tree_map(lambda x: x.astype(jnp.float32), Y0)
    t = jnp.float32
    sol = diffrax.diffeqsolve(NEWTON, si.McAte42(), t(0.0), t(2.0), t(0.1), y32)
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(sol.ys))
    ref = _solve(si.McAte42())
    assert tree_max_abs_diff(sol.ys, ref.ys) < 1e-5


def test_adaptive_controller_is_refused():
    with pytest.raises(Exception, match="error estimates"):
        _solve(si.VelocityVerlet(), stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-6))
