"""Conformal-symplectic splittings: every explicit method lifted to the damped system keeps
its table, contracts the symplectic form by exactly e^{-gamma h}, reaches its declared
order, and refuses what it cannot do."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import structjax.integrators as si
from structjax.check import conformal_symplecticity_error, convergence_order

from ..helpers import METHODS, NEWTON, Y0, dopri8_reference, tree_max_abs_diff

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


@pytest.mark.parametrize("make", METHODS.values(), ids=METHODS.keys())
def test_declared_order(make):
    solver = si.conformal(make(), GAMMA)
    declared = solver.order(NEWTON)
    run = jax.jit(
        lambda dt, n: si.solve_fixed(NEWTON, solver, Y0, dt=dt, num_steps=n).y1,
        static_argnums=1,
    )
    dts = [T1 / n for n in _STEPS[declared]]
    measured = convergence_order(lambda dt: run(dt, round(T1 / dt)), dts, REFERENCE)
    if declared >= 10:
        assert measured > declared - 0.3, measured
    elif solver.tableau.rkn:
        # RKN tables: their extra order needs [B, [B, [B, A]]] = 0, which damping breaks;
        # declared is the guaranteed floor (2 for a symmetric word).
        assert measured > declared - 0.3, measured
    else:
        assert abs(measured - declared) < 0.3, measured


def test_rkn_tables_lose_their_extra_order():
    # The guard is real: BlanesMoan6 (an RKN table of order 6) is not order 6 once damped.
    solver = si.conformal(si.BlanesMoan6(), GAMMA)
    run = jax.jit(
        lambda dt, n: si.solve_fixed(NEWTON, solver, Y0, dt=dt, num_steps=n).y1,
        static_argnums=1,
    )
    measured = convergence_order(
        lambda dt: run(dt, round(T1 / dt)), [T1 / n for n in _STEPS[6]], REFERENCE
    )
    assert measured < 6 - 0.7, measured
    assert solver.order(NEWTON) == 2


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
    with pytest.raises(ValueError, match="`damping` must be >= 0"):
        si.conformal(si.VelocityVerlet(), -0.1)
    with pytest.raises(TypeError, match="needs a structjax splitting method|AbstractSplitting"):
        si.conformal(diffrax.Tsit5(), 0.1)
    with pytest.raises(TypeError, match="already conformal"):
        si.conformal(si.conformal(si.VelocityVerlet(), 0.1), 0.1)
    with pytest.raises(ValueError, match="refuses a conformal"):
        si.solve_fixed(NEWTON, si.conformal(si.VelocityVerlet(), 0.1), Y0, dt=0.1, num_steps=4,
                       adjoint="reversible")  # fmt: skip
