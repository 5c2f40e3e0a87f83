"""Bad input gets a clear error naming what was expected, eagerly and under `jax.jit`."""

import dataclasses

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import structjax.integrators as si

from ..helpers import GENERAL, NEWTON, Y0, assert_refused, tree_allclose


def _fixed(terms=NEWTON, solver=None, y0=Y0, **kw):
    kw.setdefault("dt", 0.1)
    kw.setdefault("num_steps", 3)
    return si.solve_fixed(terms, solver or si.VelocityVerlet(), y0, **kw)


def _y1(**kw):
    return lambda y: _fixed(y0=y, **kw).y1


def test_terms_not_a_pair():
    # trace-time refusals: the same ValueError eagerly and inside jax.jit
    assert_refused(_y1(terms=NEWTON[0]), Y0, match=r"terms=\(term_q, term_p\)")
    assert_refused(_y1(terms=(NEWTON[0], NEWTON[1], NEWTON[0])), Y0, match="pair of diffrax terms")
    assert_refused(_y1(terms=(NEWTON[0], lambda t, q, a: q)), Y0, match="AbstractTerm")


def test_q_p_structures_differ():
    for bad in ((Y0[0], {"a": jnp.zeros(2)}), (Y0[0], {"a": jnp.zeros(3), "b": jnp.zeros(1)})):
        assert_refused(_y1(), bad, match="same structure and shapes")
    assert_refused(_y1(), Y0[0], match=r"y0=\(q, p\)")


def test_same_errors_inside_diffeqsolve():
    def energy(x, args):
        return sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(x))

    terms = si.separable_terms(energy, energy)
    with pytest.raises(ValueError, match="same structure and shapes"):
        diffrax.diffeqsolve(terms, si.McAte42(), 0.0, 1.0, 0.1, (Y0[0], {"a": jnp.zeros(2)}))


@pytest.mark.parametrize("dt", [0.0, -0.1, float("nan"), float("inf")])
def test_non_positive_or_non_finite_step(dt):
    # eagerly a ValueError; under jit (dt traced) a run-time error, with the same words
    assert_refused(
        lambda dt: _fixed(dt=dt).y1, dt, match=r"solve_fixed\(\.\.\., dt=.*finite step dt > 0"
    )


def test_bad_start_time():
    assert_refused(lambda t0: _fixed(t0=t0).y1, float("nan"), match="finite start time t0")
    # kept alive under jit even when the caller keeps only a state of an autonomous problem
    assert_refused(lambda t0: _fixed(t0=t0).y1[1]["b"], jnp.inf, match="t0", eager=False)
    for t0 in (1j, jnp.zeros(2)):
        assert_refused(lambda t0: _fixed(t0=t0).y1, t0, match="t0")
    with pytest.raises(TypeError, match="t0"):
        _fixed(t0="0")
    assert_refused(lambda dt: _fixed(dt=dt).y1, 0.1 + 0j, match="dt")


def test_checks_false_drops_only_the_run_time_checks():
    run = jax.jit(lambda dt: _fixed(dt=dt, checks=False).y1)
    jax.block_until_ready(run(-0.1))  # traced: the opt-out
    with pytest.raises(ValueError, match="finite step"):
        _fixed(dt=-0.1, checks=False)  # known now: still refused, at no cost
    assert tree_allclose(_fixed(checks=False).y1, _fixed().y1, rtol=0, atol=0)
    with pytest.raises(TypeError, match="checks"):
        _fixed(checks=1)


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_])
@pytest.mark.parametrize("solver", ["splitting", "implicit", "diffrax"])
def test_integer_or_boolean_state_refused(dtype, solver):
    """An integer state would be stepped in integer arithmetic (a wrong answer): refused at
    trace time, naming `y0` and the leaf."""
    if solver == "splitting":

        def fn(y):
            return _fixed(y0=y).y1

        y = ({"a": jnp.array([1, 0]).astype(dtype), "b": jnp.ones(1)}, Y0[1])
        match = r"y0\[0\]\['a'\].*dtype (int32|bool)"
    else:
        term = diffrax.ODETerm(lambda t, y, a: -y)
        method = si.ImplicitMidpoint() if solver == "implicit" else diffrax.Tsit5()

        def fn(y):
            return si.solve_fixed(term, method, y, dt=0.1, num_steps=2).y1

        y, match = jnp.ones(2, dtype), "floating-point .* `y0`"
    assert_refused(fn, y, match=match)


@pytest.mark.filterwarnings("ignore:Complex")  # diffrax and optimistix call it experimental
def test_complex_state_accepted():
    """Complex ODE states are legitimate (diffrax supports them): y' = i y in complex64
    integrates in complex64 with float32 time, and matches exp(i t)."""
    term = diffrax.ODETerm(lambda t, y, a: 1j * y)
    y0 = jnp.ones(2, jnp.complex64)
    for method, tol in ((diffrax.Tsit5(), 1e-5), (si.GaussLegendre(2), 1e-5)):
        out = si.solve_fixed(term, method, y0, dt=0.05, num_steps=20)
        assert out.y1.dtype == jnp.complex64 and out.t1.dtype == jnp.float32
        assert np.max(np.abs(np.asarray(out.y1) - np.exp(1j))) < tol
    with pytest.raises(ValueError, match="at least one array"):
        si.solve_fixed(term, diffrax.Tsit5(), (), dt=0.1, num_steps=1)


def test_diffeqsolve_refuses_adaptive_controller():
    with pytest.raises(Exception, match="error estimates"):
        diffrax.diffeqsolve(
            NEWTON,
            si.KahanLi8(),
            0.0,
            1.0,
            0.1,
            Y0,
            stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-6),
        )


@pytest.mark.parametrize("n", [0, -3])
def test_bad_num_steps(n):
    assert_refused(lambda y: _fixed(y0=y, num_steps=n).y1, Y0, match=r"num_steps=-?\d.*>= 1")


def test_num_steps_must_be_a_python_int():
    # A TypeError: ours, or jaxtyping's when the tests run with runtime type checking.
    with pytest.raises(TypeError):
        _fixed(num_steps=2.5)
    with pytest.raises(TypeError, match="num_steps=True"):
        _fixed(num_steps=True)
    # traced (not marked static under jit): refused at trace time, naming it
    with pytest.raises(TypeError, match="num_steps"):
        jax.jit(lambda n: _fixed(num_steps=n).y1)(3)


@pytest.mark.parametrize("m", [3, 0, True])
def test_save_every_must_be_an_int_dividing_num_steps(m):
    assert_refused(lambda y: _fixed(y0=y, num_steps=10, save_every=m).y1, Y0, match="save_every")


def test_reversible_needs_a_splitting():
    term = diffrax.ODETerm(lambda t, y, a: -y)

    def reversible(y):
        return si.solve_fixed(term, diffrax.Tsit5(), y, dt=0.1, num_steps=2, adjoint="reversible")

    assert_refused(reversible, jnp.ones(2), match="adjoint='reversible'.*Tsit5")
    assert_refused(lambda y: _fixed(y0=y, adjoint="backsolve").y1, Y0, match="adjoint=")
    damped = si.conformal(si.VelocityVerlet(), 0.1)
    assert_refused(lambda y: _fixed(y0=y, solver=damped, adjoint="reversible").y1, Y0,
                   match="refuses a conformal")  # fmt: skip
    with pytest.raises(TypeError, match="solver"):  # ours, or jaxtyping's under the tests
        si.solve_fixed(NEWTON, "VelocityVerlet", Y0, dt=0.1, num_steps=1)


@pytest.mark.parametrize("cls", [si.McAte4, si.McAte5, si.CalvoSanz4, si.BlanesMoan6])
def test_rkn_methods_refuse_non_quadratic_kinetic(cls):
    with pytest.raises(ValueError, match="quadratic kinetic energy"):
        _fixed(terms=GENERAL, solver=cls())
    with pytest.raises(ValueError, match="quadratic kinetic energy"):
        diffrax.diffeqsolve(GENERAL, cls(), 0.0, 1.0, 0.1, Y0)
    _fixed(terms=NEWTON, solver=cls())  # and accept a quadratic one


def test_rkn_accepts_mass_matrix_kinetic():
    m = jnp.array([[2.0, 0.5], [0.5, 1.0]])
    terms = si.separable_terms(
        lambda p, a: 0.5 * p @ jnp.linalg.solve(m, p), lambda q, a: jnp.sum(q**4)
    )
    si.solve_fixed(terms, si.McAte5(), (jnp.ones(2), jnp.zeros(2)), dt=0.1, num_steps=2)


def test_bad_user_functions():
    terms = si.separable_terms(lambda p, a: p**2, lambda q, a: jnp.sum(q**2))
    y = (jnp.ones(2), jnp.ones(2))
    assert_refused(lambda y: si.solve_fixed(terms, si.VelocityVerlet(), y, dt=0.1,
                                            num_steps=1).y1, y,
                   match="`kinetic` must return a scalar")  # fmt: skip
    terms = si.split_force_terms(lambda q, a: q[:1])
    assert_refused(lambda y: si.solve_fixed(terms, si.VelocityVerlet(), y, dt=0.1,
                                            num_steps=1).y1, y,
                   match="`force` must return a pytree like its input")  # fmt: skip
    # ours, or jaxtyping's when the tests run with runtime type checking: both name it
    with pytest.raises(TypeError, match="potential"):
        si.separable_terms(lambda p, a: p @ p, jnp.ones(2))
    with pytest.raises(TypeError, match="velocity"):
        si.split_force_terms(lambda q, a: -q, velocity=1.0)


def test_bad_tableaux_and_compositions():
    with pytest.raises(ValueError, match="sum to 1"):
        si.SplittingTableau("kick", (0.5, 1.0, 0.4), order=2)
    with pytest.raises(ValueError, match="'drift' or 'kick'"):
        si.SplittingTableau("push", (1.0, 1.0), order=1)
    with pytest.raises(ValueError, match="must sum to 1"):
        si.Composition(si.VelocityVerlet(), (0.5, 0.4))
    with pytest.raises(ValueError, match="cannot give order 6"):
        si.Composition(si.VelocityVerlet(), (1 / 3, 1 / 3, 1 / 3), order=6)
    with pytest.raises(TypeError, match="splitting method|AbstractSplitting"):
        si.Composition(diffrax.Tsit5(), (1.0,))
    with pytest.raises(TypeError, match="SplittingTableau"):
        si.ExplicitSplitting((0.5, 1.0, 0.5))
    with pytest.raises(ValueError, match="stage_loop"):
        si.ExplicitSplitting(si.VelocityVerlet.tableau, "vectorise")
    unguarded = dataclasses.replace(si.McAte4.tableau, rkn=False, general_order=4)
    assert unguarded.order == 4
