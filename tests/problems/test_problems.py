"""structjax.problems: each problem's invariants hold along its reference, the reference agrees
with an independent solve, and the constructors refuse what they cannot build."""

import diffrax
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest

import structjax.integrators as si
import structjax.problems as sp

# Short horizons: the checks are of the problem's definition, not of long-time behaviour.
SHORT = {
    "harmonic_oscillator": dict(t1=5.0),
    "pendulum": dict(t1=5.0),
    "kepler": dict(orbits=0.7),
    "henon_heiles": dict(t1=10.0),
    "outer_solar_system": dict(t1=5000.0),
    "fpu": dict(particles=8, t1=10.0),
    "lennard_jones": dict(t1=3.0),
    "double_pendulum": dict(t1=5.0),
    "free_rigid_body": dict(t1=5.0),
    "heavy_top": dict(t1=5.0),
    "spherical_pendulum": dict(t1=5.0),
    "damped_oscillator": dict(t1=10.0),
}
MAKERS = {name: getattr(sp, name) for name in SHORT}


def _at(ys, i):
    return jtu.tree_map(lambda a: a[i], ys)


def _rel(a, b) -> float:
    a, b = ([np.asarray(x, np.float64) for x in jtu.tree_leaves(t)] for t in (a, b))
    num = max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))
    return num / max(float(np.max(np.abs(y))) for y in b)


def test_library_has_every_problem():
    lib = sp.library()
    assert set(lib) == set(SHORT)
    assert all(isinstance(p, sp.Problem) and p.name == n for n, p in lib.items())


def _independent(pb, ts):
    """The problem solved by a second method of a different family, at a fine fixed step."""
    n_per = 400
    dt = float(ts[1] - ts[0]) / n_per
    if pb.name in ("free_rigid_body", "heavy_top"):
        terms, solver = pb.lie_term, si.RKMK(4)
    elif pb.name == "double_pendulum":
        terms, solver = pb.ode_term, si.GaussLegendre(3)
    elif pb.name == "spherical_pendulum":
        # The index-reduced ODE by a Runge-Kutta-Nystrom-free route: Gauss-Legendre 6.
        terms, solver = pb.ode_term, si.GaussLegendre(3)
    elif pb.name == "damped_oscillator":
        terms, solver = pb.terms, si.conformal(si.BlanesMoan6General(), pb.damping)
    else:
        terms, solver = pb.terms, si.KahanLi8()
    sol = si.solve_fixed(terms, solver, pb.y0, dt=dt, num_steps=n_per * (len(ts) - 1),
                         save_every=n_per, args=pb.args)  # fmt: skip
    return sol.ys


@pytest.mark.parametrize("name", sorted(SHORT))
def test_reference_keeps_the_invariants_and_agrees_with_an_independent_solve(name):
    pb = MAKERS[name](**SHORT[name])
    ts = pb.sample_times(5)
    ref = pb.reference(ts)
    assert pb.invariants, name
    for key, inv in pb.invariants.items():
        v0 = inv(ts[0], _at(ref, 0))
        scale = max(float(jnp.max(jnp.abs(v0))), 1.0)
        for i in range(1, len(ts)):
            err = float(jnp.max(jnp.abs(inv(ts[i], _at(ref, i)) - v0))) / scale
            assert err < 1e-9, (name, key, i, err)
    assert _rel(ref, _independent(pb, ts)) < 1e-8, name
    if pb.exact is not None:  # the closed form against the reference solve of the same ODE
        solved = pb.reference(ts, y0=jtu.tree_map(jnp.copy, pb.y0))
        assert _rel(ref, solved) < 1e-10, name


def test_reference_is_cached_and_shaped():
    pb = sp.pendulum(t1=2.0)
    ts = pb.sample_times(4)
    a, b = pb.reference(ts), pb.reference(np.asarray(ts))
    assert a is b
    assert a[0].shape == (5, 1)


@pytest.mark.parametrize("name", ["kepler", "free_rigid_body", "spherical_pendulum", "fpu"])
def test_float32(name):
    pb = MAKERS[name](**SHORT[name], dtype=jnp.float32)
    assert all(x.dtype == jnp.float32 for x in jtu.tree_leaves(pb.y0))
    ys = pb.reference(pb.sample_times(2))
    assert all(x.dtype == jnp.float32 for x in jtu.tree_leaves(ys))
    ref64 = MAKERS[name](**SHORT[name]).reference(MAKERS[name](**SHORT[name]).sample_times(2))
    assert _rel(ys, ref64) < 1e-3, name  # the float32 reference solves at 100 eps


def test_terms_for_each_kind_of_solver():
    kepler, rigid, pendulum2 = sp.kepler(), sp.free_rigid_body(), sp.double_pendulum()
    assert kepler.terms_for(si.VelocityVerlet()) is kepler.terms
    assert kepler.terms_for(diffrax.SemiImplicitEuler()) is kepler.terms
    assert kepler.terms_for(diffrax.Tsit5()) is kepler.ode_term
    assert rigid.terms_for(si.RKMK(4)) is rigid.lie_term
    assert rigid.terms_for(diffrax.Dopri8()) is rigid.ode_term
    with pytest.raises(ValueError, match="needs partitioned terms.*double_pendulum"):
        pendulum2.terms_for(si.VelocityVerlet())
    with pytest.raises(ValueError, match="Lie-group method.*kepler"):
        kepler.terms_for(si.RKMK(4))


def test_terms_run_under_jit_and_vmap():
    pb = sp.kepler(orbits=0.5)
    y0s = jtu.tree_map(lambda a: jnp.stack([a, 1.01 * a]), pb.y0)

    @jax.jit
    def run(y0):
        return si.solve_fixed(pb.terms, si.BlanesMoan4(), y0, dt=0.01, num_steps=100).y1

    out = jax.vmap(run)(y0s)
    single = run(pb.y0)
    assert all(bool(jnp.allclose(a[0], b, rtol=0, atol=1e-14)) for a, b in zip(out, single))


def test_user_problem():
    pb = sp.Problem(name="decay", y0=jnp.ones(2), t1=1.0,
                    ode_term=diffrax.ODETerm(lambda t, y, args: -y))  # fmt: skip
    ys = pb.reference(jnp.asarray([0.0, 0.5, 1.0]))
    assert float(jnp.max(jnp.abs(ys[-1] - jnp.exp(-1.0)))) < 1e-11


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: sp.kepler(eccentricity=1.0), r"kepler\(eccentricity=...\)` needs 0 <= e < 1"),
        (lambda: sp.kepler(orbits=0.0), r"kepler\(orbits=...\)"),
        (lambda: sp.pendulum(amplitude=4.0), r"pendulum\(amplitude=...\)"),
        (lambda: sp.henon_heiles(energy=0.2), r"henon_heiles\(energy=...\)"),
        (lambda: sp.harmonic_oscillator(frequency=-1.0), r"frequency"),
        (lambda: sp.fpu(particles=1), r"fpu\(particles=...\)` needs an int >= 2"),
        (lambda: sp.fpu(beta=-1.0), r"fpu\(beta=...\)"),
        (lambda: sp.lennard_jones(atoms=30), r"lennard_jones\(atoms=...\)"),
        (lambda: sp.free_rigid_body(inertia=(1.0, 0.0, 2.0)), r"free_rigid_body\(inertia"),
        (lambda: sp.heavy_top(z0=(1.0, 2.0)), r"heavy_top\(z0=...\)` needs six"),
        (lambda: sp.spherical_pendulum(q0=(1.0, 1.0, 0.0)), r"needs \|q0\| = 1"),
        (lambda: sp.damped_oscillator(damping=3.0), r"damped_oscillator\(damping"),
        (lambda: sp.outer_solar_system(t1=float("nan")), r"finite t1 > 0"),
        (
            lambda: sp.Problem(
                name="", y0=jnp.ones(1), t1=1.0, ode_term=diffrax.ODETerm(lambda t, y, a: y)
            ),
            "non-empty string",
        ),
        (
            lambda: sp.Problem(
                name="x", y0=jnp.ones(1), t1=-1.0, ode_term=diffrax.ODETerm(lambda t, y, a: y)
            ),
            "finite t1 > 0",
        ),
        (lambda: sp.pendulum().reference(jnp.asarray([1.0, 2.0])), "increasing from 0"),
        (lambda: sp.pendulum().sample_times(0), "int >= 1"),
    ],
)
def test_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_type_errors():
    with pytest.raises(TypeError, match="floating-point arrays"):
        sp.Problem(name="x", y0=jnp.ones(1, jnp.int32), t1=1.0,
                   ode_term=diffrax.ODETerm(lambda t, y, a: y))  # fmt: skip
    with pytest.raises(TypeError, match="ode_term"):
        sp.Problem(name="x", y0=jnp.ones(1), t1=1.0, ode_term=lambda t, y, a: y)
    with pytest.raises(TypeError, match="invariants"):
        sp.Problem(name="x", y0=jnp.ones(1), t1=1.0, ode_term=diffrax.ODETerm(lambda t, y, a: y),
                   invariants={"e": 1.0})  # fmt: skip
