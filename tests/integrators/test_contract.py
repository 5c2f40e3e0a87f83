"""The declared solver contract (`AbstractStructuredSolver`): every structjax solver has it,
`solve_fixed` asks through it alone (a solver of the user's own that declares a fused loop
or an exact inverse gets them used), and the families are classes over tables."""

import doctest

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import structjax.integrators as si
from structjax.integrators import _implicit, _lie

OSCILLATOR = diffrax.ODETerm(lambda t, y, args: (args * y[1], -args * y[0]))
Y0 = (jnp.array([1.0, 0.5]), jnp.array([0.0, -0.2]))


class ExactRotation(si.AbstractStructuredSolver):
    """The exact flow of q' = w p, p' = -w q (w = args): a rotation by w dt. A solver of the
    user's own that declares an exact inverse and a fused loop, and counts the latter."""

    term_structure = diffrax.AbstractTerm
    fused: bool = False

    def order(self, terms):
        return 99

    def init(self, terms, t0, t1, y0, args):
        return None

    def one_step(self, terms, t0, h, y0, args=None):
        c, s = jnp.cos(args * h), jnp.sin(args * h)
        q, p = y0
        return (c * q + s * p, c * p - s * q)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        y1 = self.one_step(terms, t0, t1 - t0, y0, args)
        k0, k1 = terms.vf_prod(t0, y0, args, t1 - t0), terms.vf_prod(t1, y1, args, t1 - t0)
        return y1, None, dict(y0=y0, y1=y1, k0=k0, k1=k1), None, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)

    steps_can_fail = False

    def check_reversible(self, call):
        return None

    def inverse_step(self, terms, t, dt, y1, args=None):
        return self.one_step(terms, t + dt, -dt, y1, args)

    def fused_fixed_loop(self, terms, y0, args, t0, dt, num_steps, chunk):
        if not self.fused:
            return None
        # the whole chunk at once: a rotation by w dt chunk (the same map, exactly)
        ks = jnp.arange(1, num_steps // chunk + 1, dtype=dt.dtype)
        c, s = jnp.cos(args * dt * chunk * ks), jnp.sin(args * dt * chunk * ks)
        q, p = y0
        return (c[:, None] * q + s[:, None] * p, c[:, None] * p - s[:, None] * q)


SOLVERS = [
    si.VelocityVerlet(),
    si.conformal(si.McAte4(), 0.1),
    si.triple_jump(si.VelocityVerlet()),
    si.GaussLegendre(2),
    si.ImplicitMidpoint(),
    si.ImplicitRungeKutta(si.gauss_legendre_tableau(3)),
    si.GeneralizedLeapfrog(),
    si.Rattle(lambda q, args: jnp.sum(q**2) - 1.0),
    si.RKMK(4),
    si.CrouchGrossman3(),
    si.CrouchGrossman(si.CrouchGrossman3().tableau),
]


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: type(s).__name__)
def test_every_solver_declares_the_contract(solver):
    assert isinstance(solver, si.AbstractStructuredSolver)
    assert isinstance(solver, diffrax.AbstractSolver)
    assert solver.error_order(None) is None
    reversible = isinstance(solver, si.AbstractSplitting) and not isinstance(
        solver, si.ConformalSplitting
    )
    if reversible:
        solver.check_reversible("here")
    else:
        with pytest.raises(ValueError, match="`here`"):
            solver.check_reversible("here")


def test_families_are_classes_over_tables():
    assert isinstance(si.ImplicitMidpoint(), si.GaussLegendre)
    assert isinstance(si.GaussLegendre(3), si.ImplicitRungeKutta)
    assert si.GaussLegendre(3).tableau == si.gauss_legendre_tableau(3)
    assert si.GaussLegendre(3).stages == 3 and si.GaussLegendre(3).order(None) == 6
    assert si.ImplicitMidpoint().tableau == si.gauss_legendre_tableau(1)
    assert not isinstance(si.ImplicitRungeKutta(si.gauss_legendre_tableau(2)), si.GaussLegendre)
    for solver in (si.RKMK(2), si.CrouchGrossman3()):
        assert isinstance(solver, si.LieGroupRK)
    assert isinstance(si.CrouchGrossman3(), si.CrouchGrossman)
    assert not isinstance(si.RKMK(3), si.CrouchGrossman)
    # the same table by order or given explicitly: the same solver
    assert si.RKMK(3) == si.RKMK(tableau=si.RKMK(3).tableau)
    assert [si.RKMK(p).order(None) for p in (1, 2, 3, 4)] == [1, 2, 3, 4]
    with pytest.raises(TypeError, match="abstract"):
        si.LieGroupRK()  # the base: build RKMK or CrouchGrossman


def test_a_user_table_runs_like_the_builtin_one():
    # Heun's method as an RKMK table of order 2 (HNW I, Table II.1.1) is a different method
    # from the midpoint one but of the same order on a rotation with varying axis.
    heun = si.LieTableau(a=[[0.0, 0.0], [1.0, 0.0]], b=[0.5, 0.5], c=[0.0, 1.0], order=2,
                         source="Heun")  # fmt: skip
    def field(t, y, args):  # a rotation whose axis turns with time and with the state
        u, v = jnp.sin(3 * t) + y[0, 1], 0.5 * t**2
        return jnp.array([[0.0, -1.0, u], [1.0, 0.0, -v], [-u, v, 0.0]])

    term = diffrax.ODETerm(field)

    def final(solver, n):
        return si.solve_fixed(term, solver, jnp.eye(3), dt=1.0 / n, num_steps=n).y1

    reference = final(si.RKMK(4), 512)
    errors = [float(jnp.max(jnp.abs(final(si.RKMK(tableau=heun), n) - reference)))
              for n in (16, 32)]  # fmt: skip
    assert 3.5 < errors[0] / errors[1] < 4.5, errors  # order 2
    assert float(jnp.max(jnp.abs(final(si.RKMK(tableau=heun), 16) - final(si.RKMK(2), 16)))) > 0


def test_lie_tableau_refusals():
    good = dict(a=[[0.0, 0.0], [0.5, 0.0]], b=[0.0, 1.0], c=[0.0, 0.5], order=2, source="s")
    for bad, match in (
        (dict(b=[1.0]), r"A of shape \(s, s\)"),
        (dict(a=[[0.5, 0.0], [0.5, 0.0]]), "strictly lower-triangular"),
        (dict(b=[0.5, 0.6]), "summing to 1"),
        (dict(c=[0.0, float("inf")]), "finite"),
        (dict(order=0), "order=0"),
    ):
        with pytest.raises(ValueError, match=match):
            si.LieTableau(**(good | bad))
    with pytest.raises(ValueError, match="orders up to 4"):
        si.RKMK(tableau=si.LieTableau(**(good | dict(order=5))))
    with pytest.raises(ValueError, match="pass one of the two"):
        si.RKMK(3, tableau=si.LieTableau(**good))
    with pytest.raises(TypeError, match="LieTableau"):  # (or jaxtyping's own check)
        si.CrouchGrossman(((0.0,),))


@pytest.mark.parametrize("fused", [False, True])
def test_the_driver_asks_the_solver(fused):
    # `solve_fixed` uses a user solver's fused loop and exact inverse through the contract:
    # the same trajectory either way, and the reversible gradient equals autodiff's
    solver = ExactRotation(fused=fused)
    w = jnp.asarray(1.3)

    def loss(w, adjoint):
        sol = si.solve_fixed(OSCILLATOR, solver, Y0, dt=0.05, num_steps=40, args=w,
                             save_every=10, adjoint=adjoint)  # fmt: skip
        return jnp.sum(sol.ys[0] ** 2 * jnp.arange(5.0)[:, None]) + jnp.sum(sol.y1[1])

    plain = si.solve_fixed(OSCILLATOR, solver, Y0, dt=0.05, num_steps=40, args=w, save_every=10)
    c, s = np.cos(1.3 * 0.5 * np.arange(5)), np.sin(1.3 * 0.5 * np.arange(5))
    np.testing.assert_allclose(plain.ys[0], c[:, None] * Y0[0] + s[:, None] * Y0[1], atol=1e-13)
    g_auto = jax.grad(loss)(w, "autodiff")
    g_rev = jax.grad(loss)(w, "reversible")
    assert abs(float(g_rev - g_auto)) < 1e-11 * max(1.0, abs(float(g_auto)))


def test_a_solver_that_declines_reversibility_is_refused_by_name():
    class NotInvertible(ExactRotation):
        def check_reversible(self, call):
            si.AbstractStructuredSolver.check_reversible(self, call)

    with pytest.raises(ValueError, match=r"adjoint='reversible'.*NotInvertible"):
        si.solve_fixed(OSCILLATOR, NotInvertible(), Y0, dt=0.1, num_steps=2, args=1.0,
                       adjoint="reversible")  # fmt: skip


@pytest.mark.parametrize(
    "obj",
    [si.GaussLegendre, si.ImplicitMidpoint, si.RKMK, si.CrouchGrossman, si.CrouchGrossman3,
     si.LieTableau],  # fmt: skip
    ids=lambda o: o.__name__,
)
def test_docstring_examples_run(obj):
    module = _lie if obj.__module__.endswith("_lie") else _implicit
    test = doctest.DocTestFinder().find(obj, module=module)[0]
    assert test.examples, obj
    result = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(test, out=print)
    assert result.failed == 0
