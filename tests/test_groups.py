"""One vocabulary of groups: the `Group` objects of the equivariant layers, the matrix
manifolds and the old string spellings measure the same distance in the certificate and are
accepted by the Lie-group integrators."""

import doctest
import re

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import structjax.check as sc
import structjax.equivariant as se
import structjax.integrators as si
import structjax.manifolds as sm
from structjax import _groups
from structjax.check import _lie as check_lie

from .helpers import assert_refused


def _perturbed(key, g, eps):
    return g + eps * jax.random.normal(key, g.shape, g.dtype)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_the_three_spellings_of_so_n_agree(n, getkey):
    g = se.SO(n).sample(getkey())
    for y in (g, _perturbed(getkey(), g, 1e-3), -g if n % 2 else g[::-1]):
        ref = float(np.linalg.norm(np.asarray(y).T @ np.asarray(y) - np.eye(n)))
        ref += abs(float(np.linalg.det(np.asarray(y))) - 1)
        for group in ("SO", se.SO(n), sm.SpecialOrthogonal(n)):
            assert abs(float(sc.lie_group_error(group, y)) - ref) < 1e-12, group
    # O(n): no orientation term
    reflected = g.at[0].multiply(-1.0)
    for group in ("O", se.O(n), sm.Orthogonal(n)):
        assert float(sc.lie_group_error(group, reflected)) < 1e-12
    assert float(sc.lie_group_error(se.SO(n), reflected)) > 1.9


def test_stiefel_spellings_agree(getkey):
    y = sm.Stiefel(5, 2).random_point(getkey())
    bad = _perturbed(getkey(), y, 1e-3)
    for point in (y, bad):
        values = [float(sc.lie_group_error(g, point)) for g in ("Stiefel", sm.Stiefel(5, 2))]
        assert abs(values[0] - values[1]) < 1e-14
    assert float(sc.lie_group_error(sm.Stiefel(5, 2), bad)) > 1e-4


@pytest.mark.parametrize(
    "group, form",
    [
        (se.LorentzGroup(), np.diag([1.0, -1.0, -1.0, -1.0])),
        (se.Sp(2), np.block([[np.zeros((2, 2)), np.eye(2)], [-np.eye(2), np.zeros((2, 2))]])),
        (se.SE(3), None),
        (se.E(2), None),
    ],
    ids=lambda g: getattr(g, "name", ""),
)
def test_membership_of_samples_and_of_perturbed_matrices(group, form, getkey):
    if form is not None:  # the declared form is the one the group keeps, independently
        np.testing.assert_array_equal(group.form, form)
    samples = jax.vmap(group.sample)(jax.random.split(getkey(), 8))
    errors = sc.lie_group_error(group, samples)
    scale = float(jnp.max(jnp.abs(samples))) ** 2
    assert errors.shape == (8,) and float(jnp.max(errors)) < 1e-10 * scale
    bad = _perturbed(getkey(), samples, 1e-3)
    assert float(jnp.min(sc.lie_group_error(group, bad))) > 1e-5
    if group.affine:  # a homogeneous matrix with a wrong last row is off the group
        assert float(sc.lie_group_error(group, samples[0].at[-1, 0].set(0.5))) >= 0.5


def test_se3_matches_the_string_spelling(getkey):
    g = se.SE(3).sample(getkey())
    bad = _perturbed(getkey(), g, 1e-3)
    for y in (g, bad):
        old, new = sc.lie_group_error("SE", y), sc.lie_group_error(se.SE(3), y)
        assert abs(float(old) - float(new)) < 1e-14


def test_lorentz_spellings_and_names():
    assert se.Lorentz() == se.LorentzGroup()
    assert se.LorentzGroup().name == "O(1,3)"
    assert se.SE(3).special and se.SE(3).affine and se.SE(3).d == 4


def test_refusals():
    with pytest.raises(ValueError, match=r"lie_group_error\(group, y\)` needs a Lie group.*C\(4\)"):
        sc.lie_group_error(se.C(4), jnp.eye(2))
    with pytest.raises(ValueError, match="declares no invariant form"):
        se.D(3).membership_error(jnp.eye(2))
    with pytest.raises(ValueError, match=r"3 x 3 matrices"):
        se.SO(3).membership_error(jnp.eye(4))
    with pytest.raises(ValueError, match="needs a group"):
        sc.lie_group_error("Sp", jnp.eye(2))
    with pytest.raises(TypeError, match="needs a group"):
        sc.lie_group_error(3, jnp.eye(2))
    with pytest.raises(ValueError, match="form` must be 2 x 2"):
        se.Group(np.zeros((1, 2, 2)), np.zeros((0, 2, 2)), "G", form=np.eye(3))


GROUP_SPELLINGS = {"string": "SO", "Group": se.SO(3), "manifold": sm.SpecialOrthogonal(3)}


@pytest.mark.parametrize("group", GROUP_SPELLINGS.values(), ids=GROUP_SPELLINGS.keys())
def test_lie_integrators_take_every_spelling(group):
    spin = diffrax.ODETerm(lambda t, y, args: jnp.array([[0.0, -1.0, 0.2], [1.0, 0.0, 0.0],
                                                          [-0.2, 0.0, 0.0]]))  # fmt: skip
    solver = si.RKMK(4, group=group)

    def solve(y):
        return si.solve_fixed(spin, solver, y, dt=0.1, num_steps=3).y1

    y1 = solve(jnp.eye(3))
    assert float(sc.lie_group_error(group, y1)) < 1e-13
    name = re.escape(check_lie.group_name(group))
    # off the group: refused eagerly and inside jit alike (init's check rides on the state)
    assert_refused(lambda y: solver.init(spin, 0.0, 0.1, y, None), 1.01 * jnp.eye(3),
                   match=f"needs `y0` on {name}")  # fmt: skip
    with pytest.raises(RuntimeError, match=f"off {name}"):
        jax.block_until_ready(jax.jit(solve)(1.01 * jnp.eye(3)))
    with pytest.raises(ValueError, match="matrix of the group|trailing shape"):
        solver.init(spin, 0.0, 0.1, jnp.eye(4)[:, :3], None)


def test_a_stiefel_state_under_the_manifold_spelling(getkey):
    y0 = sm.Stiefel(4, 2).random_point(getkey())
    a = jnp.array([[0.0, -1.0, 0.3, 0.0], [1.0, 0.0, 0.0, 0.2], [-0.3, 0.0, 0.0, -0.5],
                   [0.0, -0.2, 0.5, 0.0]])  # fmt: skip
    term = diffrax.ODETerm(lambda t, y, args: a)
    sol = si.solve_fixed(term, si.CrouchGrossman3(group=sm.Stiefel(4, 2)), y0, dt=0.05,
                         num_steps=40)  # fmt: skip
    assert float(sc.lie_group_error(sm.Stiefel(4, 2), sol.y1)) < 1e-13
    with pytest.raises(ValueError, match=r"group=Stiefel\(n=4, p=2\).*trailing shape"):
        si.CrouchGrossman3(group=sm.Stiefel(4, 2)).init(term, 0.0, 0.1, jnp.ones((4, 3)), None)


@pytest.mark.parametrize(
    "obj", [sc.lie_group_error, _groups.SE, _groups.LorentzGroup], ids=lambda o: o.__name__
)
def test_docstring_examples_run(obj):
    tests = doctest.DocTestFinder().find(obj)
    if obj is sc.lie_group_error:
        assert tests[0].examples
    for test in tests:
        result = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(test, out=print)
        assert result.failed == 0
