"""The conformance checks every manifold passes; `cases.py` lists the manifolds."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from structjax.check import check_retraction, check_rgrad, constraint_error


@dataclasses.dataclass(frozen=True)
class Case:
    """A manifold and what it claims: the order of its retraction, whether its transport
    is isometric, whether it has exp/log/distance."""

    make: callable
    retraction_order: int = 1
    isometric_transport: bool = False
    has_exp: bool = False
    tol: float = 1e-12


def _test_function(x):
    """A smooth nonlinear function of one point, defined on the whole embedding space."""
    flat = x.reshape(-1)
    w = jnp.sin(jnp.arange(flat.size, dtype=flat.dtype) + 1.0)
    return jnp.sum(w * flat) + 0.3 * jnp.sum(flat**2) ** 1.5 + jnp.sum(jnp.cos(flat))


def check_points_and_tangents(case: Case, key):
    m = case.make()
    k1, k2, k3 = jax.random.split(key, 3)
    x = m.random_point(k1, (4,), jnp.float64)
    assert x.shape == (4,) + tuple(m.point_shape)
    assert float(constraint_error(m, x)) < case.tol
    v = m.random_tangent(k2, x)
    assert np.allclose(m.to_tangent(x, v), v, atol=1e-12)  # tangent: projection fixes it
    assert np.allclose(m.project(x), x, atol=1e-12)  # points: projection fixes them
    noisy = x + 1e-3 * jax.random.normal(k3, x.shape, x.dtype)
    assert float(constraint_error(m, m.project(noisy))) < case.tol
    assert bool(jnp.all(m.inner(x, v, v) > 0))
    assert m.inner(x, v, v).shape == (4,)


def check_retraction_order(case: Case, key):
    m = case.make()
    x = m.random_point(key, (), jnp.float64)
    assert np.allclose(m.retract(x, jnp.zeros_like(x)), x, atol=1e-13)
    v = m.random_tangent(key, x)
    assert float(constraint_error(m, m.retract(x, 0.7 * v))) < case.tol
    result = check_retraction(m, key)
    assert result.first_order > 1.9, result  # R(x, tv) = x + tv + O(t^2)
    if case.retraction_order >= 2:
        assert result.second_order < 1e-8, result


def check_transport(case: Case, key):
    m = case.make()
    k1, k2, k3 = jax.random.split(key, 3)
    x, y = m.random_point(k1, (3,), jnp.float64), m.random_point(k2, (3,), jnp.float64)
    v = m.random_tangent(k3, x)
    w = m.transport(x, y, v)
    assert np.allclose(m.to_tangent(y, w), w, atol=1e-10)
    if case.isometric_transport:
        assert np.allclose(m.norm(y, w), m.norm(x, v), rtol=1e-10)


def check_exp_log(case: Case, key):
    m = case.make()
    k1, k2 = jax.random.split(key)
    x = m.random_point(k1, (3,), jnp.float64)
    v = 0.5 * m.random_tangent(k2, x)
    v = v / m.norm(x, v)[(...,) + (None,) * len(m.point_shape)]
    y = m.exp(x, v)
    assert float(constraint_error(m, y)) < case.tol
    assert np.allclose(m.log(x, y), v, atol=1e-9)
    assert np.allclose(m.distance(x, y), m.norm(x, v), atol=1e-9)
    assert np.allclose(m.distance(x, x), 0.0, atol=1e-7)


def check_rgrad_matches(case: Case, key):
    m = case.make()
    err = check_rgrad(m, _test_function, key)
    assert err < 1e-7, err


def check_transformations(case: Case, key):
    """Batched calls equal vmapped single calls; jit does not retrace; grad is finite."""
    m = case.make()
    k1, k2 = jax.random.split(key)
    x = m.random_point(k1, (3,), jnp.float64)
    v = m.random_tangent(k2, x)
    batched = m.retract(x, v)
    mapped = jax.vmap(m.retract)(x, v)
    assert np.allclose(batched, mapped, atol=1e-13)
    step = jax.jit(eqx.debug.assert_max_traces(lambda x, v: m.retract(x, 0.1 * v), max_traces=1))
    step(x, v)
    step(mapped, 0.5 * v)
    g = jax.grad(lambda x: jnp.sum(m.inner(x, v, v)) + jnp.sum(m.retract(x, v) ** 2))(x)
    assert bool(jnp.all(jnp.isfinite(g)))


def check_float32(case: Case, key):
    """A float32 point stays float32, and 1000 retractions keep it on the manifold."""
    m = case.make()
    x = m.random_point(key, (), jnp.float32)
    assert x.dtype == jnp.float32

    def body(x, k):
        return m.retract(x, 0.1 * m.random_tangent(k, x)), None

    x, _ = jax.lax.scan(body, x, jax.random.split(key, 1000))
    assert x.dtype == jnp.float32
    assert float(constraint_error(m, x)) < 1e-5


def float32_walk_error(m, steps: int = 10_000, scale: float = 0.1):
    """The largest constraint error of a float32 random walk of `steps` retractions."""
    key = jax.random.PRNGKey(7)
    x = m.random_point(key, (), jnp.float32)

    def body(x, k):
        y = m.retract(x, scale * m.random_tangent(k, x))
        return y, m.constraint_error(y)

    x, errors = jax.jit(lambda x: jax.lax.scan(body, x, jax.random.split(key, steps)))(x)
    assert x.dtype == jnp.float32
    return float(jnp.max(errors))


# Every check a manifold goes through; `check_exp_log` only where `has_exp`.
CHECKS = [
    check_points_and_tangents,
    check_retraction_order,
    check_transport,
    check_rgrad_matches,
    check_transformations,
    check_float32,
    check_exp_log,
]


def applies(case: Case, check) -> bool:
    return check is not check_exp_log or case.has_exp
