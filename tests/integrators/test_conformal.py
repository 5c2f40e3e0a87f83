"""Conformal-symplectic splittings: every explicit method lifted to the damped system keeps
its table, contracts the symplectic form by exactly e^{-gamma h}, reaches its declared
order (an RKN table: its general order, measured), and refuses what it cannot do, eagerly
and under `jax.jit`."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import structjax.integrators as si
from structjax.check import conformal_symplecticity_error, convergence_order

from ..helpers import (
    GENERAL,
    METHODS,
    NEWTON,
    Y0,
    assert_refused,
    dopri8_reference,
    tree_max_abs_diff,
)

GAMMA = 0.4
T1 = 2.0


def _damped_vf(terms, gamma):
    def vf(t, y, args):
        q, p = y
        dp = jax.tree_util.tree_map(lambda f, v: f - gamma * v, terms[1].vf(t, q, args), p)
        return terms[0].vf(t, p, args), dp

    return vf


def _reference(gamma):
    return dopri8_reference(_damped_vf(NEWTON, gamma), Y0, T1)


REFERENCE = _reference(GAMMA)
_STEPS = {1: [32, 64, 128], 2: [32, 64, 128], 3: [16, 32, 64], 4: [12, 24, 48],
          5: [8, 16, 32], 6: [6, 10, 16], 8: [5, 7, 10], 10: [4, 5, 6]}  # fmt: skip


@pytest.mark.parametrize("make", METHODS.values(), ids=METHODS.keys())
def test_contracts_the_symplectic_form_by_exp_minus_gamma_h(make):
    solver = si.conformal(make(), GAMMA)
    h = 0.1

    def step(q, p):
        return solver.one_step(NEWTON, 0.0, h, (q, p))

    err = conformal_symplecticity_error(step, *Y0, np.exp(-GAMMA * h))
    assert float(err) < 1e-12
    assert float(conformal_symplecticity_error(step, *Y0, 1.0)) > 1e-3  # it is not symplectic


def _finals(solver, ns):
    """The state at T1 for each step count in `ns`, in ONE compiled call: a batched loop of
    `one_step`s (its trip count batched too), the same map as `solve_fixed`'s steps."""

    def final(n):
        dt = T1 / n.astype(jnp.float64)
        step = lambda k, y: solver.one_step(NEWTON, k.astype(dt.dtype) * dt, dt, y)  # noqa: E731
        return jax.lax.fori_loop(0, n, step, Y0)

    ys = jax.jit(jax.vmap(final))(jnp.asarray(ns))
    return {n: jax.tree_util.tree_map(lambda y: y[i], ys) for i, n in enumerate(ns)}


@pytest.mark.parametrize("make", METHODS.values(), ids=METHODS.keys())
def test_declared_order(make):
    """Every conformal lift reaches its declared order, within 0.3 (for an RKN table that is
    its `general_order`, e.g. 3 for McAte4, 4 for BlanesMoan6: the extra RKN order needs
    [B, [B, [B, A]]] = 0, which the damping breaks)."""
    method = make()
    solver = si.conformal(method, GAMMA)
    declared = solver.order(NEWTON)
    assert declared == method.tableau.general_order
    assert not solver.tableau.rkn
    ns = _STEPS[declared]
    finals = _finals(solver, ns)
    dts = [T1 / n for n in ns]
    measured = convergence_order(lambda dt: finals[round(T1 / dt)], dts, REFERENCE)
    if declared >= 10:
        # as in test_order: only "at least 10" is measurable in float64 on this problem
        assert measured > declared - 0.3, measured
    else:
        assert abs(measured - declared) < 0.3, measured


def test_declared_orders_of_the_rkn_lifts():
    """The issue's cases: an RKN method's conformal lift declares its general order (which the
    test above measures), below the Hamiltonian method's RKN order."""
    expected = {si.McAte4: 3, si.CalvoSanz4: 3, si.McAte5: 3, si.BlanesMoan6: 4}
    for make, order in expected.items():
        lift = si.conformal(make(), GAMMA)
        assert lift.order(NEWTON) == order < make().order(NEWTON)
        assert lift.tableau.coeffs == make.tableau.coeffs  # the same table, damped kicks
    # the lift of a general table keeps its order and its table
    assert si.conformal(si.BlanesMoan6General(), GAMMA).tableau == si.BlanesMoan6General.tableau


def test_lift_of_an_rkn_table_accepts_a_general_kinetic_energy():
    """The lift declares the general order, so it needs no RKN guard: it runs with a
    non-quadratic T where `McAte4` itself is refused."""
    with pytest.raises(ValueError, match="Runge–Kutta–Nyström"):
        si.solve_fixed(GENERAL, si.McAte4(), Y0, dt=0.1, num_steps=2)
    out = si.solve_fixed(GENERAL, si.conformal(si.McAte4(), GAMMA), Y0, dt=0.1, num_steps=2)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves(out.y1))


def test_zero_damping_is_the_hamiltonian_method():
    for make in (si.VelocityVerlet, si.BlanesMoan6General, si.KahanLi8):
        a = si.solve_fixed(NEWTON, si.conformal(make(), 0.0), Y0, dt=0.05, num_steps=40).y1
        b = si.solve_fixed(NEWTON, make(), Y0, dt=0.05, num_steps=40).y1
        assert tree_max_abs_diff(a, b) < 1e-13


def test_damped_harmonic_oscillator_exact_contraction_and_decay():
    # q'' + gamma q' + q = 0 as (q, p): the area of phase space shrinks by e^{-gamma t}, and
    # an order-4 method tracks the exact solution.
    terms = si.separable_terms(lambda p, a: 0.5 * p**2, lambda q, a: 0.5 * q**2)
    solver = si.conformal(si.BlanesMoan4General(), 0.2)
    out = si.solve_fixed(terms, solver, (jnp.array(1.0), jnp.array(0.0)), dt=0.01,
                         num_steps=1000)  # fmt: skip
    w = np.sqrt(1 - 0.01)
    exact_q = np.exp(-0.1 * 10.0) * (np.cos(w * 10.0) + 0.1 / w * np.sin(w * 10.0))
    assert abs(float(out.y1[0]) - exact_q) < 1e-8


def test_solve_fixed_and_diffeqsolve_agree():
    solver = si.conformal(si.McAte4(), GAMMA)
    a = si.solve_fixed(NEWTON, solver, Y0, dt=0.05, num_steps=40).y1
    sol = diffrax.diffeqsolve(NEWTON, solver, 0.0, 2.0, 0.05, Y0)
    b = jax.tree_util.tree_map(lambda y: y[-1], sol.ys)
    assert tree_max_abs_diff(a, b) < 1e-12


def test_gradient_through_the_damping_no_retrace():
    traces = []

    @jax.jit
    def final_energy(gamma):
        traces.append(1)
        q, p = si.solve_fixed(NEWTON, si.conformal(si.KahanLi8(), gamma), Y0, dt=0.05,
                              num_steps=40).y1  # fmt: skip
        return sum(jnp.sum(x**2) for x in jax.tree_util.tree_leaves((q, p)))

    g = jax.grad(final_energy)(0.3)
    fd = (final_energy(0.3 + 1e-6) - final_energy(0.3 - 1e-6)) / 2e-6
    assert float(g) == pytest.approx(float(fd), rel=1e-6)
    n = len(traces)
    final_energy(0.5)
    final_energy(0.7)
    assert len(traces) == n  # a new damping is a new value, not a new trace
    batched = jax.vmap(final_energy)(jnp.array([0.1, 0.2]))
    assert float(batched[1]) == pytest.approx(float(final_energy(0.2)), rel=1e-12)


def test_bad_input():
    with pytest.raises(TypeError, match="needs a structjax splitting method|AbstractSplitting"):
        si.conformal(diffrax.Tsit5(), 0.1)
    with pytest.raises(TypeError, match="already conformal"):
        si.conformal(si.conformal(si.VelocityVerlet(), 0.1), 0.1)
    with pytest.raises(ValueError, match="refuses a conformal"):
        si.solve_fixed(NEWTON, si.conformal(si.VelocityVerlet(), 0.1), Y0, dt=0.1, num_steps=4,
                       adjoint="reversible")  # fmt: skip


def _damped_final(damping):
    solver = si.conformal(si.VelocityVerlet(), damping)
    return si.solve_fixed(NEWTON, solver, Y0, dt=0.1, num_steps=3).y1


def _damped_diffeqsolve(damping):
    solver = si.conformal(si.KahanLi8(), damping)
    return diffrax.diffeqsolve(NEWTON, solver, 0.0, 0.3, 0.1, Y0).ys


@pytest.mark.parametrize("damping", [-0.1, float("nan"), -float("inf")])
def test_negative_or_nan_damping_refused_eagerly_and_under_jit(damping):
    """A traced damping (inside `jax.jit`, under `vmap`) is checked at run time too."""
    match = r"`conformal\(method, damping\)` needs damping >= 0"
    assert_refused(_damped_final, damping, match=match)
    assert_refused(_damped_diffeqsolve, damping, match=match)
    with pytest.raises(jax.errors.JaxRuntimeError, match=match):  # one bad member of a batch
        jax.block_until_ready(jax.jit(jax.vmap(_damped_final))(jnp.array([0.1, damping])))


def test_damping_type_and_shape_refused():
    assert_refused(_damped_final, jnp.array([0.1, 0.2]), match="scalar damping")
    assert_refused(_damped_final, jax.lax.complex(0.1, 0.0), match="real number as damping")
    with pytest.raises(TypeError, match="real number as damping"):
        si.conformal(si.VelocityVerlet(), True)
    # an integer damping is a friction like any other
    a = si.solve_fixed(NEWTON, si.conformal(si.VelocityVerlet(), 1), Y0, dt=0.1, num_steps=3)
    b = si.solve_fixed(NEWTON, si.conformal(si.VelocityVerlet(), 1.0), Y0, dt=0.1, num_steps=3)
    assert tree_max_abs_diff(a.y1, b.y1) == 0.0


def test_valid_traced_damping_runs():
    assert tree_max_abs_diff(jax.jit(_damped_final)(0.3), _damped_final(0.3)) < 1e-14


def test_float32_state_with_a_float64_damping():
    """The damping takes the dtype of the step (strict promotion): float32 stays float32."""
    y32 = jax.tree_util.tree_map(lambda x: x.astype(jnp.float32), Y0)
    solver = si.conformal(si.McAte42(), jnp.asarray(0.2, jnp.float64))
    out = si.solve_fixed(NEWTON, solver, y32, dt=0.1, num_steps=5).y1
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(out))
    ref = si.solve_fixed(NEWTON, solver, Y0, dt=0.1, num_steps=5).y1
    assert tree_max_abs_diff(out, ref) < 1e-5
