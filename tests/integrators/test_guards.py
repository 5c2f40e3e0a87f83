"""Guards of the fixed-step driver: a failed step anywhere in the run is an error (the
success flags are reduced over the loop and checked once), `checks=False` changes nothing
but the checks, and repeated eager calls with the same shapes compile nothing new.

The cost of the guards (guarded against `checks=False`, interleaved, best of 25) was measured
on 2 CPU cores and is reported in the pull request: it is not a test assertion, timings
being too noisy on shared machines."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import structjax.integrators as si

from ..helpers import NEWTON, Y0, assert_refused, compilations


def _stiff_window(t, y, args):
    # y' = -k(t) y with k = 41 for t in (0.2, 0.3) only: the fixed-point stage iteration of
    # the midpoint rule (contraction h k / 2 = 2.05 there) fails at step 3 alone, and the
    # steps after it converge again.
    k = jnp.where((t > 0.2) & (t < 0.3), 41.0, 1.0)
    return -k * y


def test_a_failure_in_any_one_step_is_caught():
    solver = si.ImplicitMidpoint(max_steps=30)
    term = diffrax.ODETerm(_stiff_window)

    def solve(y, t0):
        return si.solve_fixed(term, solver, y, t0=t0, dt=0.1, num_steps=10, save_every=2).ys

    y0 = jnp.ones(2)
    assert_refused(solve, y0, 0.0, match="a step failed")
    ys = solve(y0, 1.0)  # the same run away from the window succeeds, finite
    assert np.all(np.isfinite(np.asarray(ys)))
    # checks=False returns the (wrong) trajectory: that is the opt-out
    bad = si.solve_fixed(term, solver, y0, dt=0.1, num_steps=10, checks=False).y1
    assert bad.shape == (2,)


def _hat(w):
    return jnp.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])


def _spin(t, y, args):
    return _hat(jnp.array([0.1, 0.2, 0.3]) * (1 + t))


def _pendulum_vf(t, y, args):
    q, p = y
    return p, -jnp.sin(q)


def _sphere(q, args):
    return jnp.array([q @ q - 1.0])


_PENDULUM = si.separable_terms(lambda p, a: 0.5 * p @ p, lambda q, a: 9.81 * q[2])
_Q0 = jnp.array([np.sin(1.0), 0.0, -np.cos(1.0)])
_P0 = jnp.array([0.0, 1.5, 0.0])

# one of each family: a splitting, an implicit method, a Lie-group method, RATTLE
FAMILIES = {
    "splitting": (NEWTON, si.McAte5(), lambda s: jax.tree_util.tree_map(lambda x: s * x, Y0)),
    "implicit": (
        diffrax.ODETerm(_pendulum_vf),
        si.GaussLegendre(2),
        lambda s: (s * jnp.ones(2), jnp.zeros(2)),
    ),
    "lie": (diffrax.ODETerm(_spin), si.RKMK(4, group="SO"), lambda s: jnp.eye(3)),
    "rattle": (_PENDULUM, si.Rattle(_sphere), lambda s: (_Q0, s * _P0)),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_checks_false_changes_nothing_but_the_checks_and_nothing_recompiles(family):
    terms, solver, y0 = FAMILIES[family]

    def run(s, checks=True):
        return si.solve_fixed(terms, solver, y0(s), t0=0.5 * s, dt=0.01, num_steps=6,
                              save_every=3, checks=checks)  # fmt: skip

    first = jax.block_until_ready(run(1.0))
    before = compilations()
    for s in (0.9, 0.8):  # new values, same shapes and dtypes: the compiled loop is reused
        jax.block_until_ready(run(s))
    assert compilations() == before, f"{family}: eager calls recompiled"
    unchecked = run(1.0, checks=False)
    for a, b in zip(jax.tree_util.tree_leaves(first), jax.tree_util.tree_leaves(unchecked)):
        assert np.array_equal(np.asarray(a), np.asarray(b))


ONE_STEP = {
    "GaussLegendre": (diffrax.ODETerm(_pendulum_vf), si.GaussLegendre(2), (jnp.ones(2),) * 2),
    "GeneralizedLeapfrog": (
        si.HamiltonianTerm(lambda q, p, a: 0.5 * p @ p * (1 + 0.1 * q @ q)),
        si.GeneralizedLeapfrog(),
        (jnp.ones(2),) * 2,
    ),
    "Rattle": (_PENDULUM, si.Rattle(_sphere), (_Q0, _P0)),
}


@pytest.mark.parametrize("name", ONE_STEP)
def test_eager_one_step_compiles_once(name):
    """The certificates' one-step maps of the implicit solvers: eager calls with new
    values reuse one compiled step (optimistix's loops traced op by op would compile again
    on every call, ~1 s each)."""
    terms, solver, y0 = ONE_STEP[name]
    jax.block_until_ready(solver.one_step(terms, 0.0, 0.1, y0))
    before = compilations()
    for t0, h in ((0.5, 0.05), (1.0, 0.2)):
        y1 = jax.block_until_ready(solver.one_step(terms, t0, h, y0))
    assert compilations() == before, f"{name}: eager one_step recompiled"
    assert all(np.all(np.isfinite(np.asarray(x))) for x in y1)
