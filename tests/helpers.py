"""Small helpers shared by the tests, and the test problems."""

import diffrax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

import structjax.integrators as si
from structjax.integrators._methods import ALL_METHODS


def tree_allclose(x, y, *, rtol=1e-12, atol=1e-12) -> bool:
    same = jtu.tree_structure(x) == jtu.tree_structure(y)
    return same and all(
        np.allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)
        for a, b in zip(jtu.tree_leaves(x), jtu.tree_leaves(y))
    )


def tree_max_abs_diff(x, y) -> float:
    return max(
        float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
        for a, b in zip(jtu.tree_leaves(x), jtu.tree_leaves(y))
    )


# A nonlinear Newtonian problem (T quadratic) on a pytree state: an anharmonic pendulum pair.
def kinetic_quadratic(p, args):
    return 0.5 * (jnp.sum(p["a"] ** 2) + jnp.sum(p["b"] ** 2))


def potential(q, args):
    return -jnp.sum(jnp.cos(q["a"])) + 0.1 * jnp.sum(q["b"] ** 4) + 0.3 * jnp.sum(q["a"] * q["b"])


def kinetic_general(p, args):
    """A non-quadratic kinetic energy: dq/dt = sinh(p) is not linear in p."""
    return jnp.sum(jnp.cosh(p["a"])) + jnp.sum(jnp.cosh(p["b"]))


def hamiltonian(q, p, kinetic=kinetic_quadratic):
    return kinetic(p, None) + potential(q, None)


NEWTON = si.separable_terms(kinetic_quadratic, potential)
GENERAL = si.separable_terms(kinetic_general, potential)
Y0 = (
    {"a": jnp.array([0.5, 1.0]), "b": jnp.array([0.2])},
    {"a": jnp.array([0.3, -0.2]), "b": jnp.array([0.1])},
)

_G5 = 1 / (2 - 2 ** (1 / 5))

# The conformance list: every public splitting method. Adding a method means adding it here.
METHODS = {cls.__name__: cls for cls in ALL_METHODS} | {
    "TripleJump(VerletLeapfrog)": lambda: si.triple_jump(si.VerletLeapfrog()),
    "Suzuki(VelocityVerlet)": lambda: si.suzuki_fractal(si.VelocityVerlet()),
    "Composition(McAte42)": lambda: si.Composition(si.McAte42(), (_G5, 1 - 2 * _G5, _G5)),
}


def dopri8_reference(vf, y0, t1):
    """The solution at `t1` of `dy/dt = vf(t, y, args)` by diffrax's Dopri8 at rtol = atol
    = 1e-14: the reference of the order tests."""
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vf),
        diffrax.Dopri8(),
        0.0,
        t1,
        0.01,
        y0,
        stepsize_controller=diffrax.PIDController(rtol=1e-14, atol=1e-14),
        max_steps=100_000,
    )
    return jtu.tree_map(lambda y: y[-1], sol.ys)


# --- guards: refusals under jit, and compilation counting ------------------------------------

import jax  # noqa: E402
import pytest  # noqa: E402

_COMPILES = [0]


def _on_compile(name, duration, **kwargs):
    if name == "/jax/core/compile/backend_compile_duration":
        _COMPILES[0] += 1


jax.monitoring.register_event_duration_secs_listener(_on_compile)


def compilations() -> int:
    """How many XLA programs this process has compiled so far (JAX's public monitoring
    events): a test calls once to warm up, reads this, calls again and compares."""
    return _COMPILES[0]


REFUSED = (ValueError, TypeError, jax.errors.JaxRuntimeError)


def assert_refused(fn, *args, match: str, eager: bool = True, jit: bool = True):
    """`fn(*args)` is refused with a message matching `match`, eagerly (a `ValueError` or
    `TypeError`) and inside `jax.jit` (at trace time, or at run time through
    `equinox.error_if`) alike."""
    if eager:
        with pytest.raises((ValueError, TypeError), match=match):
            jax.block_until_ready(fn(*args))
    if jit:
        with pytest.raises(REFUSED, match=match):
            jax.block_until_ready(jax.jit(fn)(*args))
