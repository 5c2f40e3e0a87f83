"""Discrete gradient methods (issue 18): `AVF`, `Gonzalez`, `ItohAbe` on a `PoissonTerm`.

The property promised is exact: H(y1) - H(y0) equals the discrete dissipation
-h dgH^T D dgH (zero without dissipation) to the stage solve's tolerance, at every step size.
A wrong discrete gradient (a dropped Gonzalez correction, a misplaced Itoh-Abe increment, a
wrong quadrature weight) breaks the chain rule and shows at O(h^2) or more at these steps
(h up to 2). Orders are measured against a fine Gauss-Legendre solve.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import structjax.check as sc
import structjax.integrators as si

METHODS = [si.AVF, si.Gonzalez, si.ItohAbe]


def _pendulum(y, args):
    return 0.5 * y[1] ** 2 - jnp.cos(y[0])


def _quartic(y, args):  # polynomial of degree 4: AVF with 2 or more points is exact
    return 0.5 * jnp.sum(y[2:] ** 2) + 0.25 * jnp.sum(y[:2] ** 4) + 0.5 * y[0] * y[1]


_I = jnp.asarray([2.0, 1.0, 2.0 / 3.0])


def _hat(m):
    return jnp.asarray([[0.0, -m[2], m[1]], [m[2], 0.0, -m[0]], [-m[1], m[0], 0.0]])


RIGID = si.PoissonTerm(lambda m, a: 0.5 * jnp.sum(m**2 / _I), structure=lambda z, a: _hat(z))
# Lotka-Volterra: u' = u (v - 1), v' = v (1 - u), H = u - ln u + v - ln v, S = uv [[0,1],[-1,0]]
LOTKA = si.PoissonTerm(lambda y, a: jnp.sum(y - jnp.log(y)),
                       structure=lambda z, a: z[0] * z[1] * jnp.asarray([[0.0, 1.0], [-1.0, 0.0]]))  # fmt: skip  # noqa: E501
CASES = {
    "pendulum": (si.PoissonTerm(_pendulum), jnp.asarray([2.0, 0.0])),
    "quartic": (si.PoissonTerm(_quartic), jnp.asarray([1.0, -0.5, 0.2, 0.7])),
    "rigid body": (RIGID, jnp.asarray([np.cos(1.1), 0.0, np.sin(1.1)])),
    "Lotka-Volterra": (LOTKA, jnp.asarray([0.5, 2.0])),
}


def _method(cls, case):
    # AVF is exact for polynomial H only; on the others it is given 8 quadrature points
    if cls is si.AVF and case in ("pendulum", "Lotka-Volterra"):
        return si.AVF(quadrature=8)
    return cls()


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.__name__)
def test_energy_is_kept_at_every_step_size(cls, case):
    term, y0 = CASES[case]
    h0 = term.energy(y0)
    for dt in (0.05, 0.5, 2.0) if case != "Lotka-Volterra" else (0.05, 0.25, 0.5):
        sol = si.solve_fixed(term, _method(cls, case), y0, dt=dt, num_steps=40, save_every=1)
        drift = jnp.max(jnp.abs(jax.vmap(term.energy)(sol.ys) - h0)) / jnp.abs(h0)
        assert float(drift) <= 1e-12, (dt, float(drift))
        assert float(jnp.max(jnp.abs(sol.ys[-1] - y0))) > 1e-3  # the state did move


def test_avf_with_too_few_points_is_not_exact_on_a_non_polynomial_h():
    """The certificate sees the quadrature: 1 point (the implicit midpoint rule's discrete
    gradient) on the pendulum at h = 0.5 misses the balance by far more than 1e-12."""
    term, y0 = CASES["pendulum"]
    coarse = sc.dissipation_error(si.AVF(quadrature=1), term, y0, dt=0.5, num_steps=10)
    fine = sc.dissipation_error(si.AVF(quadrature=8), term, y0, dt=0.5, num_steps=10)
    assert float(coarse.max_error) > 1e-6
    assert float(fine.max_error) <= 1e-13


def test_rigid_body_keeps_its_casimir_too():
    term, m0 = CASES["rigid body"]
    for cls in METHODS:
        sol = si.solve_fixed(term, cls(), m0, dt=0.5, num_steps=100)
        assert abs(float(jnp.sum(sol.y1**2)) - 1.0) <= 1e-12, cls  # |m|^2 (S(midpoint) = hat)


@pytest.mark.parametrize("cls,order", [(si.AVF, 2), (si.Gonzalez, 2), (si.ItohAbe, 1)],
                         ids=lambda c: getattr(c, "__name__", str(c)))  # fmt: skip
def test_orders(cls, order):
    term, y0 = CASES["quartic"]
    ref = si.solve_fixed(term, si.GaussLegendre(3), y0, dt=1 / 256, num_steps=256).y1
    errs = [float(jnp.max(jnp.abs(si.solve_fixed(term, cls(), y0, dt=1 / n, num_steps=n).y1
                                  - ref))) for n in (16, 32, 64)]  # fmt: skip
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(rates - order) < 0.3), rates


@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.__name__)
def test_dissipation_balance_holds_exactly_and_energy_decreases(cls):
    d = jnp.diag(jnp.asarray([0.0, 0.3]))
    term = si.PoissonTerm(_pendulum, dissipation=d)
    y0 = jnp.asarray([2.5, 0.0])
    method = si.AVF(quadrature=8) if cls is si.AVF else cls()
    for dt in (0.1, 1.0, 3.0):
        r = sc.dissipation_error(method, term, y0, dt=dt, num_steps=30)
        assert float(r.max_error) <= 1e-12, (dt, r)
        assert float(r.decrease) <= 1e-15, (dt, r)
    # and the energy does go down: the dissipation is not zero by accident
    y1 = si.solve_fixed(term, method, y0, dt=1.0, num_steps=30).y1
    assert float(term.energy(y1) - term.energy(y0)) < -0.1


def test_float32_and_diffeqsolve():
    term, y0 = CASES["quartic"]
    y32 = y0.astype(jnp.float32)
    sol = si.solve_fixed(term, si.Gonzalez(), y32, dt=0.5, num_steps=40, save_every=1)
    assert sol.y1.dtype == jnp.float32
    drift = jnp.max(jnp.abs(jax.vmap(term.energy)(sol.ys) - term.energy(y32)))
    assert float(drift / jnp.abs(term.energy(y32))) <= 1e-5
    out = diffrax.diffeqsolve(term, si.AVF(), 0.0, 10.0, 0.5, y0, max_steps=32)
    np.testing.assert_allclose(out.ys[-1], si.solve_fixed(term, si.AVF(), y0, dt=0.5,
                                                          num_steps=20).y1, rtol=1e-12)  # fmt: skip
    assert abs(float(term.energy(out.ys[-1]) - term.energy(y0))) <= 1e-12


def test_jit_vmap_grad_pytrees_without_recompiling():
    # a pytree state (q, p) with the canonical structure, a learned parameter in H
    def h(y, k):
        q, p = y
        return 0.5 * jnp.sum(p**2) + 0.5 * k * jnp.sum(q**2) + 0.1 * jnp.sum(q**4)

    term = si.PoissonTerm(h)

    @eqx.filter_jit
    def run(y0, k):
        return si.solve_fixed(term, si.Gonzalez(), y0, dt=0.3, num_steps=20, args=k).y1

    y0 = (jnp.asarray([1.0, 0.2]), jnp.asarray([0.0, -0.4]))
    a, b = run(y0, 1.5), run((y0[0] + 0.1, y0[1]), 1.5)
    assert run._cached._cache_size() == 1  # pyright: ignore
    assert abs(float(h(a, 1.5) - h(y0, 1.5))) <= 1e-12
    assert float(jnp.max(jnp.abs(a[0] - b[0]))) > 1e-3
    qs = jnp.stack([y0[0], 2 * y0[0], -y0[0]])
    batch = jax.vmap(lambda q: run((q, y0[1]), 1.5))(qs)
    for i in range(3):
        np.testing.assert_allclose(batch[0][i], run((qs[i], y0[1]), 1.5)[0], rtol=1e-12)
    # the gradient through the implicit solves (optimistix's implicit function theorem)
    loss = lambda k: jnp.sum(run(y0, k)[0] ** 2)  # noqa: E731
    g = jax.grad(loss)(1.5)
    fd = (loss(1.5 + 1e-6) - loss(1.5 - 1e-6)) / 2e-6
    assert abs(float(g - fd)) <= 1e-6 * max(1.0, abs(float(fd)))


def test_refusals_name_the_call_under_jit_too():
    term, y0 = CASES["pendulum"]
    with pytest.raises(ValueError, match="AVF needs `terms = structjax.integrators.PoissonTerm"):
        ham = si.HamiltonianTerm(lambda q, p, a: q**2 + p**2)
        jax.jit(lambda y: si.solve_fixed(ham, si.AVF(), (y[0], y[1]), dt=0.1,
                                         num_steps=2).y1)(y0)  # fmt: skip
    with pytest.raises(ValueError, match=r"AVF\(quadrature=0\)"):
        si.AVF(quadrature=0)
    with pytest.raises(ValueError, match="canonical J on a state"):
        si.solve_fixed(si.PoissonTerm(lambda y, a: jnp.sum(y**2)), si.Gonzalez(), jnp.ones(3),
                       dt=0.1, num_steps=2)  # fmt: skip
    with pytest.raises(ValueError, match=r"structure=\.\.\.\)` needs an \(2, 2\) matrix"):
        si.solve_fixed(si.PoissonTerm(_pendulum, structure=jnp.eye(3)), si.Gonzalez(), y0,
                       dt=0.1, num_steps=2)  # fmt: skip
    with pytest.raises(TypeError, match="solver"):  # (beartype names the parameter first)
        sc.dissipation_error(si.GaussLegendre(1), term, y0, dt=0.1, num_steps=2)
    # a stage solve that cannot converge (one Newton iteration) is an error, also under jit
    with pytest.raises(Exception, match="a step failed"):
        jax.jit(lambda y: si.solve_fixed(term, si.Gonzalez(max_steps=1), y, dt=1.0,
                                         num_steps=3).y1)(y0).block_until_ready()  # fmt: skip
