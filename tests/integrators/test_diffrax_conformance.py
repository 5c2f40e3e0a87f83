"""diffrax conformance of every structjax splitting solver, in the patterns of diffrax's own
v0.7.2 test suite (`test_integrate.test_reverse_time`, `test_solver.test_everything_pytree`,
`test_integrate.test_basic` with complex states, `test_integrate.test_semi_implicit_euler`),
run under strict dtype promotion as diffrax runs them: reverse time with dense output and
derivatives against the exact solution, complex states, pytree-valued controls, a vector
field that is only `prod`-compatible with the state, and events located on the dense output.
`diffrax.SemiImplicitEuler` passes each of these patterns; so must every splitting.

Each solver is checked in one compiled program per test (several solves inside one `jit`).
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest

import structjax.integrators as si

from ..helpers import METHODS

# diffrax warns on every complex state ("work in progress"); its own tests expect the warning.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Complex dtype support in Diffrax"),
    pytest.mark.filterwarnings("ignore:Complex support in Optimistix"),
]

GAMMA = 0.3
# Every splitting solver: the named methods, the compositions, and conformal lifts (of a
# general table, of an RKN table and of a scanned composition).
SOLVERS = METHODS | {
    "conformal(VelocityVerlet)": lambda: si.conformal(si.VelocityVerlet(), GAMMA),
    "conformal(McAte4)": lambda: si.conformal(si.McAte4(), GAMMA),
    "conformal(KahanLi8)": lambda: si.conformal(si.KahanLi8(), GAMMA),
    "ExplicitSplitting(Ruth3, unroll)": lambda: si.ExplicitSplitting(si.Ruth3.tableau, "unroll"),
}
PARAMS = dict(argvalues=SOLVERS.values(), ids=SOLVERS.keys())

# The oscillator q' = p, p' = -q - gamma p as diffrax terms.
TERM_Q = diffrax.ODETerm(lambda t, p, args: p)


def _term_p(gamma):
    # The conformal solvers add the damping themselves: their term_p is the force alone.
    return diffrax.ODETerm(lambda t, q, args: -q)


def _damping(solver) -> float:
    return float(solver.damping) if isinstance(solver, si.ConformalSplitting) else 0.0


def _exact(t, gamma, y0=(1.0, 0.0)):
    """(q, p, dq/dt, dp/dt) at times `t` of the damped oscillator through `y0` at t = 0,
    in NumPy: $y(t) = V e^{\\Lambda t} V^{-1} y_0$ (distinct eigenvalues for gamma < 2)."""
    a = np.array([[0.0, 1.0], [-1.0, -gamma]])
    lam, v = np.linalg.eig(a)
    c = np.linalg.solve(v, np.asarray(y0, np.float64))
    ts = np.atleast_1d(np.asarray(t, np.float64))
    y = np.real((v[None] * (c * np.exp(lam * ts[:, None]))[:, None, :]).sum(-1))
    dy = y @ a.T
    return y[:, 0], y[:, 1], dy[:, 0], dy[:, 1]


def _hermite_bound(node_error, h, derivative: bool):
    """What a cubic Hermite interpolant with node values and slopes off by `node_error` (the
    vector field is 1-Lipschitz here) may miss by: the perturbation plus the interpolation
    error h^4/384 max|y''''| (h^3/(72 sqrt 3) for the derivative), |y''''| <= 1 here."""
    if derivative:
        return 3.0 * node_error / h + 2.0 * node_error + 1.5 * h**3 / (72 * np.sqrt(3))
    return 1.5 * node_error + 1.5 * h**4 / 384


class _PytreeControlTerm(diffrax.AbstractTerm):
    """diffrax's `test_everything_pytree` term, made harder: the vector field is `{"f": ...}`
    of shape `(2, n)` for a state `{"y": ...}` of shape `(n,)`, the control is `{"t": dt}`, and
    only `prod` maps them onto the state (the rows are summed)."""

    coeff: float

    def vf(self, t, y, args):
        half = 0.5 * self.coeff * y["y"]
        return {"f": jnp.stack([half, half])}

    def contr(self, t0, t1, **kwargs):
        return {"t": t1 - t0}

    def prod(self, vf, control):
        return {"y": jnp.sum(vf["f"], axis=0) * control["t"].astype(vf["f"].dtype)}


class _ProdOnlyTerm(diffrax.AbstractTerm):
    """The same vector field with a scalar (time) control, as a damped method needs."""

    coeff: float

    def vf(self, t, y, args):
        half = 0.5 * self.coeff * y["y"]
        return {"f": jnp.stack([half, half])}

    def contr(self, t0, t1, **kwargs):
        return t1 - t0

    def prod(self, vf, control):
        return {"y": jnp.sum(vf["f"], axis=0) * control.astype(vf["f"].dtype)}


def _terms_for(solver):
    """The terms of the conformance problem: a pytree control where the solver accepts one
    (a damped method needs a time increment), a `prod`-only vector field everywhere."""
    cls = _ProdOnlyTerm if isinstance(solver, si.ConformalSplitting) else _PytreeControlTerm
    return cls(1.0), cls(-1.0)


def _complex(re, im):
    return jax.lax.complex(jnp.asarray(re, jnp.float64), jnp.asarray(im, jnp.float64))


@pytest.mark.parametrize("make", **PARAMS)
def test_reverse_time_complex_pytree_control_dense_output(make):
    """One `diffeqsolve` per solver in the patterns of diffrax's `test_reverse_time`,
    `test_everything_pytree` and `test_basic` (complex states, strict promotion) at once:
    from t = 1 back to t = 0 (dt0 = -0.1) on a complex state `{"y": ...}`, with a pytree
    control and a vector field that is only `prod`-compatible with the state.

    - The steps are, to rounding, the method's own steps of length -h on plain `ODETerm`s,
      applied to the real and imaginary parts (the system is real-linear);
    - the dense output passes through the steps with slopes equal to the vector field there
      (`sol.derivative` is dy/dt, not dy/ds of diffrax's internal reversed time);
    - between steps `sol.evaluate` and `sol.derivative` are within the cubic Hermite bound
      of the exact solution.

    (Before issue 21: the slopes were h * vf, wrong in sign backwards, 0.44 off in dq/dt;
    the complex state failed with a TypePromotionError, the pytree control with
    "Cannot determine dtype", and the RKN guard called this linear term "not linear in p".)
    """
    solver = make()
    gamma = _damping(solver)
    h, n, probe = 0.1, 10, jnp.array([0.05, 0.45, 0.72, 0.98])
    q1 = np.stack([np.asarray(x) for x in _exact(1.0, gamma, (1.0, 0.0))[:2]])[:, 0]
    p1 = np.stack([np.asarray(x) for x in _exact(1.0, gamma, (0.2, -0.5))[:2]])[:, 0]
    # y(1) = (q, p) with q = q1[0] + i p1[0], p = q1[1] + i p1[1]: two real solutions combined.
    y1 = ({"y": _complex([q1[0]], [p1[0]])}, {"y": _complex([q1[1]], [p1[1]])})
    plain = (TERM_Q, _term_p(gamma))

    @jax.jit
    def run():
        sol = diffrax.diffeqsolve(
            _terms_for(solver), solver, 1.0, 0.0, -h, y1,
            saveat=diffrax.SaveAt(steps=True, dense=True), max_steps=16,
        )  # fmt: skip

        def step(y, k):
            t = 1.0 - h * k
            y = jax.vmap(lambda y_: solver.one_step(plain, t, -h, y_))(y)
            return y, y

        start = (jnp.array([[q1[0]], [p1[0]]]), jnp.array([[q1[1]], [p1[1]]]))
        _, ref = jax.lax.scan(step, start, jnp.arange(n, dtype=jnp.float64))
        unpack = lambda y: (y[0]["y"], y[1]["y"])  # noqa: E731
        return dict(
            ts=sol.ts, ys=unpack(sol.ys), ref=ref,
            at_nodes=unpack(jax.vmap(sol.evaluate)(sol.ts[:n])),
            slope_nodes=unpack(jax.vmap(sol.derivative)(sol.ts[:n])),
            value=unpack(jax.vmap(sol.evaluate)(probe)),
            slope=unpack(jax.vmap(sol.derivative)(probe)),
        )  # fmt: skip

    out = jax.tree_util.tree_map(np.asarray, run())
    ts = out["ts"][:n]
    assert np.allclose(ts, np.linspace(0.9, 0.0, n), atol=1e-12) and np.all(np.isinf(out["ts"][n:]))
    q, p = (y[:n, 0] for y in out["ys"])
    assert q.dtype == np.complex128 and p.dtype == np.complex128
    ref_q = out["ref"][0][:, 0, 0] + 1j * out["ref"][0][:, 1, 0]
    ref_p = out["ref"][1][:, 0, 0] + 1j * out["ref"][1][:, 1, 0]
    assert np.allclose(q, ref_q, rtol=1e-13, atol=1e-13), np.max(np.abs(q - ref_q))
    assert np.allclose(p, ref_p, rtol=1e-13, atol=1e-13), np.max(np.abs(p - ref_p))
    # Through the steps, with the vector field there as slope.
    assert np.allclose(out["at_nodes"][0][:, 0], q, atol=1e-13)
    assert np.allclose(out["at_nodes"][1][:, 0], p, atol=1e-13)
    assert np.allclose(out["slope_nodes"][0][:, 0], p, rtol=1e-12, atol=1e-12)
    assert np.allclose(out["slope_nodes"][1][:, 0], -q - gamma * p, rtol=1e-12, atol=1e-12)

    def exact(t):
        a = _exact(t, gamma, (1.0, 0.0))
        b = _exact(t, gamma, (0.2, -0.5))
        return [np.asarray(x) + 1j * np.asarray(y) for x, y in zip(a, b)]

    q_ex, p_ex, _, _ = exact(ts)
    nodes = max(np.max(np.abs(q - q_ex)), np.max(np.abs(p - p_ex)))
    q_pr, p_pr, dq_pr, dp_pr = exact(probe)
    value_err = max(
        np.max(np.abs(out["value"][0][:, 0] - q_pr)), np.max(np.abs(out["value"][1][:, 0] - p_pr))
    )
    slope_err = max(
        np.max(np.abs(out["slope"][0][:, 0] - dq_pr)), np.max(np.abs(out["slope"][1][:, 0] - dp_pr))
    )
    assert value_err < _hermite_bound(nodes, h, False), (value_err, nodes)
    assert slope_err < _hermite_bound(nodes, h, True), (slope_err, nodes)


@pytest.mark.parametrize("make", [si.VelocityVerlet, si.KahanLi8])
def test_reverse_time_mirrors_forward_time(make):
    """diffrax's `test_reverse_time` exactly: integrating f from t = 1 back to 0 is
    integrating g(t, y) = -f(-t, y) from -1 to 0; `SaveAt(ts)`, `evaluate` and `derivative`
    agree to rounding (derivatives with opposite signs), as for `diffrax.SemiImplicitEuler`."""
    solver = make()
    y1 = tuple(x[0] for x in _exact(1.0, 0.0)[:2])
    probe = jnp.array([0.05, 0.45, 0.72, 0.98])
    reversed_terms = (diffrax.ODETerm(lambda t, p, a: -p), diffrax.ODETerm(lambda t, q, a: q))

    @jax.jit
    def run():
        saveat = diffrax.SaveAt(ts=probe[::-1], dense=True)
        back = diffrax.diffeqsolve((TERM_Q, _term_p(0.0)), solver, 1.0, 0.0, -0.1, y1,
                                   saveat=saveat)  # fmt: skip
        saveat = diffrax.SaveAt(ts=-probe[::-1], dense=True)
        fwd = diffrax.diffeqsolve(reversed_terms, solver, -1.0, 0.0, 0.1, y1, saveat=saveat)
        return (
            back.ys, jax.vmap(back.evaluate)(probe), jax.vmap(back.derivative)(probe),
            fwd.ys, jax.vmap(fwd.evaluate)(-probe), jax.vmap(fwd.derivative)(-probe),
        )  # fmt: skip

    saved, value, slope, saved_m, value_m, slope_m = run()
    for a, b in zip(saved, saved_m):
        assert np.allclose(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(value, value_m):
        assert np.allclose(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(slope, slope_m):
        assert np.allclose(a, -b, rtol=1e-12, atol=1e-12)
    for a, b in zip(saved, value):  # SaveAt(ts) is the dense output, in the order asked
        assert np.allclose(a[::-1], b, rtol=1e-13, atol=1e-13)
    q, p = (np.asarray(x) for x in _exact(probe, 0.0)[:2])
    tol = 0.1 if solver.order(None) == 1 else 2e-3
    assert np.max(np.abs(value[0] - q)) < tol and np.max(np.abs(slope[0] - p)) < 3 * tol


def test_reverse_time_example_of_the_issue():
    """The case the issue measured: VelocityVerlet and KahanLi8 at t = 0.45 backwards."""
    y1 = tuple(x[0] for x in _exact(1.0, 0.0)[:2])
    for solver, tol, dtol in ((si.VelocityVerlet(), 1e-3, 2e-2), (si.KahanLi8(), 1e-6, 1e-5)):
        sol = diffrax.diffeqsolve(
            (TERM_Q, _term_p(0.0)), solver, 1.0, 0.0, -0.1, y1, saveat=diffrax.SaveAt(dense=True)
        )
        assert abs(float(sol.evaluate(0.45)[0]) - np.cos(0.45)) < tol
        assert abs(float(sol.derivative(0.45)[0]) + np.sin(0.45)) < dtol  # was off by 0.44


def test_pytree_control_refused_by_a_damped_method():
    """The damping acts over `term_p`'s control, which must be a time increment."""
    terms = (_PytreeControlTerm(1.0), _PytreeControlTerm(-1.0))
    y0 = ({"y": jnp.array([1.0])}, {"y": jnp.array([0.0])})
    solver = si.conformal(si.VelocityVerlet(), 0.2)
    with pytest.raises(TypeError, match="scalar control"):
        diffrax.diffeqsolve(terms, solver, 0.0, 1.0, 0.1, y0)
    with pytest.raises(TypeError, match="scalar control"):
        si.solve_fixed(terms, solver, y0, dt=0.1, num_steps=2)


def test_complex_state_matches_semi_implicit_euler():
    """`SymplecticEuler` is `SemiImplicitEuler`'s map: on complex states too, step by step."""
    y0 = (jnp.array([1.0 + 1j]), jnp.array([0.5j]))
    terms = (TERM_Q, _term_p(0.0))
    a = diffrax.diffeqsolve(terms, si.SymplecticEuler(), 0.0, 1.0, 0.1, y0)
    b = diffrax.diffeqsolve(terms, diffrax.SemiImplicitEuler(), 0.0, 1.0, 0.1, y0)
    for x, y in zip(jtu.tree_leaves(a.ys), jtu.tree_leaves(b.ys)):
        assert x.dtype == jnp.complex128 and np.allclose(x, y, rtol=1e-14, atol=1e-14)


def test_semi_implicit_euler_pattern():
    """diffrax's `test_semi_implicit_euler`: Python-float states, integer times, against Tsit5,
    here with the order-8 method at a modest step."""
    term1 = diffrax.ODETerm(lambda t, y, args: -y)
    term2 = diffrax.ODETerm(lambda t, y, args: y)
    y0 = (1.0, -0.5)
    sol1 = diffrax.diffeqsolve((term1, term2), si.KahanLi8(), 0, 1, 0.05, y0)
    term = diffrax.ODETerm(lambda t, y, args: (-y[1], y[0]))
    sol2 = diffrax.diffeqsolve(
        term, diffrax.Tsit5(), 0, 1, 0.01, y0,
        stepsize_controller=diffrax.PIDController(rtol=1e-12, atol=1e-12),
    )  # fmt: skip
    for a, b in zip(sol1.ys, sol2.ys):
        assert np.allclose(a, b, rtol=1e-10, atol=1e-10)


def test_float32_complex64_and_integer_times():
    """diffrax's `test_basic` dtypes: complex64 states with float32 times stay complex64."""
    y0 = (jnp.array([1.0 + 0.5j], jnp.complex64), jnp.array([0.25j], jnp.complex64))
    t = jnp.float32
    for solver in (si.KahanLi8(), si.conformal(si.McAte42(), 0.1)):
        sol = diffrax.diffeqsolve((TERM_Q, _term_p(0.0)), solver, t(0), t(1), t(0.05), y0)
        assert all(x.dtype == jnp.complex64 for x in jtu.tree_leaves(sol.ys))
        ref = diffrax.diffeqsolve(
            (TERM_Q, _term_p(0.0)), solver, 0.0, 1.0, 0.05,
            jtu.tree_map(lambda x: x.astype(jnp.complex128), y0),
        )  # fmt: skip
        err = max(np.max(np.abs(np.asarray(a) - np.asarray(b))) for a, b in zip(sol.ys, ref.ys))
        assert err < 1e-5, err


class _ComplexForce(diffrax.AbstractTerm):
    """A force with complex values (diffrax's `ODETerm` itself refuses a complex vector field
    for a real state under strict promotion; a custom term does not)."""

    def vf(self, t, q, args):
        return jax.lax.complex(-q, q)

    def contr(self, t0, t1, **kwargs):
        return t1 - t0

    def prod(self, vf, control):
        return vf * control.astype(vf.dtype)


def test_complex_increment_for_a_real_state_is_refused():
    """Casting a complex increment onto a real state would drop its imaginary part."""
    terms = (TERM_Q, _ComplexForce())
    y0 = (jnp.array([1.0]), jnp.array([0.0]))
    for solver in (si.VelocityVerlet(), si.KahanLi8()):
        with pytest.raises(TypeError, match="complex increment for real"):
            diffrax.diffeqsolve(terms, solver, 0.0, 1.0, 0.1, y0)
        with pytest.raises(TypeError, match="complex increment for real"):
            si.solve_fixed(terms, solver, y0, dt=0.1, num_steps=2)


# --- vmap over y0, events located on the dense output ----------------------------------------


@pytest.mark.parametrize(
    "make",
    [si.McAte4, lambda: si.conformal(si.BlanesMoan6(), GAMMA)],
    ids=["McAte4", "conformal(BlanesMoan6)"],
)
def test_vmap_and_event_forward_and_backward(make):
    """diffrax's `test_vmap_y0` and `test_event` patterns: a batch of initial states solved
    under `vmap` equals the solves one by one, and the first zero of q, found by a root find
    on the dense output, is the exact one in both directions of time."""
    solver = make()
    gamma = _damping(solver)
    terms = (TERM_Q, _term_p(gamma))
    event = diffrax.Event(lambda t, y, args, **kw: jnp.sum(y[0]), root_finder=_newton())

    def first_zero(t0, t1, dt0, y0):
        sol = diffrax.diffeqsolve(terms, solver, t0, t1, dt0, y0, event=event)
        return sol.ts[0]

    @jax.jit
    def run(scale):
        y0 = (scale[:, None] * jnp.ones((3, 1)), jnp.zeros((3, 1)))
        batch = jax.vmap(lambda q, p: first_zero(0.0, 3.0, 0.05, (q, p)))(*y0)
        one = first_zero(0.0, 3.0, 0.05, (y0[0][1], y0[1][1]))
        back = first_zero(3.0, 0.0, -0.05, tuple(x[0] for x in _exact(3.0, gamma)[:2]))
        return batch, one, back

    batch, one, back = run(jnp.array([0.5, 1.0, 2.0]))
    # the zero of q for q(0) = 1, p(0) = 0: tan(w t) = -2w/gamma, w = sqrt(1 - gamma^2/4)
    w = np.sqrt(1 - gamma**2 / 4)
    exact = (np.pi - np.arctan(2 * w / gamma)) / w if gamma else np.pi / 2
    order = solver.order(terms)
    tol = 5e-2 if order <= 1 else 2e-3
    assert np.allclose(batch, exact, atol=tol) and np.allclose(batch, one, atol=1e-13)
    assert abs(float(back) - exact) < tol, (float(back), exact)


def _newton():
    import optimistix as optx

    return optx.Newton(rtol=1e-12, atol=1e-12)


def test_reverse_time_with_step_to_and_saveat_steps():
    """`StepTo` with decreasing times, and `SaveAt(steps=True)`, in reverse time: the same
    steps as the constant-step solve."""
    ts = jnp.linspace(1.0, 0.0, 11)
    y1 = tuple(x[0] for x in _exact(1.0, 0.0)[:2])
    terms = (TERM_Q, _term_p(0.0))
    a = diffrax.diffeqsolve(terms, si.BlanesMoan4(), 1.0, 0.0, None, y1,
                            stepsize_controller=diffrax.StepTo(ts),
                            saveat=diffrax.SaveAt(steps=True), max_steps=16)  # fmt: skip
    b = diffrax.diffeqsolve(terms, si.BlanesMoan4(), 1.0, 0.0, -0.1, y1,
                            saveat=diffrax.SaveAt(steps=True), max_steps=16)  # fmt: skip
    done = np.isfinite(np.asarray(a.ts))
    assert np.allclose(np.asarray(a.ts)[done], ts[1:], atol=1e-14)
    for x, y in zip(a.ys, b.ys):
        assert np.allclose(np.asarray(x)[done], np.asarray(y)[done], rtol=1e-12, atol=1e-12)


def test_no_retrace_in_reverse_time():
    """Reverse time under `jit` traces once for new values of y0 and dt0."""
    terms = (TERM_Q, _term_p(0.0))

    @jax.jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def run(y0, dt0):
        sol = diffrax.diffeqsolve(terms, si.KahanLi8(), 1.0, 0.0, dt0, y0,
                                  saveat=diffrax.SaveAt(ts=jnp.array([0.5])))  # fmt: skip
        return sol.ys

    run((jnp.array(1.0), jnp.array(0.0)), -0.1)
    run((jnp.array(0.5), jnp.array(0.1)), -0.05)


# --- the other structjax solvers: implicit, non-separable, Lie-group, constrained ------------

_J = jnp.array([[0.0, 1.0], [-1.0, 0.0]])


def _oscillator_one_term(sign):
    return diffrax.ODETerm(lambda t, y, args: (sign * y[1], -sign * y[0]))


def _pendulum(sign):
    """A unit pendulum q in R^2 on |q| = 1 under gravity (sign -1: the time-mirrored field)."""
    return (
        diffrax.ODETerm(lambda t, p, args: sign * p),
        diffrax.ODETerm(lambda t, q, args: sign * jnp.array([0.0, -1.0])),
    )


def _circle(q, args):
    return jnp.sum(q**2, keepdims=True) - 1.0


# name: (solver, terms, mirrored terms, y(1), exact (q(t), dq/dt(t)) or None, value tolerance,
# derivative tolerance) on [0, 1] with h = 0.1. The oscillator's exact solution through
# y(1) = (cos 1, -sin 1) is q = cos t; the Lie-group problem is Y' = J Y, Y = expm(J t).
OTHER_SOLVERS = {
    "GaussLegendre(2)": lambda: (si.GaussLegendre(2), _oscillator_one_term(1), _oscillator_one_term(-1), 1e-6, 2e-5),
    "GaussLegendre(3)": lambda: (si.GaussLegendre(3), _oscillator_one_term(1), _oscillator_one_term(-1), 1e-6, 2e-5),
    "ImplicitMidpoint": lambda: (si.ImplicitMidpoint(), _oscillator_one_term(1), _oscillator_one_term(-1), 1e-3, 3e-3),
    "GeneralizedLeapfrog": lambda: (
        si.GeneralizedLeapfrog(),
        si.HamiltonianTerm(lambda q, p, a: 0.5 * (p**2 + q**2) + 0.1 * q**2 * p**2),
        si.HamiltonianTerm(lambda q, p, a: -(0.5 * (p**2 + q**2) + 0.1 * q**2 * p**2)),
        None, None,
    ),
    "RKMK(4)": lambda: (si.RKMK(4), diffrax.ODETerm(lambda t, y, a: _J), diffrax.ODETerm(lambda t, y, a: -_J), 2e-3, 3e-2),
    "CrouchGrossman3": lambda: (si.CrouchGrossman3(), diffrax.ODETerm(lambda t, y, a: _J), diffrax.ODETerm(lambda t, y, a: -_J), 2e-3, 3e-2),
}  # fmt: skip
# (RATTLE's mirrored problem has a negative mass, outside its contract: its reverse time is
# checked below by its symmetry instead.)


def _y1(name):
    if name.startswith(("RKMK", "Crouch")):
        return jax.scipy.linalg.expm(_J)
    return (jnp.array(np.cos(1.0)), jnp.array(-np.sin(1.0)))


@pytest.mark.parametrize("name", OTHER_SOLVERS)
def test_other_solvers_reverse_time(name):
    """diffrax's `test_reverse_time` for every structjax solver outside the splittings:
    integrating f from t = 1 back to 0 is integrating g(t, y) = -f(-t, y) from -1 to 0, the
    saved values, dense output and derivatives agree (derivatives with opposite signs), and,
    where the solution is known, the backward dense output is within the method's error of it.

    (Before: the Hermite slopes were h * f, wrong in sign backwards, and the implicit stage
    equations took h for the step where diffrax's negated time needs the control -h: a
    backward GaussLegendre(2) solve ended 1.42 off; GeneralizedLeapfrog and the Lie-group
    solvers refused every `diffeqsolve`, whose terms diffrax wraps.)"""
    solver, terms, mirrored, tol, dtol = OTHER_SOLVERS[name]()
    y1 = _y1(name)
    probe = jnp.array([0.05, 0.45, 0.72, 0.98])

    @jax.jit
    def run():
        saveat = diffrax.SaveAt(ts=probe[::-1], dense=True, t1=False)
        back = diffrax.diffeqsolve(terms, solver, 1.0, 0.0, -0.1, y1, saveat=saveat)
        saveat = diffrax.SaveAt(ts=-probe[::-1], dense=True)
        fwd = diffrax.diffeqsolve(mirrored, solver, -1.0, 0.0, 0.1, y1, saveat=saveat)
        return (
            back.ys, jax.vmap(back.evaluate)(probe), jax.vmap(back.derivative)(probe),
            fwd.ys, jax.vmap(fwd.evaluate)(-probe), jax.vmap(fwd.derivative)(-probe),
        )  # fmt: skip

    saved, value, slope, saved_m, value_m, slope_m = run()
    for a, b in zip(jtu.tree_leaves(saved), jtu.tree_leaves(saved_m)):
        assert np.allclose(a, b, rtol=1e-11, atol=1e-11)
    for a, b in zip(jtu.tree_leaves(value), jtu.tree_leaves(value_m)):
        assert np.allclose(a, b, rtol=1e-11, atol=1e-11)
    for a, b in zip(jtu.tree_leaves(slope), jtu.tree_leaves(slope_m)):
        assert np.allclose(a, -b, rtol=1e-10, atol=1e-10)
    for a, b in zip(jtu.tree_leaves(saved), jtu.tree_leaves(value)):
        assert np.allclose(np.asarray(a)[::-1], b, rtol=1e-12, atol=1e-12)
    if tol is None:
        return
    if name.startswith(("RKMK", "Crouch")):  # Y(t)[0, 0] = cos t, linear dense output
        q, dq = value[:, 0, 0], slope[:, 0, 0]
    else:
        q, dq = value[0], slope[0]
    assert np.max(np.abs(q - np.cos(probe))) < tol
    assert np.max(np.abs(dq + np.sin(probe))) < dtol


def test_rattle_reverse_time_retraces_the_forward_solve():
    """RATTLE is symmetric: a backward `diffeqsolve` from where a forward one ended retraces
    its steps to the start (to the root finder's tolerance), with the dense output's slopes
    the unconstrained field there, and stays on |q| = 1, q . p = 0."""
    a = 0.6
    y0 = (jnp.array([jnp.sin(a), -jnp.cos(a)]), 0.4 * jnp.array([jnp.cos(a), jnp.sin(a)]))
    solver, terms = si.Rattle(_circle), _pendulum(1)

    @jax.jit
    def run():
        fwd = diffrax.diffeqsolve(terms, solver, 0.0, 1.0, 0.1, y0,
                                  saveat=diffrax.SaveAt(steps=True), max_steps=16)  # fmt: skip
        y1 = jtu.tree_map(lambda x: x[9], fwd.ys)
        back = diffrax.diffeqsolve(terms, solver, 1.0, 0.0, -0.1, y1,
                                   saveat=diffrax.SaveAt(steps=True, dense=True),
                                   max_steps=16)  # fmt: skip
        ts = back.ts[:10]
        return fwd.ys, back.ys, jax.vmap(back.derivative)(ts)

    fwd, back, slope = (jtu.tree_map(np.asarray, x) for x in run())
    q, p = (x[:10] for x in back)
    assert np.allclose(q[-1], y0[0], atol=1e-12) and np.allclose(p[-1], y0[1], atol=1e-12)
    # The backward steps land on the forward ones, in reverse order.
    assert np.allclose(q[:-1], fwd[0][:9][::-1], atol=1e-12)
    assert np.allclose(slope[0], p, atol=1e-12)  # dq/dt = p, not its negative
    assert np.allclose(np.sum(q**2, axis=-1), 1.0, atol=1e-12)
    assert np.allclose(np.sum(q * p, axis=-1), 0.0, atol=1e-12)


class _PytreeControlOneTerm(diffrax.AbstractTerm):
    """`_PytreeControlTerm` for a one-term solver: the state `{"y": (q, p)}` of shape (2,),
    the field `{"f": ...}` of shape (2, 2) whose rows `prod` sums, the control `{"t": dt}`."""

    def vf(self, t, y, args):
        half = 0.5 * (_J.astype(y["y"].dtype) @ y["y"])
        return {"f": jnp.stack([half, half])}

    def contr(self, t0, t1, **kwargs):
        return {"t": t1 - t0}

    def prod(self, vf, control):
        return {"y": jnp.sum(vf["f"], axis=0) * control["t"].astype(vf["f"].dtype)}


@pytest.mark.parametrize("stages", [1, 2])
def test_implicit_pytree_control_complex_state_reverse_time(stages):
    """The Gauss–Legendre methods take any term: a pytree control, a field only
    `prod`-compatible with the state, a complex state under strict promotion, backward in
    time, equal step for step to the same solve with a plain `ODETerm` on real and imaginary
    parts (the system is real-linear), and through the exact solution."""
    solver = si.GaussLegendre(stages)
    a, b = np.array([np.cos(1.0), -np.sin(1.0)]), np.array([np.sin(1.0), np.cos(1.0)])
    y1 = {"y": _complex(a, b)}  # q = cos t + i sin t, p = -sin t + i cos t
    plain = diffrax.ODETerm(lambda t, y, args: _J @ y)

    @jax.jit
    def run():
        sol = diffrax.diffeqsolve(_PytreeControlOneTerm(), solver, 1.0, 0.0, -0.1, y1,
                                  saveat=diffrax.SaveAt(t1=True))  # fmt: skip
        re = diffrax.diffeqsolve(plain, solver, 1.0, 0.0, -0.1, jnp.asarray(a))
        im = diffrax.diffeqsolve(plain, solver, 1.0, 0.0, -0.1, jnp.asarray(b))
        return sol.ys["y"][0], re.ys[0], im.ys[0]

    y0, re, im = (np.asarray(x) for x in run())
    assert y0.dtype == np.complex128
    assert np.allclose(y0, re + 1j * im, rtol=1e-13, atol=1e-13)
    tol = 1e-3 if stages == 1 else 1e-7
    assert np.allclose(y0, [1.0, 1j], atol=tol), y0
