"""Symplecticity, time-reversibility and long-time energy behaviour of every method."""

import diffrax
import jax
import jax.numpy as jnp
import pytest

import structjax.integrators as si
from structjax.check import energy_error, reversibility_error, symplecticity_error

from ..helpers import METHODS, NEWTON, Y0, hamiltonian

PARAMS = dict(argvalues=METHODS.values(), ids=METHODS.keys())


@pytest.mark.parametrize("make", **PARAMS)
def test_symplectic(make):
    solver = make()

    def step(q, p):
        return solver.one_step(NEWTON, 0.0, 0.3, (q, p))

    err = symplecticity_error(step, *Y0)
    assert err < 1e-12, err


def test_symplecticity_error_sees_a_non_symplectic_step():
    """The certificate is not vacuous: Heun's method (diffrax) on the same problem fails it."""

    def step(q, p):
        term = diffrax.ODETerm(lambda t, y, a: (NEWTON[0].vf(t, y[1], a), NEWTON[1].vf(t, y[0], a)))
        solver = diffrax.Heun()
        y1, *_ = solver.step(
            term, 0.0, 0.3, (q, p), None, solver.init(term, 0.0, 0.3, (q, p), None), False
        )
        return y1

    assert symplecticity_error(step, *Y0) > 1e-4


@pytest.mark.parametrize("make", **PARAMS)
def test_time_reversible_iff_symmetric(make):
    solver = make()

    def step(q, p, h):
        return solver.one_step(NEWTON, 0.0, h, (q, p))

    err = reversibility_error(step, *Y0, 0.3)
    if solver.tableau.symmetric:
        assert err < 1e-12, err
    else:
        assert err > 1e-8, err


@pytest.mark.parametrize("make", **PARAMS)
def test_energy_bounded_over_1e5_steps(make):
    """No secular drift over 10^5 steps, where a non-symplectic method at the same step
    drifts (HLW GNI Thm IX.8.1)."""
    solver = make()
    dt, n = 0.05, 100_000
    sol = si.solve_fixed(NEWTON, solver, Y0, dt=dt, num_steps=n, save_every=100)
    err = energy_error(hamiltonian, sol.ys)
    # The bound is O(h^p) with a method-dependent constant (symplectic Euler, order 1, has
    # the largest: 2e-2), and no method drifts: the trend over the run is a small fraction
    # of the oscillation band, up to the rounding random walk of 10^5 steps (1e-11).
    assert err.max_error < 5e-2, err
    assert abs(err.drift) < 0.25 * err.max_error + 1e-11, err


def test_non_symplectic_method_drifts_at_same_step():
    """The reference behaviour the test above rules out: Heun (diffrax) drifts."""
    term = diffrax.ODETerm(lambda t, y, a: (NEWTON[0].vf(t, y[1], a), NEWTON[1].vf(t, y[0], a)))
    sol = si.solve_fixed(term, diffrax.Heun(), Y0, dt=0.05, num_steps=100_000, save_every=100)
    err = energy_error(hamiltonian, sol.ys)
    assert abs(err.drift) > 0.5 * err.max_error, err
    verlet = si.solve_fixed(
        NEWTON, si.VelocityVerlet(), Y0, dt=0.05, num_steps=100_000, save_every=100
    )
    assert err.max_error > 10 * energy_error(hamiltonian, verlet.ys).max_error


@pytest.mark.parametrize("make", **PARAMS)
def test_force_evaluations_per_step(make):
    """FSAL: a step evaluates the force once per kick, less the one carried from the last
    step; counted at trace time on the unrolled stage loop."""
    counts = []

    def force(q, args):
        counts.append(1)  # runs at trace time, once per evaluation in the step's program
        return -jnp.sin(q)

    terms = si.split_force_terms(force)
    tableau = make().tableau
    solver = si.ExplicitSplitting(tableau, stage_loop="unroll")
    y = (jnp.array([1.0]), jnp.array([0.0]))
    force0 = jnp.zeros(1) if tableau.fsal else None
    jax.make_jaxpr(lambda y: solver.one_step(terms, 0.0, 0.1, y, force0=force0))(y)
    kicks = sum(kind == "kick" for kind, _ in tableau.ops)
    assert len(counts) == tableau.force_evaluations == kicks - tableau.fsal
