"""Compositions raise the order of symmetric methods as the theory says."""

import jax
import pytest

import structjax.integrators as si
from structjax.check import convergence_order

from ..helpers import NEWTON, Y0
from .test_order import REFERENCE, T1


@pytest.mark.parametrize(
    "make, order",
    [
        (lambda: si.triple_jump(si.VerletLeapfrog()), 4),
        (lambda: si.suzuki_fractal(si.VelocityVerlet()), 4),
        (lambda: si.triple_jump(si.triple_jump(si.VelocityVerlet())), 6),
        (lambda: si.triple_jump(si.McAte42()), 6),
        (lambda: si.Composition(si.VelocityVerlet(), (0.3, 0.4, 0.3)), 2),
    ],
)
def test_inferred_order_is_measured(make, order):
    solver = make()
    assert solver.tableau.order == order
    run = jax.jit(
        lambda dt, n: si.solve_fixed(NEWTON, solver, Y0, dt=dt, num_steps=n).y1, static_argnums=1
    )
    ns = {2: [32, 64, 128], 4: [12, 24, 48], 6: [6, 10, 16]}[order]
    measured = convergence_order(
        lambda dt: run(dt, round(T1 / dt)), [T1 / n for n in ns], REFERENCE["newton"]
    )
    assert abs(measured - order) < 0.3, measured


def test_composition_is_one_merged_word():
    """Adjacent half-kicks of neighbouring Verlet steps merge: FSAL keeps one force per stage."""
    tj = si.triple_jump(si.VelocityVerlet())
    assert tj.tableau.force_evaluations == 3
    assert tj.tableau.symmetric
    assert si.KahanLi8.tableau.force_evaluations == 17
    assert si.SofSpa10.tableau.force_evaluations == 35


def test_declared_order_is_checked_against_power_sums():
    g = si.KahanLi6.tableau  # built with these weights: declared order 6 passes the check
    assert g.order == 6
    w = (
        0.39216144400731413927925056,
        0.33259913678935943859974864,
        -0.70624617255763935980996482,
        0.08221359629355080023149045,
        0.79854399093482996339895035,
    )
    gammas = w + w[-2::-1]
    comp = si.Composition(si.VelocityVerlet(), gammas, order=6)
    assert comp.tableau.coeffs == pytest.approx(si.KahanLi6.tableau.coeffs, abs=1e-15)
