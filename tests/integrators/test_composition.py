"""Compositions raise the order of symmetric methods as the theory says."""

import diffrax
import jax
import numpy as np
import pytest

import structjax.integrators as si
from structjax.check import convergence_order

from ..helpers import NEWTON, Y0, assert_refused
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


# --- refusals, eagerly and under jit ---------------------------------------------------------


def _step_with(make):
    """A function of one number that builds a method from it and takes one step."""

    def run(c):
        solver = make(c)
        return solver.one_step(NEWTON, 0.0, 0.1, Y0)

    return run


def test_weights_and_coefficients_refused_eagerly_and_under_jit():
    """Weights and coefficients are static (they fix the compiled step): eagerly a wrong one
    is refused by value, under `jit` a traced one by kind, both naming the argument."""
    weights = _step_with(lambda g: si.Composition(si.VelocityVerlet(), (g, g, g)))
    assert_refused(weights, 0.5, match="gammas")
    coeffs = _step_with(
        lambda c: si.ExplicitSplitting(si.SplittingTableau("kick", (c, 1.0, 0.5), 2))
    )
    assert_refused(coeffs, 0.7, match="coeffs")
    ops = _step_with(
        lambda c: si.ExplicitSplitting(
            si.SplittingTableau.from_ops([("kick", c), ("drift", 1.0), ("kick", 0.5)], order=2)
        )
    )
    assert_refused(ops, 0.7, match="ops|coeffs")
    # a valid weight works eagerly, and is refused by kind (not miscomputed) when traced
    a = weights(1 / 3)
    b = si.Composition(si.VelocityVerlet(), (1 / 3,) * 3).one_step(NEWTON, 0.0, 0.1, Y0)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(lambda x, y: bool((x == y).all()), a, b))
    # (the tests run jaxtyping's checks, whose TypeError names the argument first)
    with pytest.raises(TypeError, match="plain numbers|'gammas'"):
        jax.jit(weights)(1 / 3)
    with pytest.raises(TypeError, match="plain numbers|'gammas'"):
        jax.jit(lambda g: si.triple_jump(si.VelocityVerlet()).tableau.compose((g, 1 - g), order=2))(
            0.5
        )


def test_bad_tables_refused():
    # (jaxtyping's TypeError, in these tests, names the argument too)
    with pytest.raises(TypeError, match="real numbers|'coeffs'"):
        si.SplittingTableau("kick", (0.5 + 0j, 1.0, 0.5), order=2)
    with pytest.raises(TypeError, match="real numbers|'coeffs'"):
        si.SplittingTableau("kick", (True, 1.0, 0.0), order=1)
    with pytest.raises(ValueError, match="sum to 1"):
        si.SplittingTableau("kick", (float("nan"), 1.0, 0.5), order=2)
    with pytest.raises((ValueError, TypeError), match="integer order|'order'"):
        si.SplittingTableau("kick", (0.5, 1.0, 0.5), order=2.5)
    with pytest.raises(ValueError, match="general_order"):
        si.SplittingTableau("kick", (0.5, 1.0, 0.5), order=2, rkn=True, general_order=3)
    with pytest.raises(ValueError, match="one order"):
        si.SplittingTableau("kick", (0.5, 1.0, 0.5), order=2, general_order=1)
    with pytest.raises((ValueError, TypeError), match="'drift' or 'kick'|'ops'"):
        si.SplittingTableau.from_ops([("push", 1.0), ("drift", 1.0)], order=1)
    with pytest.raises((ValueError, TypeError), match="integer order|'order'"):
        si.Composition(si.VelocityVerlet(), (1.0,), order=2.0)
    for compose in (si.triple_jump, si.suzuki_fractal):
        with pytest.raises(TypeError, match="splitting method as `base`|'base'"):
            compose(diffrax.Tsit5())
    # coefficients are normalised to a hashable tuple of floats (the table is a static field)
    vv = si.VelocityVerlet.tableau
    tab = si.SplittingTableau("kick", (np.float64(0.5), 1.0, 0.5), order=2, source=vv.source)
    assert all(type(c) is float for c in tab.coeffs)
    assert tab == vv and hash(tab) == hash(vv)


def test_general_order_defaults_and_compositions():
    """An RKN table without a measured `general_order` gets the floor every consistent word
    has (2 for a palindrome); compositions of an RKN base keep the base's as their floor."""
    tab = si.BlanesMoan6.tableau
    floor = si.SplittingTableau(tab.first, tab.coeffs, 6, rkn=True)
    assert floor.general_order == 2
    assert si.SplittingTableau(*si.McAte4.tableau.__dict__.values()).general_order == 3
    assert si.Composition(si.BlanesMoan6(), (1.0,)).tableau.general_order == 4
    assert si.McAte4.tableau.adjoint().general_order == 3
