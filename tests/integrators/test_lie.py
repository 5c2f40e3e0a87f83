"""Lie-group integrators: orders 1 to 4, states on the group to rounding over 10^5 steps
where a plain RK method of the embedded ODE drifts, SO(3), SE(3), Stiefel, and errors."""

import diffrax
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import pytest

import structjax.integrators as si
from structjax.check import convergence_order, lie_group_error

from ..helpers import assert_refused, dopri8_reference

INERTIA = jnp.array([1.0, 2.0, 3.5])


def hat(w):
    return jnp.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])


def _rigid_body(t, y, args):
    """Free rigid body: y = (R^T, m), both moved by A = hat(-I^-1 m): (R^T)' = A R^T is the
    attitude, m' = m x I^-1 m = A m Euler's equations (body angular momentum)."""
    a = hat(-y[1][:, 0] / INERTIA)
    return a, a


RIGID = diffrax.ODETerm(_rigid_body)
Y0 = (jnp.eye(3), jnp.array([[0.3], [1.0], [-0.4]]))


def _embedded(vf):
    """The same ODE written in the embedding, for diffrax's RK methods."""
    return lambda t, y, a: jax.tree_util.tree_map(lambda m, v: m @ v, vf(t, y, a), y)


REFERENCE = dopri8_reference(_embedded(_rigid_body), Y0, 2.0)
METHODS = {
    "RKMK1": lambda: si.RKMK(1),
    "RKMK2": lambda: si.RKMK(2),
    "RKMK3": lambda: si.RKMK(3),
    "RKMK4": lambda: si.RKMK(4),
    "RKMK4-expm": lambda: si.RKMK(4, "expm"),
    "RKMK2-cayley": lambda: si.RKMK(2, "cayley"),
    "RKMK4-cayley": lambda: si.RKMK(4, "cayley"),
    "CrouchGrossman3": lambda: si.CrouchGrossman3(),
}


@pytest.mark.parametrize("make", METHODS.values(), ids=METHODS.keys())
def test_order(make):
    solver = make()
    run = jax.jit(lambda dt, n: si.solve_fixed(RIGID, solver, Y0, dt=dt, num_steps=n).y1,
                  static_argnums=1)  # fmt: skip
    order = solver.order(RIGID)
    ns = {1: [64, 128, 256], 2: [32, 64, 128], 3: [16, 32, 64], 4: [16, 32, 64]}[order]
    measured = convergence_order(lambda dt: run(dt, round(2 / dt)), [2 / n for n in ns],
                                 REFERENCE)  # fmt: skip
    assert abs(measured - order) < 0.3, measured


# Rounding still random-walks through the products: RKMK4 takes one exponential a step, CG3
# three, multiplied together before acting (measured after 10^5 steps: 6.6e-14, 2.0e-13).
@pytest.mark.parametrize("make, bound", [(lambda: si.RKMK(4), 1e-13),
                                         (lambda: si.CrouchGrossman3(), 3e-13)])  # fmt: skip
def test_rigid_body_stays_on_so3_for_1e5_steps_where_rk_drifts(make, bound):
    run = jax.jit(lambda y: si.solve_fixed(RIGID, make(), y, dt=0.05, num_steps=100_000).y1)
    rt, m = run(Y0)
    assert float(lie_group_error("SO", rt)) < bound
    assert abs(float(jnp.linalg.norm(m) - jnp.linalg.norm(Y0[1]))) < 1e-13  # on its sphere
    tsit = jax.jit(lambda y: si.solve_fixed(diffrax.ODETerm(_embedded(_rigid_body)),
                                            diffrax.Tsit5(), y, dt=0.05,
                                            num_steps=100_000).y1)(Y0)  # fmt: skip
    assert float(lie_group_error("SO", tsit[0])) > 1e-9  # the embedded RK solution drifts


@pytest.mark.parametrize("exp", ["expm", "cayley"])
@pytest.mark.parametrize("p", [2, 6])
def test_stiefel_and_so_n_isospectral_flow(exp, p):
    # Brockett's flow Y' = [C, Y Y^T] Y, [C, YY^T] skew, on St(6, 2) (acted on by SO(6)), and
    # Y' = (Y K Y^T - Y K^T Y^T) Y on SO(6) itself: Y stays on its manifold to rounding; on
    # St(6, 2) it converges to the dominant invariant subspace of C.
    c = jnp.diag(jnp.arange(1.0, 7.0))
    term = diffrax.ODETerm(lambda t, y, a: c @ y @ y.T - y @ y.T @ c)
    y0, _ = jnp.linalg.qr(jax.random.normal(jax.random.PRNGKey(0), (6, p)))
    if p == 6:  # on SO(6) Brockett's field vanishes (Y Y^T = I): a field that does not
        k = jax.random.normal(jax.random.PRNGKey(1), (6, 6))
        term = diffrax.ODETerm(lambda t, y, a: y @ k @ y.T - y @ k.T @ y.T)
        y0 = y0.at[:, 0].multiply(jnp.sign(jnp.linalg.det(y0)))  # det +1: a point of SO(6)
    group = "Stiefel" if p < 6 else "SO"
    y = si.solve_fixed(term, si.RKMK(4, exp, group=group), y0, dt=0.05, num_steps=10_000).y1
    # 6 x 6 exponentials (Padé or Cayley solves) round more than Rodrigues' 3 x 3 formula:
    # measured 8.6e-13 (SO(6)) and 4e-14 (St(6, 2)) after 10^4 steps.
    assert float(lie_group_error(group, y)) < (2e-12 if p == 6 else 1e-13)
    if p == 2:
        assert float(jnp.trace(y.T @ c @ y)) == pytest.approx(11.0, abs=1e-10)


def test_se3_kinematics():
    # A body screwing along with constant twist (in the spatial frame): g' = xi g.
    twist = (
        jnp.zeros((4, 4))
        .at[:3, :3]
        .set(hat(jnp.array([0.3, -0.2, 0.5])))
        .at[:3, 3]
        .set(jnp.array([1.0, 0.0, 0.5]))
    )
    term = diffrax.ODETerm(lambda t, g, a: twist * (1 + 0.5 * jnp.sin(t)))
    g = si.solve_fixed(term, si.RKMK(4, group="SE"), jnp.eye(4), dt=0.01, num_steps=10_000).y1
    assert float(lie_group_error("SE", g)) < 1e-13


def test_rodrigues_and_cayley_maps():
    w = hat(jnp.array([0.3, -1.2, 2.0]))
    assert float(jnp.max(jnp.abs(si.rodrigues(w) - jsl.expm(w)))) < 1e-14
    tiny = hat(jnp.array([1e-5, 2e-5, -1e-5]))
    assert float(jnp.max(jnp.abs(si.rodrigues(tiny) - jsl.expm(tiny)))) <= 2.3e-16
    jac = jax.jacfwd(lambda v: si.rodrigues(hat(v)))(jnp.zeros(3))
    assert np.all(np.isfinite(jac))
    assert float(lie_group_error("SO", si.cayley_map(w))) < 1e-14


def test_lie_group_error_certificate():
    reflection = jnp.diag(jnp.array([1.0, 1.0, -1.0]))
    assert float(lie_group_error("O", reflection)) < 1e-15
    assert float(lie_group_error("SO", reflection)) == pytest.approx(2.0)
    assert float(lie_group_error("SO", 1.01 * jnp.eye(3))) > 1e-2
    with pytest.raises(ValueError, match=r"`lie_group_error\(group, y\)` needs a group: .*'Sp'"):
        lie_group_error("Sp", jnp.eye(3))


def test_jit_vmap_grad_no_retrace():
    traces = []

    @jax.jit
    def final(m0):
        traces.append(1)
        y0 = (jnp.eye(3), m0)
        return si.solve_fixed(RIGID, si.RKMK(4), y0, dt=0.05, num_steps=100).y1[1][0, 0]

    m0 = Y0[1]
    g = jax.grad(final)(m0)
    e = jnp.zeros_like(m0).at[0, 0].set(1e-6)
    fd = (final(m0 + e) - final(m0 - e)) / 2e-6
    assert float(g[0, 0]) == pytest.approx(float(fd), rel=1e-6)
    n = len(traces)
    final(1.1 * m0)
    assert len(traces) == n
    batch = jnp.stack([m0, 0.5 * m0])
    assert float(jax.vmap(final)(batch)[1]) == pytest.approx(float(final(0.5 * m0)), rel=1e-12)


SPIN = diffrax.ODETerm(lambda t, y, a: hat(jnp.array([0.1, 0.2, 0.3])))


def test_bad_input():
    # the initial-state check: a ValueError from an eager `init`, a run-time error under jit
    off = 1.01 * jnp.eye(3)
    solver = si.RKMK(4, group="SO")
    assert_refused(lambda y: solver.init(SPIN, 0.0, 0.1, y, None), off,
                   match=r"`RKMK\(4\)` with group='SO' needs `y0` on SO: it is off SO")  # fmt: skip
    # ... and inside the compiled solve (eagerly too: `solve_fixed` always compiles its loop)
    solve = _lie_solve(SPIN, solver)
    for run in (solve, jax.jit(solve)):
        with pytest.raises(RuntimeError, match="off SO"):  # equinox's, or JaxRuntimeError
            jax.block_until_ready(run(off))
    assert float(lie_group_error("SO", si.solve_fixed(SPIN, solver, jnp.eye(3), dt=0.1,
                                                      num_steps=2).y1)) < 1e-14  # fmt: skip
    se_init = lambda y: si.CrouchGrossman3(group="SE").init(SPIN, 0.0, 0.1, y, None)  # noqa: E731
    assert_refused(se_init, jnp.ones((3, 1)), match="group='SE' needs every leaf of `y0`")
    with pytest.raises(ValueError, match=r"`RKMK\(2\)\(group=...\)` needs a group: .* got .Sp."):
        si.RKMK(2, group="Sp")
    with pytest.raises(ValueError, match="needs RKMK"):
        si.CrouchGrossman3(exp="cayley")
    with pytest.raises(ValueError, match=r"`CrouchGrossman3\(exp='pade'\)` needs `exp` one of"):
        si.CrouchGrossman3(exp="pade")
    for order in (5, 0, True):
        with pytest.raises(ValueError, match=r"RKMK\(order=.*\)` needs order 1, 2, 3 or 4"):
            si.RKMK(order)
    with pytest.raises(ValueError, match=r"`RKMK\(2\)` takes one `diffrax.ODETerm`"):
        si.solve_fixed(diffrax.MultiTerm(RIGID, RIGID), si.RKMK(2), Y0, dt=0.1, num_steps=2)


def _lie_solve(term, solver):
    return lambda y: si.solve_fixed(term, solver, y, dt=0.1, num_steps=2).y1


def test_algebra_of_the_wrong_shape_is_refused_by_name():
    """A vector field returning a matrix that cannot act on its state leaf fails at trace
    time naming the solver, the state and the expected shape, not deep in `dot_general`."""
    big = diffrax.ODETerm(lambda t, y, a: jnp.zeros((4, 4)))
    assert_refused(_lie_solve(big, si.RKMK(4)), jnp.eye(3),
                   match=r"`RKMK\(4\)` needs .* square matrix of shape \(3, 3\) acting on the "
                         r"state of shape \(3, 3\), got shape \(4, 4\)")  # fmt: skip
    wide = diffrax.ODETerm(lambda t, y, a: (jnp.zeros((3, 3)), jnp.zeros((3, 2))))
    match = r"CrouchGrossman3\(\)` needs .*\(3, 3\) .*at y\[1\].*got shape \(3, 2\)"
    assert_refused(_lie_solve(wide, si.CrouchGrossman3()), Y0, match=match)
    one = diffrax.ODETerm(lambda t, y, a: jnp.zeros((3, 3)))
    assert_refused(_lie_solve(one, si.RKMK(2, "cayley")), Y0, match="the state's structure")
    batched = diffrax.ODETerm(lambda t, y, a: jnp.zeros((5, 3, 3)))
    assert_refused(_lie_solve(batched, si.RKMK(3)), jnp.ones((2, 3, 1)), match=r"\(5, 3, 3\)")
    rod = diffrax.ODETerm(lambda t, y, a: jnp.zeros((4, 4)))
    match = r"`RKMK\(2, exp='rodrigues'\)`: `exp='rodrigues'` is for 3 x 3"
    assert_refused(_lie_solve(rod, si.RKMK(2, "rodrigues")), jnp.eye(4), match=match)


def test_algebra_shapes_that_act_are_accepted():
    """A vector state (n,), leading batch axes of the state and of A broadcasting: each
    matches stepping the examples one by one."""
    w = jnp.array([[0.1, 0.2, 0.3], [-0.3, 0.0, 0.5]])
    per = diffrax.ODETerm(lambda t, y, a: jax.vmap(hat)(w))  # (2, 3, 3) acting on (2, 3, 1)
    y = jnp.stack([Y0[1], 2 * Y0[1]])
    out = si.solve_fixed(per, si.RKMK(4), y, dt=0.1, num_steps=3).y1
    for i in range(2):
        one = diffrax.ODETerm(lambda t, y, a, i=i: hat(w[i]))
        ref = si.solve_fixed(one, si.RKMK(4), y[i, :, 0], dt=0.1, num_steps=3).y1  # (3,)
        assert float(jnp.max(jnp.abs(out[i, :, 0] - ref))) < 1e-15


def test_heavy_top_keeps_its_casimirs():
    # Euler-Poisson equations m' = m x w + M g l Gamma x chi, Gamma' = Gamma x w, w = I^-1 m,
    # written z' = A(z) z for z = (m, Gamma) with A = [[hat(-w), hat(-Mgl chi)], [0, hat(-w)]],
    # an element of a Lie algebra (se(3) in a coadjoint-like representation). Its group keeps
    # |Gamma| and m . Gamma, the Casimirs, which a Lie-group method therefore conserves.
    chi = jnp.array([0.0, 0.0, 1.0])
    mgl = 2.0

    def algebra(t, z, args):
        w = z[:3, 0] / INERTIA
        top = jnp.concatenate([hat(-w), hat(-mgl * chi)], axis=1)
        bottom = jnp.concatenate([jnp.zeros((3, 3)), hat(-w)], axis=1)
        return jnp.concatenate([top, bottom], axis=0)

    z0 = jnp.array([[0.3], [1.0], [-0.4], [0.6], [0.0], [0.8]])

    def casimirs(z):
        return jnp.sum(z[3:] ** 2), jnp.sum(z[:3] * z[3:])

    z = si.solve_fixed(diffrax.ODETerm(algebra), si.RKMK(4), z0, dt=0.02, num_steps=20_000).y1
    for a, b in zip(casimirs(z), casimirs(z0)):
        assert abs(float(a - b)) < 1e-12
    rk = si.solve_fixed(diffrax.ODETerm(_embedded(algebra)), diffrax.Tsit5(), z0, dt=0.02,
                        num_steps=20_000).y1  # fmt: skip
    assert abs(float(casimirs(rk)[0] - casimirs(z0)[0])) > 1e-11
