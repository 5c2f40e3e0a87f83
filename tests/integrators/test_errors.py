"""Bad input gets a clear error naming what was expected."""

import dataclasses

import diffrax
import jax
import jax.numpy as jnp
import pytest

import structjax.integrators as si

from ..helpers import GENERAL, NEWTON, Y0


def _fixed(terms=NEWTON, solver=None, y0=Y0, **kw):
    kw.setdefault("dt", 0.1)
    kw.setdefault("num_steps", 3)
    return si.solve_fixed(terms, solver or si.VelocityVerlet(), y0, **kw)


def test_terms_not_a_pair():
    with pytest.raises(ValueError, match=r"terms=\(term_q, term_p\)"):
        _fixed(terms=NEWTON[0])
    with pytest.raises(ValueError, match="pair of diffrax terms"):
        _fixed(terms=(NEWTON[0], NEWTON[1], NEWTON[0]))
    with pytest.raises(ValueError, match="AbstractTerm"):
        _fixed(terms=(NEWTON[0], lambda t, q, a: q))


def test_q_p_structures_differ():
    bad = (Y0[0], {"a": jnp.zeros(2)})
    with pytest.raises(ValueError, match="same structure and shapes"):
        _fixed(y0=bad)
    bad_shape = (Y0[0], {"a": jnp.zeros(3), "b": jnp.zeros(1)})
    with pytest.raises(ValueError, match="same structure and shapes"):
        _fixed(y0=bad_shape)
    with pytest.raises(ValueError, match=r"y0=\(q, p\)"):
        _fixed(y0=Y0[0])


def test_same_errors_inside_diffeqsolve():
    def energy(x, args):
        return sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(x))

    terms = si.separable_terms(energy, energy)
    with pytest.raises(ValueError, match="same structure and shapes"):
        diffrax.diffeqsolve(terms, si.McAte42(), 0.0, 1.0, 0.1, (Y0[0], {"a": jnp.zeros(2)}))


@pytest.mark.parametrize("dt", [0.0, -0.1, float("nan"), float("inf")])
def test_non_positive_or_non_finite_step(dt):
    with pytest.raises(ValueError, match="finite step dt > 0"):
        _fixed(dt=dt)


def test_bad_step_under_jit_is_a_runtime_error():
    run = jax.jit(lambda dt: _fixed(dt=dt).y1)
    run(0.1)
    with pytest.raises(Exception, match="finite step dt > 0"):
        jax.block_until_ready(run(-0.1))


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


@pytest.mark.parametrize("n", [0, -3, True])
def test_bad_num_steps(n):
    with pytest.raises(ValueError, match="num_steps"):
        _fixed(num_steps=n)


def test_num_steps_must_be_an_int():
    # A TypeError: ours, or jaxtyping's when the tests run with runtime type checking.
    with pytest.raises(TypeError):
        _fixed(num_steps=2.5)


def test_save_every_must_divide():
    with pytest.raises(ValueError, match="save_every"):
        _fixed(num_steps=10, save_every=3)


def test_reversible_needs_a_splitting():
    term = diffrax.ODETerm(lambda t, y, a: -y)
    with pytest.raises(ValueError, match="reversible"):
        si.solve_fixed(
            term, diffrax.Tsit5(), jnp.ones(2), dt=0.1, num_steps=2, adjoint="reversible"
        )
    with pytest.raises(ValueError, match="adjoint"):
        _fixed(adjoint="backsolve")


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
    with pytest.raises(ValueError, match="`kinetic` must return a scalar"):
        si.solve_fixed(terms, si.VelocityVerlet(), (jnp.ones(2), jnp.ones(2)), dt=0.1, num_steps=1)
    terms = si.split_force_terms(lambda q, a: q[:1])
    with pytest.raises(ValueError, match="`force` must return a pytree like its input"):
        si.solve_fixed(terms, si.VelocityVerlet(), (jnp.ones(2), jnp.ones(2)), dt=0.1, num_steps=1)


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
    unguarded = dataclasses.replace(si.McAte4.tableau, rkn=False)
    assert unguarded.order == 4
