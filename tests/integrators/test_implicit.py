"""Gauss–Legendre collocation: the published tables, order 2s, symplecticity and quadratic
invariants for non-separable systems, optimistix root finders, failures that are never
silent, jit/vmap/grad."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest

import structjax.integrators as si
from structjax.check import convergence_order, energy_error, symplecticity_error

from ..helpers import assert_refused, dopri8_reference


def _hamiltonian(q, p):
    """Non-separable: the kinetic part depends on q."""
    return 0.5 * (q @ q + p @ p) + 0.1 * (q @ q) * (p @ p) + jnp.sum(jnp.sin(q))


def _vf(t, y, args):
    q, p = y
    return jax.grad(_hamiltonian, 1)(q, p), -jax.grad(_hamiltonian, 0)(q, p)


TERM = diffrax.ODETerm(_vf)
Y0 = (jnp.array([0.5, -0.3]), jnp.array([0.2, 0.4]))
T1 = 1.0
REFERENCE = dopri8_reference(_vf, Y0, T1)
FIXED_POINT = optx.FixedPointIteration(rtol=1e-14, atol=1e-14)
NEWTON = optx.Newton(rtol=1e-13, atol=1e-13)


def test_tables_are_the_published_ones():
    r3, r15 = np.sqrt(3), np.sqrt(15)
    # HLW, GNI, Table II.1.1 (s = 2); Hairer & Wanner, ODEs II, Table IV.5.2 (s = 3)
    published = {
        1: ([[0.5]], [1.0], [0.5]),
        2: ([[1 / 4, 1 / 4 - r3 / 6], [1 / 4 + r3 / 6, 1 / 4]], [0.5, 0.5],
            [0.5 - r3 / 6, 0.5 + r3 / 6]),
        3: ([[5 / 36, 2 / 9 - r15 / 15, 5 / 36 - r15 / 30],
             [5 / 36 + r15 / 24, 2 / 9, 5 / 36 - r15 / 24],
             [5 / 36 + r15 / 30, 2 / 9 + r15 / 15, 5 / 36]],
            [5 / 18, 4 / 9, 5 / 18], [0.5 - r15 / 10, 0.5, 0.5 + r15 / 10]),
    }  # fmt: skip
    for s, (a, b, c) in published.items():
        tab = si.gauss_legendre_tableau(s)
        ours = tab.arrays()
        for x, y in zip(ours, (a, b, c)):
            assert np.max(np.abs(x - np.asarray(y))) < 1e-15
        assert tab.order == 2 * s
        assert tab.symplecticity_defect() < 1e-15
    assert si.gauss_legendre_tableau(5).symplecticity_defect() < 1e-14


@pytest.mark.parametrize("stages", [1, 2, 3])
@pytest.mark.parametrize("finder", ["newton", "fixed_point"])
def test_order(stages, finder):
    solver = si.GaussLegendre(stages, FIXED_POINT if finder == "fixed_point" else NEWTON, 200)
    run = jax.jit(lambda dt, n: si.solve_fixed(TERM, solver, Y0, dt=dt, num_steps=n).y1,
                  static_argnums=1)  # fmt: skip
    ns = {1: [16, 32, 64], 2: [8, 16, 32], 3: [4, 6, 8]}[stages]
    measured = convergence_order(lambda dt: run(dt, round(T1 / dt)), [T1 / n for n in ns],
                                 REFERENCE)  # fmt: skip
    assert abs(measured - 2 * stages) < 0.3, measured


@pytest.mark.parametrize("stages", [1, 2, 3])
@pytest.mark.parametrize("finder", [None, "newton"])
def test_symplectic_for_a_non_separable_hamiltonian(stages, finder):
    solver = si.GaussLegendre(stages, None if finder is None else NEWTON)
    err = symplecticity_error(lambda q, p: solver.one_step(TERM, 0.0, 0.3, (q, p)), *Y0)
    assert float(err) < 1e-12
    # the certificate is not blind: an explicit RK method of the same order is not
    tsit = diffrax.Tsit5()

    def explicit(q, p):
        state = tsit.init(TERM, 0.0, 0.3, (q, p), None)
        return tsit.step(TERM, 0.0, 0.3, (q, p), None, state, False)[0]

    assert float(symplecticity_error(explicit, *Y0)) > 1e-6


def test_quadratic_invariants_of_the_free_rigid_body():
    # Euler's equations m' = m x (I^-1 m): |m|^2 and the energy m.I^-1 m / 2 are quadratic
    # invariants, conserved exactly by every Gauss method (HLW, GNI, Thm IV.2.1).
    inertia = jnp.array([1.0, 2.0, 3.5])
    term = diffrax.ODETerm(lambda t, m, a: jnp.cross(m, m / inertia))
    m0 = jnp.array([0.3, 1.0, -0.4])
    out = si.solve_fixed(term, si.GaussLegendre(2), m0, dt=0.1, num_steps=2000, save_every=100)
    ms = jnp.concatenate([m0[None], out.ys])
    casimir = jnp.sum(ms**2, -1)
    energy = 0.5 * jnp.sum(ms**2 / inertia, -1)
    assert float(jnp.max(jnp.abs(casimir - casimir[0]))) < 1e-12
    assert float(jnp.max(jnp.abs(energy - energy[0]))) < 1e-12
    # an explicit method of higher order drifts on both
    sol = diffrax.diffeqsolve(term, diffrax.Tsit5(), 0.0, 200.0, 0.1, m0)
    assert abs(float(jnp.sum(sol.ys[-1] ** 2) - casimir[0])) > 1e-10


def test_pytree_state_diffeqsolve_and_solve_fixed_agree():
    solver = si.GaussLegendre(2)
    a = si.solve_fixed(TERM, solver, Y0, dt=0.1, num_steps=10).y1
    sol = diffrax.diffeqsolve(TERM, solver, 0.0, 1.0, 0.1, Y0)
    assert sol.result == diffrax.RESULTS.successful
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(sol.ys)):
        assert float(jnp.max(jnp.abs(x - y[-1]))) < 1e-13


def test_jit_vmap_grad_no_retrace():
    solver = si.GaussLegendre(2)
    traces = []

    @jax.jit
    def final_q0(q0):
        traces.append(1)
        return si.solve_fixed(TERM, solver, (q0, Y0[1]), dt=0.1, num_steps=10).y1[0][0]

    g = jax.grad(final_q0)(Y0[0])
    e = jnp.array([1e-6, 0.0])
    fd = (final_q0(Y0[0] + e) - final_q0(Y0[0] - e)) / 2e-6
    assert float(g[0]) == pytest.approx(float(fd), rel=1e-6)
    n = len(traces)
    final_q0(Y0[0] * 1.1)
    assert len(traces) == n
    batch = jnp.stack([Y0[0], 0.5 * Y0[0]])
    assert float(jax.vmap(final_q0)(batch)[1]) == pytest.approx(float(final_q0(batch[1])),
                                                                 rel=1e-12)  # fmt: skip


def test_float32():
    y32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), Y0)
    out = si.solve_fixed(TERM, si.GaussLegendre(2), y32, dt=0.1, num_steps=10).y1
    assert out[0].dtype == jnp.float32
    assert float(jnp.max(jnp.abs(out[0].astype(jnp.float64) - REFERENCE[0]))) < 1e-5


def test_failures_are_never_silent():
    # a root finder given too few iterations for a large step does not converge: refused at
    # once eagerly (a ValueError), at run time under jit, and in `one_step` alike
    solver = si.GaussLegendre(2, max_steps=2)
    match = r"solve_fixed\(\.\.\., solver=GaussLegendre.*a step failed"
    assert_refused(lambda y: si.solve_fixed(TERM, solver, y, dt=0.5, num_steps=3).y1, Y0,
                   match=match)  # fmt: skip
    assert_refused(lambda y: solver.one_step(TERM, 0.0, 0.5, y), Y0,
                   match=r"`GaussLegendre.one_step`: a step failed")  # fmt: skip
    sol = diffrax.diffeqsolve(TERM, solver, 0.0, 1.5, 0.5, Y0, throw=False)
    assert sol.result != diffrax.RESULTS.successful
    with pytest.raises(ValueError, match="not compatible with solver"):  # diffrax's check
        diffrax.diffeqsolve(si.separable_terms(lambda p, a: p @ p, lambda q, a: q @ q),
                            si.GaussLegendre(2), 0.0, 1.0, 0.1, Y0)  # fmt: skip
    assert_refused(lambda y: si.solve_fixed(diffrax.MultiTerm(TERM, TERM), si.GaussLegendre(2),
                                            y, dt=0.1, num_steps=1).y1, Y0,
                   match="takes ONE term")  # fmt: skip
    for stages in (0, True):
        with pytest.raises(ValueError, match="positive int"):
            si.gauss_legendre_tableau(stages)


def test_bad_configuration():
    with pytest.raises(ValueError, match=r"`GaussLegendre\(max_steps=0\)` needs"):
        si.GaussLegendre(2, max_steps=0)
    with pytest.raises(TypeError, match="root_finder"):
        si.GaussLegendre(2, root_finder=optx.BFGS(1e-8, 1e-8))
    with pytest.raises(TypeError, match="tableau"):
        si.ImplicitRungeKutta(((0.5,),))
    good = dict(a=[[0.5]], b=[1.0], c=[0.5], order=2, source="midpoint")
    for bad, match in (
        (dict(b=[0.5, 0.5]), r"A of shape \(s, s\)"),
        (dict(b=[0.9]), "summing to 1"),
        (dict(a=[[float("nan")]]), "finite"),
        (dict(order=0), "order=0"),
    ):
        with pytest.raises(ValueError, match=match):
            si.ImplicitTableau(**(good | bad))
    assert si.ImplicitTableau(**good).stages == 1
    with pytest.raises(ValueError, match=r"`GeneralizedLeapfrog\(max_steps=-1\)` needs"):
        si.GeneralizedLeapfrog(max_steps=-1)
    with pytest.raises(TypeError, match="root_finder"):
        si.GeneralizedLeapfrog(root_finder=optx.FixedPointIteration(1e-8, 1e-8))


HAM_TERM = si.HamiltonianTerm(lambda q, p, args: _hamiltonian(q, p))


def test_hamiltonian_term_is_the_canonical_vector_field():
    out = HAM_TERM.vf(0.0, Y0, None)
    ref = _vf(0.0, Y0, None)
    for a, b in zip(out, ref):
        assert float(jnp.max(jnp.abs(a - b))) < 1e-15


def test_generalized_leapfrog_order_symplectic_symmetric():
    solver = si.GeneralizedLeapfrog()
    run = jax.jit(lambda dt, n: si.solve_fixed(HAM_TERM, solver, Y0, dt=dt, num_steps=n).y1,
                  static_argnums=1)  # fmt: skip
    order = convergence_order(lambda dt: run(dt, round(T1 / dt)), [1 / 32, 1 / 64, 1 / 128],
                              REFERENCE)  # fmt: skip
    assert abs(order - 2) < 0.3, order
    step = lambda q, p: solver.one_step(HAM_TERM, 0.0, 0.2, (q, p))  # noqa: E731
    assert float(symplecticity_error(step, *Y0)) < 1e-12
    back = solver.one_step(HAM_TERM, 0.2, -0.2, step(*Y0))
    for a, b in zip(back, Y0):
        assert float(jnp.max(jnp.abs(a - b))) < 1e-12
    # bounded energy over a long run: no drift
    out = si.solve_fixed(HAM_TERM, solver, Y0, dt=0.05, num_steps=20_000, save_every=100)
    err = energy_error(_hamiltonian, out.ys)
    assert float(err.max_error) < 1e-2  # O(h^2) oscillation, bounded
    assert abs(float(err.drift)) < 1e-4  # and no drift over 20 000 steps


def test_generalized_leapfrog_is_velocity_verlet_for_separable_h():
    def kinetic(p, a):
        return 0.5 * p @ p

    def potential(q, a):
        return jnp.sum(jnp.cos(q))

    term = si.HamiltonianTerm(lambda q, p, a: kinetic(p, a) + potential(q, a))
    a = si.solve_fixed(term, si.GeneralizedLeapfrog(), Y0, dt=0.1, num_steps=20).y1
    b = si.solve_fixed(si.separable_terms(kinetic, potential), si.VelocityVerlet(), Y0, dt=0.1,
                       num_steps=20).y1  # fmt: skip
    for x, y in zip(a, b):
        assert float(jnp.max(jnp.abs(x - y))) < 1e-14


def test_generalized_leapfrog_errors():
    assert_refused(lambda y: si.solve_fixed(TERM, si.GeneralizedLeapfrog(), y, dt=0.1,
                                            num_steps=2).y1, Y0,
                   match="needs `terms = structjax.integrators.HamiltonianTerm")  # fmt: skip
    failing = si.GeneralizedLeapfrog(max_steps=1)
    assert_refused(lambda y: si.solve_fixed(HAM_TERM, failing, y, dt=0.5, num_steps=2).y1, Y0,
                   match="a step failed")  # fmt: skip
    assert_refused(lambda y: failing.one_step(HAM_TERM, 0.0, 0.5, y), Y0, match="a step failed")


def test_old_tableau_name_names_the_new_one():
    """`ButcherTableau` (diffrax's name) was renamed; the old spelling says to what."""
    with pytest.raises(AttributeError, match="ImplicitTableau"):
        si.ButcherTableau  # noqa: B018
    assert isinstance(si.gauss_legendre_tableau(2), si.ImplicitTableau)


def test_tableau_docstring_example_runs():
    """The example in `ImplicitTableau`'s docstring, executed."""
    import doctest

    finder = doctest.DocTestFinder()
    (test,) = [t for t in finder.find(si.ImplicitTableau, "ImplicitTableau") if t.examples]
    result = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(test, out=lambda s: None)
    assert result.failed == 0 and result.attempted >= 3
