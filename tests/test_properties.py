"""Property-based tests of the public API's guards (hypothesis).

Each property draws a configuration (manifold, dtype, batch shape, hyperparameters, step
size, ...) that may or may not be valid, runs the call eagerly or inside `jax.jit`, and asserts
one of two outcomes: a clear refusal (`ValueError`, `TypeError`, or the run-time error of an
`equinox.error_if`) whose message names the offending argument, or a finite result whose
structure is certified (on the manifold, energy bounded, group axioms). Never a silent NaN,
never a wrong answer.

The examples are bounded (`max_examples` below) and derandomised under `CI=true` (the profile
is set in `tests/conftest.py`), so the suite's time is fixed.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings, strategies as st

import structjax.equivariant as se
import structjax.integrators as si
import structjax.manifolds as sm
import structjax.optim as so
from structjax._guards import point_tolerance

from .helpers import REFUSED

EXAMPLES = 12
MODES = st.sampled_from(["eager", "jit"])

# Manifolds with small points (compile time stays small); each is drawn with its checks on.
MANIFOLDS = {
    "Sphere(4)": lambda: sm.Sphere(4),
    "Stiefel(4, 2)": lambda: sm.Stiefel(4, 2),
    "Grassmann(4, 2)": lambda: sm.Grassmann(4, 2),
    "Orthogonal(3)": lambda: sm.Orthogonal(3),
    "SpecialOrthogonal(3)": lambda: sm.SpecialOrthogonal(3),
    "SPD(3)": lambda: sm.SymmetricPositiveDefinite(3),
    "PoincareBall(3)": lambda: sm.PoincareBall(3),
    "Lorentz(3)": lambda: sm.Lorentz(3),
    "Euclidean(3)": lambda: sm.Euclidean((3,)),
}
FLOATS = [jnp.float64, jnp.float32, jnp.float16, jnp.bfloat16]
NOT_REAL = [jnp.int32, jnp.complex64]


def _run(fn, mode: str, *args):
    f = fn if mode == "eager" else jax.jit(fn)
    return jax.block_until_ready(f(*args))


def _refused(fn, mode, *args, match: str):
    with pytest.raises(REFUSED, match=match):
        _run(fn, mode, *args)


def _finite(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(jnp.asarray(a, jnp.float64))))
               for a in jax.tree_util.tree_leaves(tree))  # fmt: skip


def _manifold_tol(m, dtype) -> float:
    size = math.prod(m.point_shape)
    # 16-bit points are rounded to their dtype after float32 geometry: a few roundings.
    return 4 * point_tolerance(dtype, size)


# --- manifolds ------------------------------------------------------------------------------


@settings(max_examples=EXAMPLES)
@given(
    name=st.sampled_from(sorted(MANIFOLDS)),
    dtype=st.sampled_from(FLOATS + NOT_REAL),
    batch=st.sampled_from([(), (2,)]),
    scale=st.sampled_from([0.0, 1e-3, 0.3, 3.0]),
    mode=MODES,
    seed=st.integers(0, 2**16),
)
def test_retract_is_on_manifold_or_refused(name, dtype, batch, scale, mode, seed):
    """`retract(x, s v)` of a point and a tangent: on the manifold to the dtype's precision,
    finite, of the point's dtype; integer and complex points refused by name."""
    m = MANIFOLDS[name]()
    k1, k2 = jax.random.split(jax.random.key(seed))
    real = dtype in FLOATS
    x = m.random_point(k1, batch, dtype if real else jnp.float64)
    v = m.random_tangent(k2, x)
    if not real:
        x, v = x.astype(dtype), v.astype(dtype)
        _refused(m.retract, mode, x, v, match="real floating")
        return
    v = v * jnp.asarray(scale, v.dtype)
    y = _run(m.retract, mode, x, v)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert _finite(y)
    err = float(jnp.max(m.constraint_error(y.astype(jnp.float64))))
    assert err <= _manifold_tol(m, dtype), (name, dtype, err)


@settings(max_examples=EXAMPLES)
@given(
    name=st.sampled_from(sorted(n for n in MANIFOLDS if not n.startswith("Euclidean"))),
    dtype=st.sampled_from([jnp.float64, jnp.float32]),
    log_off=st.floats(-12.0, 0.0),
    mode=MODES,
    seed=st.integers(0, 2**16),
)
def test_check_point_refuses_exactly_off_manifold(name, dtype, log_off, mode, seed):
    """`check_point` accepts points within the manifold's tolerance and refuses, naming the
    argument, points clearly beyond it (a factor 4 either side of the threshold)."""
    m = MANIFOLDS[name]()
    k1, k2 = jax.random.split(jax.random.key(seed))
    x = m.random_point(k1, (), jnp.float64)
    noise = jax.random.normal(k2, x.shape, jnp.float64)
    y = (x + 10.0**log_off * noise / jnp.linalg.norm(noise)).astype(dtype)
    err = float(jnp.max(m.constraint_error(y.astype(jnp.float64))))
    tol = point_tolerance(dtype, math.prod(m.point_shape))
    check = lambda z: m.check_point(z, "weight")  # noqa: E731
    if err > 4 * tol:
        _refused(check, mode, y, match="weight")
    elif err < tol / 4:
        assert _finite(_run(check, mode, y))


@settings(max_examples=EXAMPLES)
@given(
    name=st.sampled_from(sorted(MANIFOLDS)),
    extra=st.sampled_from([1, -1]),
    mode=MODES,
)
def test_wrong_point_shape_refused(name, extra, mode):
    """A point whose trailing axes are not the manifold's `point_shape` is refused at trace
    time with a message quoting the shape."""
    m = MANIFOLDS[name]()
    shape = list(m.point_shape)
    shape[-1] = max(shape[-1] + extra, 1) if shape[-1] + extra != shape[-1] else shape[-1] + 1
    if tuple(shape) == tuple(m.point_shape):
        shape[-1] += 1
    x = jnp.ones(tuple(shape))
    _refused(m.retract, mode, x, x, match="shape")


# --- optimisers -----------------------------------------------------------------------------

BAD_RATE = [0.0, -1e-2, float("nan")]
OPTIMISERS = {
    "riemannian_sgd": lambda lr, mom, m: so.riemannian_sgd(lr, momentum=mom, manifolds=m),
    "riemannian_adam": lambda lr, mom, m: so.riemannian_adam(lr, b1=mom, manifolds=m),
    "cayley_sgd": lambda lr, mom, m: so.cayley_sgd(lr, momentum=mom, manifolds=m),
    "cayley_adam": lambda lr, mom, m: so.cayley_adam(lr, b1=mom, manifolds=m),
    "conformal_symplectic_momentum": lambda lr, d, m: so.conformal_symplectic_momentum(
        lr, damping=d, manifolds=m
    ),
    "relativistic_gd": lambda lr, d, m: so.relativistic_gd(lr, damping=d, manifolds=m),
}
# A drawn momentum-like value as the damping of the conformal optimisers (valid: >= 0).
AS_DAMPING = {0.0: 0.0, 0.5: 0.7, 0.9: 0.1, 1.0: -1.0, 1.5: -0.5}
# The argument each optimiser's momentum-like draw lands on, for the refusal message.
MOMENTUM_NAME = {
    "riemannian_sgd": "momentum", "riemannian_adam": "b1", "cayley_sgd": "momentum",
    "cayley_adam": "b1", "conformal_symplectic_momentum": "damping", "relativistic_gd": "damping",
}  # fmt: skip


def _objective(x):
    return jnp.sum(jnp.sin(3.0 * x)) + jnp.sum(x[..., 0])


@settings(max_examples=EXAMPLES)
@given(
    name=st.sampled_from(sorted(OPTIMISERS)),
    lr=st.sampled_from([1e-2, 0.3] + BAD_RATE),
    mom=st.sampled_from([0.0, 0.5, 0.9, 1.0, 1.5, float("nan")]),
    dtype=st.sampled_from([jnp.float64, jnp.float32, jnp.bfloat16]),
    mode=MODES,
    seed=st.integers(0, 2**16),
)
def test_optimiser_refuses_or_stays_on_stiefel(name, lr, mom, dtype, mode, seed):
    """Every structjax optimiser, with drawn hyperparameters (traced under `jit`, as with
    `optax.inject_hyperparams`): a refusal naming the hyperparameter, or ten finite steps on
    Stiefel(5, 2) that stay on it to the dtype's precision."""
    m = sm.Stiefel(5, 2)
    x0 = m.random_point(jax.random.key(seed), (), dtype)

    def steps(lr, mom, x):
        opt = OPTIMISERS[name](lr, mom, m)
        state = opt.init(x)
        for _ in range(10):
            g = jax.grad(lambda z: _objective(z.astype(jnp.float32)))(x)
            u, state = opt.update(g.astype(x.dtype), state, x)
            x = optax.apply_updates(x, u)
        return x

    damped = name.startswith(("conformal", "relativistic"))
    if damped:
        mom = AS_DAMPING.get(mom, mom)  # nan stays nan
    # Negative or NaN; a zero rate is a valid (frozen) gradient method, but the conformal
    # optimisers' rate is the time step h of a Hamiltonian flow and must be positive.
    bad_lr = not (lr > 0) if damped else not (lr >= 0)
    bad_mom = not (mom >= 0) if damped else not (0 <= mom < 1)
    args = (jnp.asarray(lr), jnp.asarray(mom), x0) if mode == "jit" else (lr, mom, x0)
    if bad_lr and bad_mom:  # either refusal may come first
        _refused(steps, mode, *args, match=f"learning_rate|{MOMENTUM_NAME[name]}")
    elif bad_lr:
        _refused(steps, mode, *args, match="learning_rate")
    elif bad_mom:
        _refused(steps, mode, *args, match=MOMENTUM_NAME[name])
    else:
        x = _run(steps, mode, *args)
        assert x.dtype == x0.dtype and _finite(x)
        err = float(jnp.max(m.constraint_error(x.astype(jnp.float64))))
        assert err <= _manifold_tol(m, dtype), (name, dtype, err)


@settings(max_examples=EXAMPLES)
@given(
    name=st.sampled_from(["riemannian_sgd", "riemannian_adam", "cayley_adam"]),
    dtype=st.sampled_from([jnp.int32, jnp.complex64]),
    mode=MODES,
)
def test_optimiser_refuses_integer_and_complex_params(name, dtype, mode):
    m = sm.Stiefel(4, 2)
    x = jnp.eye(4, 2).astype(dtype)
    opt = OPTIMISERS[name](1e-2, 0.5, m)
    _refused(opt.init, mode, x, match="real floating")


# --- integrators ----------------------------------------------------------------------------

SPLITTINGS = [si.SymplecticEuler(), si.VelocityVerlet(), si.McAte4(), si.KahanLi8()]
OSCILLATOR = si.separable_terms(lambda p, a: 0.5 * jnp.sum(p**2), lambda q, a: 0.5 * jnp.sum(q**2))


@settings(max_examples=EXAMPLES)
@given(
    solver=st.sampled_from(range(len(SPLITTINGS))),
    dt=st.sampled_from([0.01, 0.1, 0.0, -0.1, float("nan"), float("inf")]),
    dtype=st.sampled_from([jnp.float64, jnp.float32, jnp.int32]),
    mode=MODES,
)
def test_solve_fixed_refuses_or_conserves_energy(solver, dt, dtype, mode):
    """`solve_fixed` with a drawn step and state dtype: a refusal naming `dt` or `y0`, or a
    finite solve of the oscillator whose energy error is within the method's order bound."""
    method = SPLITTINGS[solver]
    y0 = (jnp.ones(3).astype(dtype), jnp.zeros(3).astype(dtype))

    def solve(dt, y0):
        return si.solve_fixed(OSCILLATOR, method, y0, dt=dt, num_steps=100).y1

    args = (jnp.asarray(dt), y0) if mode == "jit" else (dt, y0)
    if dtype == jnp.int32:
        _refused(solve, mode, *args, match="y0")
    elif not (math.isfinite(dt) and dt > 0):
        _refused(solve, mode, *args, match="dt")
    else:
        q, p = _run(solve, mode, *args)
        assert q.dtype == dtype and _finite((q, p))
        energy = 0.5 * (jnp.sum(q.astype(jnp.float64) ** 2) + jnp.sum(p.astype(jnp.float64) ** 2))
        eps = 1e-5 if dtype == jnp.float32 else 1e-12
        assert abs(float(energy) - 1.5) <= 1.5 * (dt ** method.order(None) + eps)


@settings(max_examples=EXAMPLES)
@given(
    damping=st.sampled_from([0.0, 0.5, -0.5, float("nan")]),
    mode=MODES,
)
def test_conformal_damping_refused_or_contracts(damping, mode):
    """`conformal(method, damping)`: negative or NaN damping refused, traced or not; else the
    energy of the damped oscillator decreases monotonically in the mean."""
    y0 = (jnp.ones(2), jnp.zeros(2))

    def solve(damping, y0):
        out = si.solve_fixed(OSCILLATOR, si.conformal(si.VelocityVerlet(), damping), y0,
                             dt=0.05, num_steps=200)  # fmt: skip
        return out.y1

    args = (jnp.asarray(damping), y0) if mode == "jit" else (damping, y0)
    if not damping >= 0:
        _refused(solve, mode, *args, match="damping")
    else:
        q, p = _run(solve, mode, *args)
        energy = 0.5 * float(jnp.sum(q**2) + jnp.sum(p**2))
        # E(t) decays like exp(-damping t) on average only (the exact flow reaches 1.14x that
        # at t = 10 for damping 0.5): a factor 1.5 either side catches a missing or doubled
        # damping, and an undamped method keeps E = 1.
        expected = math.exp(-damping * 10.0)
        assert _finite((q, p)) and expected / 1.5 - 1e-9 <= energy <= 1.5 * expected + 1e-9


# --- groups ---------------------------------------------------------------------------------


@settings(max_examples=EXAMPLES)
@given(
    ctor=st.sampled_from(["C", "D", "S", "SO", "O"]),
    n=st.sampled_from([-1, 0, 1, 2, 3, 4, 2.5, float("nan")]),
)
def test_group_constructors_refuse_or_satisfy_the_axioms(ctor, n):
    """Group constructors refuse non-integer or too small sizes by name; a group they build
    has elements that are invertible matrices closed under composition (sampled)."""
    make = getattr(se, ctor)
    smallest = {"C": 1, "D": 1, "S": 2, "SO": 2, "O": 1}[ctor]  # S(1), SO(1) are trivial
    valid = isinstance(n, int) and n >= smallest
    if not valid:
        with pytest.raises((ValueError, TypeError), match=r"n|order|size"):
            make(n)
        return
    g = make(n)
    k1, k2 = jax.random.split(jax.random.key(n))
    a, b = g.sample(k1), g.sample(k2)
    ab = np.asarray(g.compose(a, b))
    assert np.all(np.isfinite(ab))
    # Closure: a product of elements of a compact matrix group is orthogonal here.
    d = ab.shape[-1]
    np.testing.assert_allclose(ab @ ab.T, np.eye(d), atol=1e-10)
    np.testing.assert_allclose(np.asarray(g.compose(a, g.inverse(a))), np.eye(d), atol=1e-10)
