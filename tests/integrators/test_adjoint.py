"""Exact, memory-light gradients (issue 17): the symplectic adjoint (`solve_fixed`'s
"symplectic", `SymplecticAdjoint` for `diffeqsolve`), algebraically reversible RK methods
(`ReversibleRK`) and the `adjoint_consistency` certificate.

Every gradient is compared, in float64, with autodiff through the same discrete solve: the
partner method of a Runge–Kutta tableau is its discrete adjoint (Sanz-Serna 2016), so the two
agree to rounding (1e-10 is the floor; measured 1e-16 to 1e-12). A wrong partner (a stage
weight, a transposed a_ij, a lost FSAL cotangent) is off by O(h) or more.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import structjax.check as sc
import structjax.integrators as si
from structjax.check._adjoint import _relative
from structjax.integrators._adjoint import erk_tableau

ERK = [diffrax.Euler, diffrax.Heun, diffrax.Midpoint, diffrax.Ralston, diffrax.Bosh3,
       diffrax.Tsit5, diffrax.Dopri5, diffrax.Dopri8]  # fmt: skip
ADAPTIVE = [diffrax.Heun, diffrax.Bosh3, diffrax.Tsit5, diffrax.Dopri5, diffrax.Dopri8]


def _field(dtype=jnp.float64):
    mlp = eqx.nn.MLP(3, 3, 16, 2, activation=jnp.tanh, key=jax.random.key(0), dtype=dtype)
    term = diffrax.ODETerm(lambda t, y, a: a[0](y) * jnp.cos(t) + a[1] * y)
    args = (mlp, jnp.asarray(-0.3, dtype))
    return term, args, jnp.asarray([0.5, -0.2, 1.0], dtype)


def _rel(g1, g2) -> float:
    return _relative(g1, g2)


def _fixed_loss(term, solver, adjoint, n=40, dt=0.05):
    def loss(a):
        args, y0 = a
        sol = si.solve_fixed(term, solver, y0, dt=dt, num_steps=n, args=args, adjoint=adjoint,
                             save_every=n // 4)  # fmt: skip
        return jnp.sum(sol.ys**2) + jnp.sum(jnp.sin(sol.y1))

    return loss


@pytest.mark.parametrize("cls", ERK, ids=lambda c: c.__name__)
def test_solve_fixed_symplectic_equals_autodiff_every_tableau(cls):
    term, args, y0 = _field()
    solver = cls()
    assert erk_tableau(solver) is not None
    ga = eqx.filter_grad(_fixed_loss(term, solver, "autodiff"))((args, y0))
    gs = eqx.filter_grad(_fixed_loss(term, solver, "symplectic"))((args, y0))
    assert _rel(gs, ga) <= 1e-10
    # and the diffrax reference: autodiff through diffeqsolve with constant steps
    ts = 0.05 * jnp.arange(10.0, 41.0, 10.0)

    def ref(a):
        sol = diffrax.diffeqsolve(term, solver, 0.0, 2.0, 0.05, a[1], a[0],
                                  saveat=diffrax.SaveAt(ts=ts), max_steps=40)  # fmt: skip
        return jnp.sum(a[1] ** 2) + jnp.sum(sol.ys**2) + jnp.sum(jnp.sin(sol.ys[-1]))

    assert _rel(gs, eqx.filter_grad(ref)((args, y0))) <= 1e-10


@pytest.mark.parametrize("cls", ADAPTIVE, ids=lambda c: c.__name__)
def test_symplectic_adjoint_in_diffeqsolve_adaptive_with_dense_output(cls):
    """Adaptive steps (the accepted steps replayed: diffrax's controller does not
    differentiate the step size) and `SaveAt(ts=...)` read from the dense output, which the
    partner step differentiates too."""
    term, args, y0 = _field()
    ts = jnp.linspace(0.1, 2.0, 7)

    def loss(a, adjoint):
        sol = diffrax.diffeqsolve(term, cls(), 0.0, 2.0, 0.05, a[1], a[0], adjoint=adjoint,
                                  saveat=diffrax.SaveAt(ts=ts), max_steps=2000,
                                  stepsize_controller=diffrax.PIDController(rtol=1e-6,
                                                                            atol=1e-6))  # fmt: skip
        return jnp.sum(sol.ys**2) + jnp.sum(jnp.sin(sol.ys[-1]))

    r = sc.adjoint_consistency(loss, (args, y0), si.SymplecticAdjoint(),
                               reference=diffrax.RecursiveCheckpointAdjoint())  # fmt: skip
    assert r.discrete <= 1e-10, r


def test_symplectic_adjoint_diffeqsolve_values_unchanged_and_other_solvers_pass_through():
    term, args, y0 = _field()
    pid = diffrax.PIDController(rtol=1e-5, atol=1e-5)
    cases = [(diffrax.Dopri5(), pid), (diffrax.Euler(), diffrax.ConstantStepSize()),
             (diffrax.Kvaerno3(), pid)]  # fmt: skip
    for solver, ctrl in cases:
        kw = dict(stepsize_controller=ctrl, max_steps=4000)
        a = diffrax.diffeqsolve(term, solver, 0.0, 1.0, 0.05, y0, args,
                                adjoint=si.SymplecticAdjoint(), **kw).ys  # fmt: skip
        b = diffrax.diffeqsolve(term, solver, 0.0, 1.0, 0.05, y0, args, **kw).ys
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize(
    "solver", [si.VelocityVerlet(), si.McAte4(), si.BlanesMoan6()], ids=lambda s: type(s).__name__
)
def test_solve_fixed_symplectic_structjax_splittings(solver):
    import structjax.problems as sp

    pb = sp.kepler(eccentricity=0.5)

    def loss(y0, adjoint):
        sol = si.solve_fixed(pb.terms, solver, y0, dt=0.02, num_steps=200, adjoint=adjoint,
                             save_every=50)  # fmt: skip
        return sum(jnp.sum(jnp.sin(y) ** 2) for y in sol.ys)

    g = jax.grad(loss)(pb.y0, "symplectic")
    assert _rel(g, jax.grad(loss)(pb.y0, "autodiff")) <= 1e-10
    assert _rel(g, jax.grad(loss)(pb.y0, "reversible")) <= 1e-10


def test_solve_fixed_symplectic_lie_group_methods():
    import structjax.problems as sp

    pb = sp.free_rigid_body()
    for solver in (si.RKMK(4), si.CrouchGrossman3()):

        def loss(y0, adjoint, solver=solver):
            y1 = si.solve_fixed(pb.lie_term, solver, y0, dt=0.05, num_steps=60,
                                adjoint=adjoint).y1  # fmt: skip
            return sum(jnp.sum(jnp.cos(y)) for y in jax.tree.leaves(y1))

        ga, gs = jax.grad(loss)(pb.y0, "autodiff"), jax.grad(loss)(pb.y0, "symplectic")
        assert _rel(gs, ga) <= 1e-10


def test_symplectic_refusals_name_the_call():
    term, args, y0 = _field()
    with pytest.raises(ValueError, match="adjoint='symplectic'.*GaussLegendre"):
        si.solve_fixed(term, si.GaussLegendre(2), y0, dt=0.1, num_steps=3, args=args,
                       adjoint="symplectic")  # fmt: skip
    pair = si.separable_terms(lambda p, a: jnp.sum(p**2), lambda q, a: jnp.sum(q**2))
    with pytest.raises(ValueError, match="needs one term"):
        si.solve_fixed(pair, diffrax.Tsit5(), (y0, y0), dt=0.1, num_steps=3,
                       adjoint="symplectic")  # fmt: skip
    with pytest.raises(ValueError, match="'autodiff', 'reversible' or 'symplectic'"):
        si.solve_fixed(term, diffrax.Tsit5(), y0, dt=0.1, num_steps=3, adjoint="backsolve")
    # t0 and dt are not differentiated by it: asking is an error, never a zero gradient
    f = lambda dt: jnp.sum(si.solve_fixed(term, diffrax.Heun(), y0, dt=dt, num_steps=3,  # noqa: E731
                                          args=args, adjoint="symplectic").y1)  # fmt: skip
    with pytest.raises(Exception, match="cannot be autodifferentiated"):
        jax.grad(f)(jnp.asarray(0.1))
    # the refusals hold under jit as well
    with pytest.raises(ValueError, match="GaussLegendre"):
        jax.jit(lambda y: si.solve_fixed(term, si.GaussLegendre(2), y, dt=0.1, num_steps=3,
                                         args=args, adjoint="symplectic").y1)(y0)  # fmt: skip


def test_symplectic_under_jit_vmap_and_float32_without_recompiling():
    term, args, y0 = _field()
    loss = _fixed_loss(term, diffrax.Tsit5(), "symplectic")
    grad = eqx.filter_jit(eqx.filter_grad(loss))
    g1 = grad((args, y0))
    g2 = grad((args, y0 + 0.1))
    assert grad._cached._cache_size() == 1  # pyright: ignore
    assert _rel(g1, g2) > 1e-6  # a different point, a different gradient
    # vmap over a batch of initial states (gradient per member) against a loop
    ys = jnp.stack([y0, 0.5 * y0, -y0])
    gv = jax.vmap(lambda y: eqx.filter_grad(loss)((args, y))[1])(ys)
    for i in range(3):
        np.testing.assert_allclose(gv[i], eqx.filter_grad(loss)((args, ys[i]))[1], rtol=1e-10)
    # float32: agrees with float32 autodiff to its precision
    term32, args32, y32 = _field(jnp.float32)
    gs = eqx.filter_grad(_fixed_loss(term32, diffrax.Dopri5(), "symplectic"))((args32, y32))
    ga = eqx.filter_grad(_fixed_loss(term32, diffrax.Dopri5(), "autodiff"))((args32, y32))
    assert _rel(gs, ga) <= 1e-5


def test_symplectic_holds_one_stage_of_activations():
    """The point of the method: the compiled gradient of a wide vector field through Dopri8
    (13 stages) needs less temporary memory than autodiff through the same solve."""
    mlp = eqx.nn.MLP(8, 8, 512, 2, activation=jnp.tanh, key=jax.random.key(1))
    term = diffrax.ODETerm(lambda t, y, m: m(y))
    y0 = jnp.ones((64, 8)) * 0.1

    def temp(adjoint):
        def loss(m):
            f = jax.vmap(
                lambda y: (
                    si.solve_fixed(
                        term, diffrax.Dopri8(), y, dt=0.1, num_steps=10, args=m, adjoint=adjoint
                    ).y1
                )
            )
            return jnp.sum(f(y0) ** 2)  # fmt: skip

        diff, static = eqx.partition(mlp, eqx.is_inexact_array)
        g = jax.jit(jax.grad(lambda d: loss(eqx.combine(d, static))))
        return g.lower(diff).compile().memory_analysis().temp_size_in_bytes

    assert temp("symplectic") < 0.5 * temp("autodiff")


def test_symplectic_adjoint_keeps_every_save_at_step_ends():
    """diffrax 0.7.2's checkpointed recomputation puts a constant step's end 1 ulp off the
    forward pass's, so with `SaveAt(ts)` at step ends a save can be skipped on the way back
    (with 6 or 13 checkpoints of 20 steps, row 6 or 13 of d ys / d a comes out 0).
    `SymplecticAdjoint` computes the step times alike in both loops: every row is right."""
    n, dt = 20, 0.01
    term = diffrax.ODETerm(lambda t, y, a: -a * y)

    def ys(a, adjoint):
        return diffrax.diffeqsolve(term, diffrax.Heun(), 0.0, n * dt, dt, jnp.asarray(1.0), a,
                                   saveat=diffrax.SaveAt(ts=dt * np.arange(1, n + 1)),
                                   adjoint=adjoint, max_steps=n).ys  # fmt: skip

    ref = jax.jacrev(ys)(1.3, diffrax.DirectAdjoint())
    for k in (6, 13):
        jac = jax.jacrev(ys)(1.3, si.SymplecticAdjoint(checkpoints=k))
        np.testing.assert_allclose(jac, ref, rtol=1e-12)


@pytest.mark.parametrize(
    "n,save_every,checkpoints",
    [(40, 10, None), (37, None, None), (36, 4, 5), (40, 1, 7), (12, 3, 12), (9, None, 1)],
)
def test_symplectic_checkpointed_segments_equal_autodiff(n, save_every, checkpoints):
    """Segments of ceil(n / checkpoints) steps recomputed on the way back, the last one
    padded (37 and 36 steps), saves inside and across segments: the gradient is still
    autodiff's, alone and over a vmapped batch."""
    term, args, y0 = _field()

    def loss(a, adjoint):
        a_args, y = a
        cp = checkpoints if adjoint == "symplectic" else None
        sol = si.solve_fixed(term, diffrax.Bosh3(), y, dt=0.03, num_steps=n, args=a_args,
                             save_every=save_every, adjoint=adjoint, checkpoints=cp)  # fmt: skip
        out = jnp.sum(jnp.sin(sol.y1))
        return out if sol.ys is None else out + jnp.sum(sol.ys**2)

    ga = eqx.filter_grad(loss)((args, y0), "autodiff")
    gs = eqx.filter_grad(loss)((args, y0), "symplectic")
    assert _rel(gs, ga) <= 1e-10
    ys = jnp.stack([y0, -0.5 * y0])

    def batch(a_args, adjoint):
        return jnp.sum(jax.vmap(lambda y: loss((a_args, y), adjoint))(ys))

    assert _rel(eqx.filter_grad(batch)(args, "symplectic"),
                eqx.filter_grad(batch)(args, "autodiff")) <= 1e-10  # fmt: skip


def test_symplectic_memory_is_sublinear_in_steps():
    """sqrt(n) kept states by default: from 40 to 4000 steps the compiled gradient's
    temporary memory grows by about 2 x (63 - 7) states, under a tenth of what keeping every
    state (Matsubara et al.'s original, `checkpoints=n`) adds."""
    term, args, y0 = _field()

    def temp(n, adjoint, checkpoints=None):
        def loss(a):
            sol = si.solve_fixed(term, diffrax.Tsit5(), a[1], dt=1.0 / n, num_steps=n,
                                 args=a[0], adjoint=adjoint, checkpoints=checkpoints)  # fmt: skip
            return jnp.sum(sol.y1**2)

        diff, static = eqx.partition((args, y0), eqx.is_inexact_array)
        g = jax.jit(jax.grad(lambda d: loss(eqx.combine(d, static))))
        return g.lower(diff).compile().memory_analysis().temp_size_in_bytes

    grown = temp(4000, "symplectic") - temp(40, "symplectic")
    grown_all = temp(4000, "symplectic", 4000) - temp(40, "symplectic", 40)
    assert grown_all >= 3960 * 3 * 8  # every state, 3 float64 each
    assert grown <= 0.1 * grown_all


def test_checkpoints_refusals_under_jit_too():
    term, args, y0 = _field()
    for bad, error in ((0, ValueError), (-3, ValueError), (2.0, TypeError), (True, TypeError)):
        with pytest.raises(error, match=r"checkpoints"):
            si.solve_fixed(term, diffrax.Heun(), y0, dt=0.1, num_steps=4, args=args,
                           adjoint="symplectic", checkpoints=bad)  # fmt: skip
    with pytest.raises(ValueError, match="adjoint='autodiff'"):
        jax.jit(lambda y: si.solve_fixed(term, diffrax.Heun(), y, dt=0.1, num_steps=4,
                                         args=args, checkpoints=2).y1)(y0)  # fmt: skip


# --- ReversibleRK ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [diffrax.Euler, diffrax.Heun, diffrax.Tsit5, diffrax.Dopri5],
                         ids=lambda c: c.__name__)  # fmt: skip
def test_reversible_rk_inverts_and_its_gradient_equals_autodiff(cls):
    term, args, y0 = _field()
    rk = si.ReversibleRK(cls())
    pair = (y0, y0 + 0.01)
    back = rk.pair_inverse(term, 0.3, 0.05, rk.pair_step(term, 0.3, 0.05, pair, args), args)
    np.testing.assert_allclose(back[0], pair[0], atol=1e-14)
    np.testing.assert_allclose(back[1], pair[1], atol=1e-14)
    ga = eqx.filter_grad(_fixed_loss(term, rk, "autodiff", n=200, dt=0.01))((args, y0))
    gr = eqx.filter_grad(_fixed_loss(term, rk, "reversible", n=200, dt=0.01))((args, y0))
    gs = eqx.filter_grad(_fixed_loss(term, rk, "symplectic", n=200, dt=0.01))((args, y0))
    assert _rel(gr, ga) <= 1e-10
    assert _rel(gs, ga) <= 1e-10


@pytest.mark.parametrize("cls,order", [(diffrax.Heun, 2), (diffrax.Bosh3, 3), (diffrax.Tsit5, 5)],
                         ids=lambda c: getattr(c, "__name__", str(c)))  # fmt: skip
def test_reversible_rk_keeps_the_base_order(cls, order):
    term = diffrax.ODETerm(lambda t, y, a: jnp.stack([y[1], -jnp.sin(y[0])]) * (1 + 0.1 * t))
    y0 = jnp.asarray([1.0, 0.0])
    ref = diffrax.diffeqsolve(
        term,
        diffrax.Dopri8(),
        0.0,
        2.0,
        1e-3,
        y0,
        max_steps=4000,
        stepsize_controller=diffrax.PIDController(rtol=1e-13, atol=1e-13),
    ).ys[-1]
    errs = [float(jnp.max(jnp.abs(si.solve_fixed(term, si.ReversibleRK(cls()), y0,
                                                  dt=2.0 / n, num_steps=n).y1 - ref)))
            for n in (16, 32, 64)]  # fmt: skip
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(rates > order - 0.3), rates  # (Tsit5 measures 5.5-5.7 here)


def test_reversible_rk_in_diffeqsolve_matches_solve_fixed_and_refusals():
    term, args, y0 = _field()
    rk = si.ReversibleRK(diffrax.Tsit5(), coupling=0.9)
    a = diffrax.diffeqsolve(term, rk, 0.0, 1.0, 0.05, y0, args, max_steps=40).ys[-1]
    b = si.solve_fixed(term, rk, y0, dt=0.05, num_steps=20, args=args).y1
    np.testing.assert_allclose(a, b, rtol=1e-13)
    with pytest.raises(ValueError, match="coupling"):
        si.ReversibleRK(diffrax.Tsit5(), coupling=0.0)
    with pytest.raises(ValueError, match="coupling"):
        si.ReversibleRK(diffrax.Tsit5(), coupling=float("nan"))
    with pytest.raises(ValueError, match="explicit diffrax solver"):
        si.ReversibleRK(diffrax.Kvaerno3())


def test_reversible_rk_memory_is_flat_in_steps():
    term, args, y0 = _field()
    rk = si.ReversibleRK(diffrax.Tsit5())

    def temp(n, adjoint):
        loss = _fixed_loss(term, rk, adjoint, n=n, dt=1.0 / n)
        diff, static = eqx.partition((args, y0), eqx.is_inexact_array)
        g = jax.jit(jax.grad(lambda d: loss(eqx.combine(d, static))))
        return g.lower(diff).compile().memory_analysis().temp_size_in_bytes

    assert temp(4000, "reversible") <= 1.5 * temp(40, "reversible")
    assert temp(4000, "autodiff") > 5 * temp(40, "autodiff")  # what it saves


def test_reversible_reconstruction_restarts_at_saves_and_checkpoints():
    """With coupling 0.8 the inverse divides by 0.8 each step, so rounding grows like
    1.25^n along a reconstruction: over 200 steps (1.25^200 = 4e19) the gradient from the
    final state alone is lost; restarting from stored states every 10 steps (saves or
    `checkpoints`) keeps it at autodiff's to 1e-10."""
    term, args, y0 = _field()
    rk = si.ReversibleRK(diffrax.Heun(), coupling=0.8)

    def loss(a, adjoint, save_every=None, checkpoints=None):
        sol = si.solve_fixed(term, rk, a[1], dt=0.01, num_steps=200, args=a[0],
                             adjoint=adjoint, save_every=save_every,
                             checkpoints=checkpoints)  # fmt: skip
        return jnp.sum(jnp.sin(sol.y1))

    ga = eqx.filter_grad(loss)((args, y0), "autodiff")
    g_final = eqx.filter_grad(loss)((args, y0), "reversible")
    g_saves = eqx.filter_grad(loss)((args, y0), "reversible", 10)
    g_cp = eqx.filter_grad(loss)((args, y0), "reversible", None, 20)
    assert not _rel(g_final, ga) <= 1e-3  # (or not finite): what the restarts fix
    assert _rel(g_saves, ga) <= 1e-10
    assert _rel(g_cp, ga) <= 1e-10


# --- the certificate -------------------------------------------------------------------------


def test_adjoint_consistency_separates_exact_from_backsolve():
    term = diffrax.ODETerm(lambda t, y, a: -a * y + jnp.sin(3 * t))
    y0 = jnp.ones(2)

    def loss(a, adjoint):
        sol = diffrax.diffeqsolve(term, diffrax.Tsit5(), 0.0, 5.0, 0.1, y0, a, adjoint=adjoint,
                                  stepsize_controller=diffrax.PIDController(rtol=1e-4,
                                                                            atol=1e-4))  # fmt: skip
        return jnp.sum(sol.ys**2)

    def fine(a):
        sol = diffrax.diffeqsolve(term, diffrax.Dopri8(), 0.0, 5.0, 0.01, y0, a, max_steps=8192,
                                  stepsize_controller=diffrax.PIDController(
                                      rtol=1e-12, atol=1e-12))  # fmt: skip
        return jnp.sum(sol.ys**2)

    rca = diffrax.RecursiveCheckpointAdjoint()
    exact = sc.adjoint_consistency(loss, jnp.asarray(0.7), si.SymplecticAdjoint(), reference=rca,
                                   fine=fine)  # fmt: skip
    back = sc.adjoint_consistency(loss, jnp.asarray(0.7), diffrax.BacksolveAdjoint(),
                                  reference=rca, fine=fine)  # fmt: skip
    assert exact.discrete <= 1e-12
    assert back.discrete > 1e-4  # the continuous adjoint solved backwards: not the same
    assert exact.continuous is not None and 1e-8 < exact.continuous < 1e-2
    with pytest.raises(TypeError, match="loss"):
        sc.adjoint_consistency(1.0, jnp.asarray(0.7), "autodiff")  # pyright: ignore
