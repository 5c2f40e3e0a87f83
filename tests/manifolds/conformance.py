"""The conformance checks every manifold passes; `cases.py` lists the manifolds."""

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from structjax._guards import point_tolerance
from structjax.check import check_retraction, check_rgrad, constraint_error
from tests.helpers import assert_refused, compilations


def _scaled(x):
    return 3.0 * x


@dataclasses.dataclass(frozen=True)
class Case:
    """A manifold and what it claims: the order of its retraction, whether its transport
    is isometric, whether it has exp/log/distance."""

    make: callable
    retraction_order: int = 1
    isometric_transport: bool = False
    has_exp: bool = False
    tol: float = 1e-12
    # A point off the manifold made from one on it (None: every point is on it).
    off: callable = _scaled
    # False for a variant (another retraction, curvature) of a manifold listed already:
    # the checks of the shared method wrapper run on the first of its kind only.
    variant: bool = False
    # The 16-bit dtypes of the 10^3-step walk of `check_16bit`.
    walk_16bit: tuple = (jnp.float16, jnp.bfloat16)


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


def _calls(m, case, key, x, y, v):
    """Every public method with a base point, as a function of that point (and, marked
    `y`, of the second point of `transport`/`log`/`distance`)."""
    calls = {
        "to_tangent": lambda b: m.to_tangent(b, v),
        "egrad_to_rgrad": lambda b: m.egrad_to_rgrad(b, v),
        "retract": lambda b: m.retract(b, 0.1 * v),
        "inner": lambda b: m.inner(b, v, v),
        "norm": lambda b: m.norm(b, v),
        "transport": lambda b: m.transport(b, y, v),
        "transport-y": lambda b: m.transport(x, b, v),
        "random_tangent": lambda b: m.random_tangent(key, b),
    }
    if case.has_exp:
        calls |= {
            "exp": lambda b: m.exp(b, 0.1 * v),
            "log": lambda b: m.log(b, y),
            "log-y": lambda b: m.log(x, b),
            "distance": lambda b: m.distance(b, y),
        }
    return calls


def _points(m, key, dtype=jnp.float64, shape=(2,)):
    k1, k2, k3 = jax.random.split(key, 3)
    x = m.random_point(k1, shape, dtype)
    # y near x, so that log is defined on every manifold (Grassmann, Orthogonal).
    y = m.retract(x, 0.3 * m.random_tangent(k2, x))
    return x, y, m.random_tangent(k3, x)


def check_refusals(case: Case, key):
    """Off-manifold base points are refused by every method eagerly (`ValueError`, the full
    test), and under `jit` by a hot-path method (`retract`, the cheap test), by
    `check_point` (the full test) and, where it exists, by `log` at its second point (one
    runtime check for two points). Wrong dtypes and shapes are refused at trace time.
    `checks=False` turns the value checks off."""
    m = case.make()
    x, y, v = _points(m, key)
    wrong_shape = jnp.concatenate([v, v[..., :1]], axis=-1)
    assert_refused(lambda v: m.retract(x, v), wrong_shape, match="trailing shape")
    for bad_dtype in (jnp.int32, jnp.complex128, bool):
        assert_refused(lambda x: m.retract(x, v), x.astype(bad_dtype), match="real floating")
    with pytest.raises(TypeError, match="real floating dtype"):
        m.random_point(key, (), jnp.int32)
    if case.off is None:
        return
    bad = case.off(x)
    for name, call in _calls(m, case, key, x, y, v).items():
        arg = "y" if name.endswith("-y") else "x"
        with pytest.raises(ValueError, match=f"needs `{arg}`"):
            call(bad)
    assert_refused(lambda b: m.retract(b, 0.1 * v), bad, match="retract.*needs `x`", eager=False)
    assert_refused(lambda b: m.check_point(b), bad, match="check_point.*needs `x`", eager=False)
    if case.has_exp:
        assert_refused(lambda b: m.log(x, b), bad, match="log.*needs `y`", eager=False)
    assert m.check_point(x) is x
    unchecked = dataclasses.replace(m, checks=False)
    assert unchecked.retract(bad, 0.1 * v).shape == x.shape  # no refusal
    assert unchecked.check_point(bad) is bad


def check_16bit(case: Case, key):
    """float16 and bfloat16 points work in every method (computed in float32, cast back)
    and stay on the manifold over 10^3 retractions, to 10 eps sqrt(size) of their dtype
    (`point_tolerance`): each step is computed in float32 from the stored point, so the
    error is that of one rounding to the dtype (~eps sqrt(size)/2) and does not grow."""
    m = case.make()
    size = math.prod(m.point_shape)
    for dtype in case.walk_16bit:
        x = m.random_point(key, (), dtype)
        assert x.dtype == dtype

        @jax.jit
        def run(x):
            def body(x, k):
                return m.retract(x, 0.1 * m.random_tangent(k, x)), None

            end, _ = jax.lax.scan(body, x, jax.random.split(key, 1000))
            if case.variant:  # the other methods are those of the first of its kind
                return end, m.constraint_error(end), []
            v = m.random_tangent(key, x)
            y = m.retract(x, 0.3 * v)
            outs = [m.project(x), m.to_tangent(x, v), m.egrad_to_rgrad(x, v), m.inner(x, v, v),
                    m.transport(x, y, v), m.constraint_error(x)]  # fmt: skip
            if case.has_exp:
                outs += [m.exp(x, 0.1 * v), m.log(x, y), m.distance(x, y)]
            return end, m.constraint_error(end), outs

        end, err, outs = run(x)
        assert end.dtype == dtype
        for out in outs:
            assert out.dtype == dtype
            assert bool(jnp.all(jnp.isfinite(out.astype(jnp.float32))))
        tol = point_tolerance(dtype, size)
        assert float(err) <= tol, (dtype, float(err), tol)


def check_no_recompile(case: Case, key):
    """A second eager call of every method with the same shapes compiles nothing."""
    m = case.make()
    x, y, v = _points(m, key)
    calls = list(_calls(m, case, key, x, y, v).values())
    calls += [
        m.project,
        m.constraint_error,
        m.check_point,
        lambda b: m.random_point(key, (2,), jnp.float64),
    ]
    for call in calls:
        jax.block_until_ready(call(x))
    before = compilations()
    for call in calls:
        jax.block_until_ready(call(x))
    assert compilations() == before


# Every check a manifold goes through; `check_exp_log` only where `has_exp`.
CHECKS = [
    check_points_and_tangents,
    check_retraction_order,
    check_transport,
    check_rgrad_matches,
    check_transformations,
    check_float32,
    check_exp_log,
    check_refusals,
    check_16bit,
    check_no_recompile,
]


def applies(case: Case, check) -> bool:
    if check is check_refusals:
        return not case.variant
    return check is not check_exp_log or case.has_exp
